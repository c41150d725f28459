"""``reelwatch server`` with ``REELWATCH_SERVER_PROCESSES=2``: two serving processes on
one port under one parent (which runs the one dispatcher); SIGTERM ends them all and the
parent ends as signalled; a SIGKILLed parent takes its serving processes with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from instance import free_port, wait_until

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
