"""``reelwatch server`` with ``REELWATCH_SERVER_PROCESSES=2``: two serving processes on
one port under one parent (which runs the one dispatcher); SIGTERM ends them all and the
parent ends as signalled; a SIGKILLed parent takes its serving processes with it; their
connections do without Nagle's algorithm (``tcp_socket``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from instance import free_port, wait_until
from reelwatch.config import load_settings
from reelwatch.runtime.server import server_config, tcp_socket

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "REELWATCH_HOME": str(tmp_path / "home"),
        "REELWATCH_BIND": f"127.0.0.1:{port}",
        "REELWATCH_SERVER_PROCESSES": "2",
        "REELWATCH_SMTP_URL": f"smtp://127.0.0.1:{free_port()}",
    }
    log = (tmp_path / "server.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "reelwatch", "server"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: len(serving(process)) == 2 and answers(url), timeout=90, interval=0.2)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        log.close()


def serving(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The parent's uvicorn processes (multiprocessing's spawned children)."""
    try:
        children = psutil.Process(process.pid).children()
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_two_processes_serve_and_sigterm_ends_them_all(
    server: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    process, url = server
    children = serving(process)
    token = (tmp_path / "home" / "admin.token").read_text().strip()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(20):  # new connections: the kernel hands them to either process
            assert client.get("/api/v1/videos", headers={"Connection": "close"}).status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == -signal.SIGTERM
    assert not any(child.is_running() and child.status() != "zombie" for child in children)


def test_a_sigkilled_parent_takes_its_serving_processes_along(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, _url = server
    children = serving(process)
    process.kill()
    process.wait(timeout=30)
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive


def test_keep_alive_requests_are_not_held_by_nagles_algorithm(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    """With Nagle's algorithm on, a response's second write waits for the client's
    delayed ACK: at least 40 ms a request (44 ms here before the fix, 1.2 ms after)."""
    _process, url = server
    took_ms = []
    with httpx.Client(base_url=url) as client:  # one connection, kept alive
        for _ in range(20):
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            took_ms.append((time.perf_counter() - started) * 1000)
    assert statistics.median(took_ms) < 30, took_ms


def test_connections_accepted_on_the_shared_socket_turn_nagle_off(tmp_path: Path) -> None:
    """What asyncio does with each connection the serving processes accept from the socket
    the parent bound (uvicorn serves it with ``loop.create_server(sock=...)``)."""
    settings = load_settings(home=tmp_path, bind=f"127.0.0.1:{free_port()}")
    sock = tcp_socket(server_config(settings).bind_socket())

    async def nodelay_of_an_accepted_connection() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                connection = transport.get_extra_info("socket")
                accepted.set_result(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            _reader, writer = await asyncio.open_connection(*sock.getsockname())
            try:
                return await asyncio.wait_for(accepted, timeout=10)
            finally:
                writer.close()

    assert asyncio.run(nodelay_of_an_accepted_connection()) != 0
