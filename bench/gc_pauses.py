"""Garbage-collection pauses in a server process, with and without ``gc.freeze()``.

    python -m bench.gc_pauses [--requests 20000] [--rounds 3] [--quick]

Each round runs in a fresh interpreter that holds what a serving process holds (the
app of ``reelwatch.web.create_app`` on a SQLite instance, its lifespan started), then
sends it requests in-process, 50 at a time (a status read, a list, ``/healthz``, in
turn), timing every collection with ``gc.callbacks``; once as is, once after
``reelwatch.runtime.server.freeze_startup_heap``. Reported per generation: the number of
collections, their median and worst pause (the median of the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


def serve_and_time(home: Path, requests: int, freeze: bool) -> dict[str, Any]:
    """In this process: build the app, start it, answer ``requests`` and time the GC."""
    from reelwatch.config import load_settings
    from reelwatch.runtime.bootstrap import prepare_instance
    from reelwatch.runtime.server import freeze_startup_heap
    from reelwatch.web import create_app

    settings = load_settings(home=home, smtp_url="smtp://127.0.0.1:9")
    prepare_instance(settings)
    token = (home / "admin.token").read_text().strip()
    app = create_app(settings)
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1000)

    async def run() -> int:
        lifespan: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        replies: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        await lifespan.put({"type": "lifespan.startup"})
        task = asyncio.create_task(
            app({"type": "lifespan", "state": {}}, lifespan.get, replies.put)  # type: ignore[arg-type]
        )
        await replies.get()
        video_id = await upload(app, token)
        if freeze:
            freeze_startup_heap()
        paths = [f"/api/v1/videos/{video_id}", "/api/v1/videos", "/healthz"]
        gc.callbacks.append(timer)
        for batch in range(requests // 50):
            await asyncio.gather(*(get(app, token, paths[(batch + i) % 3]) for i in range(50)))
        gc.callbacks.remove(timer)
        tracked = len(gc.get_objects())  # what a full collection scans: not the frozen
        await lifespan.put({"type": "lifespan.shutdown"})
        await task
        return tracked

    tracked = asyncio.run(run())
    return {"tracked": tracked, "pauses": pauses}


def scope(method: str, path: str, token: str, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()), *extra]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def get(app: Any, token: str, path: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        pass

    await app(scope("GET", path, token, []), receive, send)


async def upload(app: Any, token: str) -> str:
    """One video through the API (nothing processes it: its status is enough)."""
    boundary = "benchboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
        f"Content-Type: video/mp4\r\n\r\nnot looked at\r\n--{boundary}--\r\n"
    ).encode()
    extra = [
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    await app(scope("POST", "/api/v1/videos", token, extra), receive, send)
    return str(json.loads(b"".join(sent))["id"])


def round_in_child(requests: int, freeze: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reelwatch-bench-gc-") as folder:
        command = [sys.executable, "-m", "bench.gc_pauses", "--child", folder]
        command += ["--requests", str(requests)] + (["--freeze"] if freeze else [])
        result = subprocess.run(
            command, capture_output=True, text=True, check=True, cwd=common.REPO
        )
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 requests, one round")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--freeze", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = serve_and_time(args.child / "home", args.requests, args.freeze)
        print(json.dumps(result))
        return
    if args.quick:
        args.requests, args.rounds = 5_000, 1
    common.heading(f"GC pauses over {args.requests:,} in-process requests, {args.rounds} rounds")
    for freeze in (False, True):
        rounds = [round_in_child(args.requests, freeze) for _ in range(args.rounds)]
        label = "after gc.freeze()" if freeze else "as is"
        tracked = statistics.median(r["tracked"] for r in rounds)
        common.line(label, f"{tracked:,.0f} objects scanned by a full collection at the end")
        for generation in ("0", "1", "2"):
            runs = [r["pauses"][generation] for r in rounds]
            count = statistics.median(len(p) for p in runs)
            median = statistics.median(statistics.median(p) for p in runs if p)
            worst = statistics.median(max(p) for p in runs if p)
            common.line(
                f"  generation {generation}",
                f"{count:5.0f} collections, median {median:6.2f} ms, worst {worst:6.2f} ms",
            )


if __name__ == "__main__":
    main()
