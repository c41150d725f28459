"""What reelwatch writes under REELWATCH_HOME is its user's alone: 0600 files, 0700 folders."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from instance import free_port, upload, wait_for_outcome, wait_until
from samples import make_video

REELWATCH = [sys.executable, "-m", "reelwatch"]


def open_to_others(root: Path) -> list[str]:
    """Every file or folder under ``root`` (itself included) that group or others can use."""
    found = []
    for path in [root, *root.rglob("*")]:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue  # a temporary file gone while we walked
        if mode & 0o077:
            found.append(f"{path.relative_to(root)} {mode:04o}")
    return found


def names(root: Path) -> set[str]:
    return {path.name for path in root.rglob("*")}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*REELWATCH, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def running_up(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [*REELWATCH, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_a_new_home_and_everything_in_it_is_private(tmp_path: Path) -> None:
    home, backup = tmp_path / "home", tmp_path / "backup"
    bind = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "REELWATCH_HOME": str(home), "REELWATCH_BIND": bind}
    env |= {"REELWATCH_WORKERS": "1", "REELWATCH_PING_INTERVAL_SECONDS": "0"}
    env |= {"REELWATCH_PROBE_INTERVAL_SECONDS": "0"}
    run(env, "db", "upgrade")
    run(env, "users", "add", "alice@example.com")
    sample = make_video(tmp_path / "clip.mp4", duration_s=1, width=160, height=120)
    with contextmanager(running_up)(env):
        wait_until((home / "admin.token").exists, timeout=60)
        token = (home / "admin.token").read_text().strip()
        client = httpx.Client(
            base_url=f"http://{bind}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        wait_until(lambda: _answers(client), timeout=60)
        video = upload(client, sample)
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
        wait_until(lambda: any((home / "mail").glob("*")), timeout=60)  # the "ready" mail
        during = open_to_others(home)
        seen_while_running = names(home)
        client.close()
    run(env, "backup", str(backup))

    # What the walk covered: the database with its WAL, the keys, mail, ffmpeg's outputs.
    assert {"reelwatch.db-wal", "web-session.key", "admin.token"} <= seen_while_running
    assert {"original", "thumbnail.jpg"} <= seen_while_running
    assert any(name.endswith(".eml") for name in seen_while_running)
    assert {"database.sqlite", "original"} <= names(backup)
    assert during == []
    assert open_to_others(home) == []
    assert open_to_others(backup) == []


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_a_home_open_to_others_is_named_in_a_warning_and_left_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    env = {**os.environ, "REELWATCH_HOME": str(home)}
    result = run(env, "db", "upgrade")
    assert f"REELWATCH_HOME {home} is open to other users (mode 0755)" in result.stderr
    assert "chmod -R go-rwx" in result.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    assert open_to_others(home) == [". 0755"]  # what it creates inside is private
