"""API under load: status reads by 100 concurrent clients while workers transcode.

    python -m bench.api_load [--seconds 30] [--connections 100] [--quick]

A real instance (``reelwatch server`` and two ``reelwatch worker`` processes) first
processes a few small videos; then Debian's ``wrk`` reads their status
(``GET /api/v1/videos/{id}``, the ids in turn, with the admin's token) over
``--connections`` connections for ``--seconds``, twice: with the workers idle (the peer),
and while both workers transcode 720p videos with ffmpeg (on this 2-core machine, ffmpeg
wants both cores). A first run on ``/healthz`` shows the framework's own cost. Reported:
requests per second, p50/p99 latency and errors (socket errors and non-2xx answers).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from bench import common
from reelwatch.database import Database
from reelwatch.db.models import Task

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def __str__(self) -> str:
        return (
            f"{self.requests_per_s:7.0f} req/s  p50 {self.p50_ms:7.2f} ms"
            f"  p99 {self.p99_ms:7.2f} ms  errors {self.errors}/{self.requests}"
        )


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> Load:
    percentiles = dict(re.findall(r"^\s*(\d+)(?:\.\d+)?%\s+([\d.]+[a-z]+)\s*$", output, re.M))
    if "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"cannot read wrk's latency distribution:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    socket = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return Load(rate, _ms(percentiles["50"]), _ms(percentiles["99"]), requests, errors)


def run_wrk(
    instance: common.Instance, paths: list[str], seconds: float, connections: int, folder: Path
) -> Load:
    """GET ``paths`` in turn over ``connections`` connections for ``seconds``."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    script = folder / "status.lua"
    listed = ", ".join(f'"{path}"' for path in paths)
    script.write_text(
        f"local paths = {{{listed}}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  return wrk.format("GET", paths[n % #paths + 1])\nend\n'
    )
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    command += ["-H", f"Authorization: Bearer {instance.token}", "-s", str(script), instance.url]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse_wrk(result.stdout)


def running_transcodes(db: Database) -> int:
    with db.read() as session:
        query = select(func.count()).where(Task.state == "running", Task.kind == "transcode")
        return int(session.scalar(query) or 0)


def measure(
    kind: str, seconds: float, connections: int, folder: Path
) -> tuple[Load, Load, Load, int]:
    clip = common.make_videos(folder / "small", 1, duration_s=1, width=320, height=240)[0]
    long_clip = common.make_videos(
        folder / "long", 1, duration_s=max(20.0, seconds), width=1280, height=720
    )[0]
    with common.Processes(folder / "logs") as processes, common.postgres_if(kind) as cluster:
        url = common.database_url(kind, folder, cluster)
        instance = common.Instance(processes, folder / "home", url).start(workers=2)
        db = Database(url)
        try:
            with instance.client() as client:
                ids = [common.upload(client, clip)["id"] for _ in range(20)]
                common.wait_until(
                    lambda: all(
                        client.get(f"/api/v1/videos/{i}").json()["status"] == "ready" for i in ids
                    ),
                    timeout=300,
                    interval=0.5,
                )
                paths = [f"/api/v1/videos/{video_id}" for video_id in ids]
                floor = run_wrk(instance, ["/healthz"], seconds, connections, folder)
                idle = run_wrk(instance, paths, seconds, connections, folder)
                # Enough 720p work to keep both workers in ffmpeg for the whole window.
                for _ in range(max(4, round(seconds / 5))):
                    common.upload(client, long_clip)
            common.wait_until(lambda: running_transcodes(db) >= 2, timeout=120, interval=0.1)
            busy = run_wrk(instance, paths, seconds, connections, folder)
            still_busy = running_transcodes(db)
        finally:
            db.dispose()
    return floor, idle, busy, still_busy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="each load run")
    parser.add_argument("--connections", type=int, default=100, help="concurrent clients")
    parser.add_argument("--quick", action="store_true", help="10 s runs")
    common.add_database_option(parser)
    args = parser.parse_args()
    seconds = 10.0 if args.quick else args.seconds

    for kind in common.chosen_databases(args.database):
        common.heading(
            f"api load on {kind}: {args.connections} clients reading video status for {seconds:g} s"
        )
        with common.scratch(f"api-{kind}") as folder:
            floor, idle, busy, still_busy = measure(kind, seconds, args.connections, folder)
        common.line("GET /healthz (no token, no database)", str(floor))
        common.line("workers idle", str(idle))
        common.line("workers transcoding", f"{busy}  ({still_busy} transcodes at the end)")
        common.line(
            "transcoding / idle",
            f"throughput {busy.requests_per_s / idle.requests_per_s:5.2f}x  "
            f"p50 {busy.p50_ms / idle.p50_ms:5.2f}x  p99 {busy.p99_ms / idle.p99_ms:5.2f}x",
        )
        common.verdict("no errors under load", idle.errors == 0 and busy.errors == 0)


if __name__ == "__main__":
    main()
