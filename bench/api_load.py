"""API under load: status reads by 100 concurrent clients, reelwatch against the limit.

    python -m bench.api_load [--seconds 15] [--rounds 3] [--connections 100] [--busy]

A real instance (``reelwatch server``, ``REELWATCH_SERVER_PROCESSES`` processes, one a
core by default, and two ``reelwatch worker`` processes) first processes a few small
videos. Then Debian's ``wrk`` reads their status (``GET /api/v1/videos/{id}``, the ids in
turn, with the admin's token) over ``--connections`` connections for ``--seconds``, from
reelwatch and, in the same rounds, from the limit: a minimal Starlette app answering
the same JSON from the same database with the same token check (``bench.api_limit_app``),
run with as many processes as reelwatch's server, and with one. Each round runs the
three in turn; reported: the median of the rounds and their spread (min to max) for
requests per second and p50/p99 latency, errors (socket errors and non-2xx answers), and
reelwatch's throughput as a share of each limit. ``--busy`` adds the old run while both
workers transcode 720p videos (on a 2-core machine, ffmpeg wants both cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
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
    url: str, token: str, paths: list[str], seconds: float, connections: int, folder: Path
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
    command += ["-H", f"Authorization: Bearer {token}", "-s", str(script), url]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse_wrk(result.stdout)


def running_transcodes(db: Database) -> int:
    with db.read() as session:
        query = select(func.count()).where(Task.state == "running", Task.kind == "transcode")
        return int(session.scalar(query) or 0)


@dataclass(frozen=True)
class Rounds:
    """The loads of one side over the rounds."""

    loads: list[Load]

    def median(self, metric: Callable[[Load], float]) -> float:
        return statistics.median(metric(load) for load in self.loads)

    def spread(self, metric: Callable[[Load], float]) -> str:
        values = [metric(load) for load in self.loads]
        return f"{min(values):,.0f}..{max(values):,.0f}"

    @property
    def errors(self) -> int:
        return sum(load.errors for load in self.loads)

    def __str__(self) -> str:
        def rate(load: Load) -> float:
            return load.requests_per_s

        def p50(load: Load) -> float:
            return load.p50_ms

        def p99(load: Load) -> float:
            return load.p99_ms

        return (
            f"{self.median(rate):6,.0f} req/s ({self.spread(rate)})"
            f"  p50 {self.median(p50):5.1f} ms ({self.spread(p50)})"
            f"  p99 {self.median(p99):6.1f} ms ({self.spread(p99)})"
            f"  errors {self.errors}/{sum(load.requests for load in self.loads)}"
        )


def start_limit(
    processes: common.Processes, name: str, database_url: str, public_url: str, count: int
) -> str:
    port = common.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "bench.api_limit_app", "--port", str(port)]
    command += ["--database-url", database_url, "--public-url", public_url]
    process = processes.start(name, [*command, "--processes", str(count)])

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{processes.log_of(name)}")
        try:
            answer = httpx.get(f"{url}/api/v1/videos/none", timeout=2)
            return answer.status_code == 401
        except httpx.HTTPError:
            return False

    common.wait_until(ready, timeout=60, interval=0.1)
    return url


def measure(
    kind: str, seconds: float, rounds: int, connections: int, busy: bool, folder: Path
) -> tuple[int, dict[str, Rounds], tuple[Load, int] | None]:
    clip = common.make_videos(folder / "small", 1, duration_s=1, width=320, height=240)[0]
    server_processes = len(os.sched_getaffinity(0))
    settings = {"REELWATCH_SERVER_PROCESSES": str(server_processes)}
    with common.Processes(folder / "logs") as processes, common.postgres_if(kind) as cluster:
        url = common.database_url(kind, folder, cluster)
        instance = common.Instance(processes, folder / "home", url, settings=settings)
        instance.start(workers=2)
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
            sides = {
                "reelwatch": instance.url,
                "limit": start_limit(processes, "limit", url, instance.url, server_processes),
                "limit-1": start_limit(processes, "limit-1", url, instance.url, 1),
            }
            loads: dict[str, list[Load]] = {side: [] for side in sides}
            for _ in range(rounds):  # the sides in turn, so that they share the noise
                for side, side_url in sides.items():
                    load = run_wrk(side_url, instance.token, paths, seconds, connections, folder)
                    loads[side].append(load)
            busy_run = (
                transcoding_load(instance, db, paths, seconds, connections, folder)
                if busy
                else None
            )
        finally:
            db.dispose()
    return server_processes, {side: Rounds(runs) for side, runs in loads.items()}, busy_run


def transcoding_load(
    instance: common.Instance,
    db: Database,
    paths: list[str],
    seconds: float,
    connections: int,
    folder: Path,
) -> tuple[Load, int]:
    """Status reads while both workers transcode 720p videos, and the transcodes still
    running at the end."""
    long_clip = common.make_videos(
        folder / "long", 1, duration_s=max(20.0, seconds), width=1280, height=720
    )[0]
    with instance.client() as client:
        # Enough 720p work to keep both workers in ffmpeg for the whole window.
        for _ in range(max(4, round(seconds / 5))):
            common.upload(client, long_clip)
    common.wait_until(lambda: running_transcodes(db) >= 2, timeout=120, interval=0.1)
    load = run_wrk(instance.url, instance.token, paths, seconds, connections, folder)
    return load, running_transcodes(db)


def report(server_processes: int, sides: dict[str, Rounds], busy: tuple[Load, int] | None) -> None:
    reelwatch, limit, limit_1 = sides["reelwatch"], sides["limit"], sides["limit-1"]
    common.line(f"reelwatch ({server_processes} server processes)", str(reelwatch))
    common.line(f"limit app ({server_processes} processes)", str(limit))
    common.line("limit app (1 process)", str(limit_1))

    def rate(load: Load) -> float:
        return load.requests_per_s

    for label, other in ((f"{server_processes} processes", limit), ("1 process", limit_1)):
        shares = [
            r.requests_per_s / o.requests_per_s
            for r, o in zip(reelwatch.loads, other.loads, strict=True)
        ]
        common.line(
            f"reelwatch / limit ({label})",
            f"throughput {reelwatch.median(rate) / other.median(rate):4.2f}x of the medians"
            f" (rounds {min(shares):4.2f}..{max(shares):4.2f}x)",
        )
    if busy is not None:
        load, still_busy = busy
        common.line("reelwatch, both workers transcoding", f"{load}  ({still_busy} at the end)")
    p99 = reelwatch.median(lambda load: load.p99_ms)
    common.verdict("p99 <= 100 ms", p99 <= 100)
    common.verdict(
        f"throughput >= 0.5x the limit ({server_processes} processes)",
        reelwatch.median(rate) >= 0.5 * limit.median(rate),
    )
    common.verdict("no errors under load", all(side.errors == 0 for side in sides.values()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="each load run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three sides")
    parser.add_argument("--connections", type=int, default=100, help="concurrent clients")
    parser.add_argument("--busy", action="store_true", help="also a run while transcoding")
    parser.add_argument("--quick", action="store_true", help="5 s runs, one round")
    common.add_database_option(parser)
    args = parser.parse_args()
    seconds, rounds = (5.0, 1) if args.quick else (args.seconds, args.rounds)

    for kind in common.chosen_databases(args.database):
        common.heading(
            f"api load on {kind}: {args.connections} clients reading video status, "
            f"{rounds} rounds of {seconds:g} s"
        )
        with common.scratch(f"api-{kind}") as folder:
            processes, sides, busy = measure(
                kind, seconds, rounds, args.connections, args.busy, folder
            )
        report(processes, sides, busy)


if __name__ == "__main__":
    main()
