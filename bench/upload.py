"""Upload: a large file streamed through the API, its throughput and the server's memory.

    python -m bench.upload [--size-mb 2048] [--quick]

A real ``reelwatch server`` process (no workers) receives ``POST /api/v1/videos`` from
curl (``-F file=@…``, streamed from disk). The server parses the multipart body as it
arrives, hashes it, writes it into the media store, fsyncs and renames it, and records
the video; the clock runs until the 201. A thread samples the server's RSS every 20 ms.
The file is uploaded at two sizes (an eighth of ``--size-mb``, then ``--size-mb``) to
show that memory does not grow with the file. The peer in the same run: copying the
same file to the same file system with ``cp`` and fsyncing it, the floor for storing
it durably.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench import common

MB = 2**20
GOAL_PEAK_MB = 150


@dataclass(frozen=True)
class Upload:
    size_mb: float
    seconds: float
    idle_rss_mb: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.size_mb / self.seconds


class RssSampler(threading.Thread):
    """The highest resident set size of a process, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak / MB


def make_file(path: Path, size_mb: int) -> Path:
    """``size_mb`` MiB of a random 1 MiB block repeated (nothing compresses it on the way)."""
    block = os.urandom(MB)
    with path.open("wb") as handle:
        for _ in range(size_mb):
            handle.write(block)
    return path


def copy_durably(source: Path, destination: Path) -> float:
    """``cp`` and fsync: the seconds it takes."""
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(destination)], check=True)
    descriptor = os.open(destination, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    seconds = time.perf_counter() - started
    destination.unlink()
    return seconds


def upload_with_curl(instance: common.Instance, path: Path) -> float:
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl not found: apt-get install curl")
    command = [curl, "-sS", "-o", os.devnull, "-w", "%{http_code}", "--max-time", "3600"]
    command += ["-H", f"Authorization: Bearer {instance.token}", "-F", f"file=@{path}"]
    started = time.perf_counter()
    result = subprocess.run(
        [*command, f"{instance.url}/api/v1/videos"], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    if result.stdout.strip() != "201":
        raise RuntimeError(f"upload answered {result.stdout.strip()}: {result.stderr}")
    return seconds


def measure(instance: common.Instance, path: Path) -> Upload:
    assert instance.server is not None
    sampler = RssSampler(instance.server.pid)
    idle = sampler.peak / MB
    sampler.start()
    try:
        seconds = upload_with_curl(instance, path)
    finally:
        peak = sampler.stop()
    return Upload(path.stat().st_size / MB, seconds, idle, peak)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--size-mb", type=int, default=2048, help="the large file, in MiB")
    parser.add_argument("--quick", action="store_true", help="a 256 MiB file")
    parser.add_argument(
        "--database", choices=common.DATABASES, default="sqlite", help="the server's database"
    )
    args = parser.parse_args()
    size_mb = 256 if args.quick else args.size_mb
    sizes = [max(1, size_mb // 8), size_mb]

    common.heading(f"upload: {' and '.join(f'{s} MiB' for s in sizes)} through the API")
    results: list[Upload] = []
    with (
        common.scratch("upload") as folder,
        common.Processes(folder / "logs") as processes,
        common.postgres_if(args.database) as cluster,
    ):
        url = common.database_url(args.database, folder, cluster)
        settings = {"REELWATCH_MAX_UPLOAD_MB": str(size_mb * 2)}
        instance = common.Instance(processes, folder / "home", url, settings=settings).start()
        for size in sizes:
            path = make_file(folder / f"upload-{size}.bin", size)
            copy_s = copy_durably(path, folder / "home" / "copy.bin")
            common.line(f"cp + fsync, {size} MiB", f"{size / copy_s:7.0f} MB/s")
            upload = measure(instance, path)
            results.append(upload)
            common.line(
                f"upload, {size} MiB",
                f"{upload.rate:7.0f} MB/s ({upload.seconds:5.1f} s)  server RSS idle "
                f"{upload.idle_rss_mb:5.0f} MB, peak {upload.peak_rss_mb:5.0f} MB",
            )
            common.line("upload / (cp + fsync)", f"{upload.rate / (size / copy_s):5.2f}")
            path.unlink()
    growth = results[-1].peak_rss_mb - results[0].peak_rss_mb
    common.line("peak RSS growth from the small file", f"{growth:+5.0f} MB")
    common.verdict(
        f"server peak RSS under {GOAL_PEAK_MB} MB whatever the size",
        all(r.peak_rss_mb < GOAL_PEAK_MB for r in results),
    )


if __name__ == "__main__":
    main()
