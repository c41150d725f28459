"""Media on S3 (moto's server) against local disk: upload and pipeline throughput.

    python -m bench.storage [--size-mb 64] [--videos 4] [--rounds 3]

Two real instances in the same run, each ``reelwatch server`` plus one ``reelwatch
worker`` on its own SQLite database: one keeps its media on local disk, the other in a
bucket of moto's S3 server (a subprocess on loopback, ``REELWATCH_STORAGE_URL``).
Upload: ``--size-mb`` of random bytes posted through the API until the 201 (the
server's peak RSS sampled meanwhile). Pipeline: ``--videos`` generated 2 s 480p clips
uploaded at once, until every one is ready (probe, transcode, thumbnail, finalize; on
S3 the worker fetches the original and publishes every output). Rounds alternate the
two stores; median of ``--rounds`` and the spread (min-max). moto keeps objects in its
own memory, so the S3 figures measure the protocol's and the client's costs, not a
real bucket's disks or network: indicative, on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import httpx
import psutil

from bench import common

MB = 2**20
ACCESS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_moto(processes: common.Processes) -> str:
    port = common.free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    processes.start("moto", command)
    url = f"http://localhost:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/moto-api/", timeout=2).is_success
        except httpx.HTTPError:
            return False

    common.wait_until(answers, timeout=60, interval=0.1)
    return url


def make_bucket(endpoint: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ACCESS["AWS_SECRET_ACCESS_KEY"],
        region_name=ACCESS["AWS_DEFAULT_REGION"],
    )
    client.create_bucket(Bucket=name)
    return name


def timed_upload(instance: common.Instance, path: Path) -> tuple[float, float]:
    """Seconds until the 201, and the server's peak RSS meanwhile (MB)."""
    assert instance.server is not None
    server = psutil.Process(instance.server.pid)
    peak = [server.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], server.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with instance.client(timeout=600) as client:
        _, seconds = common.timed(lambda: common.upload(client, path))
    done.set()
    sampler.join()
    return seconds, peak[0] / MB


def timed_pipeline(instance: common.Instance, clips: list[Path]) -> float:
    """Seconds from the first upload until every clip is ready."""
    with instance.client() as client:
        started = time.perf_counter()
        ids = [common.upload(client, clip)["id"] for clip in clips]

        def all_ready() -> bool:
            states = [client.get(f"/api/v1/videos/{i}").json()["status"] for i in ids]
            if "failed" in states:
                raise RuntimeError(f"a video failed: {states}")
            return all(state == "ready" for state in states)

        common.wait_until(all_ready, timeout=600, interval=0.1)
        return time.perf_counter() - started


def summary(values: list[float], unit: str) -> str:
    return (
        f"median {statistics.median(values):8.2f} {unit}"
        f"  (spread {min(values):.2f}-{max(values):.2f}; {len(values)} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with common.scratch("storage") as folder, common.Processes(folder / "logs") as processes:
        endpoint = start_moto(processes)
        big = folder / "upload.bin"
        with big.open("wb") as handle:
            for _ in range(args.size_mb):
                handle.write(os.urandom(MB))
        clips = common.make_videos(
            folder / "clips", args.videos, duration_s=2, width=854, height=480
        )
        s3_settings = {
            **ACCESS,
            "AWS_ENDPOINT_URL": endpoint,
            "REELWATCH_STORAGE_URL": f"s3://{make_bucket(endpoint)}/bench",
        }
        instances = {
            "local disk": common.Instance(
                processes, folder / "local", f"sqlite:///{folder / 'local.db'}"
            ).start(workers=1),
            "S3 (moto)": common.Instance(
                processes, folder / "s3", f"sqlite:///{folder / 's3.db'}", settings=s3_settings
            ).start(workers=1),
        }
        uploads: dict[str, list[float]] = {name: [] for name in instances}
        peaks: dict[str, list[float]] = {name: [] for name in instances}
        pipelines: dict[str, list[float]] = {name: [] for name in instances}
        for _ in range(args.rounds):
            for name, instance in instances.items():
                seconds, peak = timed_upload(instance, big)
                uploads[name].append(args.size_mb / seconds)
                peaks[name].append(peak)
                pipelines[name].append(len(clips) * 60 / timed_pipeline(instance, clips))

        common.heading(f"Upload of {args.size_mb} MB through the API, until the 201")
        for name in instances:
            common.line(name, summary(uploads[name], "MB/s"))
            common.line(f"{name}: server peak RSS", summary(peaks[name], "MB"))
        common.heading(f"Pipeline: {len(clips)} clips of 2 s 480p at once, one worker")
        for name in instances:
            common.line(name, summary(pipelines[name], "videos/min"))


if __name__ == "__main__":
    main()
