"""The watchdog against a real ``reelwatch server`` that dies and comes back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from instance import free_port, wait_until
from receivers import AlertReceiver


def serve(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reelwatch", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_watchdog_says_once_when_down_and_once_when_up_again(
    tmp_path: Path, receiver: AlertReceiver
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    url = f"http://{bind}"
    env = {**os.environ, "REELWATCH_HOME": str(tmp_path / "home"), "REELWATCH_BIND": bind}
    server = serve(env)
    # Watched only once it answers: a slow start must not count as its first outage.
    wait_until(lambda: ready(url), timeout=60)
    watchdog = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reelwatch",
            "watchdog",
            url,
            "--interval",
            "0.2",
            "--failures",
            "3",
            "--alert-urls",
            receiver.url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server.send_signal(signal.SIGKILL)
        server.wait()
        wait_until(lambda: receiver.received, timeout=30)
        [down] = receiver.received
        assert "down" in down["title"] and "restart needed" in down["message"]
        server = serve(env)
        wait_until(lambda: len(receiver.received) == 2, timeout=60)
        assert "up again" in receiver.received[1]["title"]
        assert len(receiver.received) == 2
    finally:
        for process in (watchdog, server):
            process.terminate()
            process.wait(timeout=30)
    assert watchdog.returncode == 0
