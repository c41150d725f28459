"""deploy/: the install script run twice into a throwaway root changes nothing the second
time; every systemd unit passes ``systemd-analyze verify`` against what it installed; and
the installed server and worker process a video under the kernel's MemoryDenyWriteExecute
(the units set it), then stop on SIGTERM."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from instance import free_port, upload, wait_for_outcome, wait_until
from samples import make_video

CHECKOUT = Path(__file__).resolve().parent.parent
INSTALL = CHECKOUT / "deploy" / "install.sh"
UNITS = [
    "reelwatch-server.service",
    "reelwatch-worker@1.service",
    "reelwatch-monitor.service",
    "reelwatch-watchdog.service",
    "reelwatch.target",
]
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
# Runs argv[1:] with no memory both writable and executable (inherited by every child:
# ffmpeg, ffprobe), as systemd's MemoryDenyWriteExecute=yes.
MDWE_EXEC = (
    "import ctypes, os, sys;"
    "assert ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0;"
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def install(root: Path) -> str:
    command = [str(INSTALL), "--root", str(root), "--no-apt", "--system-deps"]
    result = subprocess.run(
        [*command, "--roles", "server,worker,monitor"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root: its mode and, for a file, its content's digest."""
    tree = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        tree[str(path.relative_to(root))] = (path.lstat().st_mode, digest)
    return tree


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A root installed into twice: (root, first output, second output); the snapshots
    after each run are compared by the first test."""
    root = tmp_path_factory.mktemp("root")
    first = install(root)
    before = snapshot(root)
    second = install(root)
    assert snapshot(root) == before
    yield root, first, second


def test_installing_twice_changes_nothing(installed: tuple[Path, str, str]) -> None:
    root, first, second = installed
    assert "installed reelwatch-" in first and "wrote" in first
    said = [line.split(":")[1].strip() for line in second.splitlines()]
    assert said == ["database schema up to date", "systemd is not running here"]
    assert (root / "var/lib/reelwatch/reelwatch.db").is_file()  # `db upgrade` ran
    assert (root / "var/lib/reelwatch").stat().st_mode & 0o777 == 0o700
    assert (root / "etc/reelwatch/reelwatch.env").stat().st_mode & 0o777 == 0o640


def test_an_existing_environment_file_is_kept(installed: tuple[Path, str, str]) -> None:
    root, _, _ = installed
    env = root / "etc/reelwatch/reelwatch.env"
    env.write_text(env.read_text() + "REELWATCH_MAX_UPLOAD_MB=77\n")
    install(root)
    assert env.read_text().endswith("REELWATCH_MAX_UPLOAD_MB=77\n")


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (Debian's systemd package; scripts/setup.sh --test)",
)
def test_every_unit_verifies(installed: tuple[Path, str, str]) -> None:
    """In the installed root, so ExecStart must name the venv's real reelwatch; systemd's
    own units are copied beside them (sysinit.target...)."""
    root, _, _ = installed
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *UNITS],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown keys and values that do not parse are only warned about: no output at all.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def is_up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def memory_deny_write_execute_works() -> bool:
    probe = [sys.executable, "-c", f"{MDWE_EXEC}", "/bin/true"]
    return hasattr(ctypes, "CDLL") and subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(
    not memory_deny_write_execute_works(), reason="the kernel has no PR_SET_MDWE (Linux < 6.3)"
)
def test_the_installed_roles_process_a_video_without_writable_code(
    installed: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, _, _ = installed
    reelwatch = str(root / "opt/reelwatch/venv/bin/reelwatch")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "REELWATCH_HOME": str(tmp_path / "home"),
        "REELWATCH_BIND": f"127.0.0.1:{port}",
    }

    def start(*args: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", MDWE_EXEC, reelwatch, *args]
        return subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)

    made = subprocess.run(
        [reelwatch, "users", "add", "ops@example.com", "--admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = made.stdout.strip()
    server, worker = start("server", "--no-bootstrap"), start("worker", "--name", "deploy-1")
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            wait_until(lambda: is_up(client), timeout=30)
            clip = make_video(tmp_path / "clip.mp4", duration_s=0.5, width=160, height=120)
            video = wait_for_outcome(client, upload(client, clip)["id"], timeout=90)
        assert video["status"] == "ready", video["error"]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=45) == 0  # within the unit's TimeoutStopSec
    finally:
        for process in (server, worker):
            process.kill()
            process.wait()
