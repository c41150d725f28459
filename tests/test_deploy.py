"""deploy/: the install script run twice into a throwaway root changes nothing the second
time; every systemd unit passes ``systemd-analyze verify`` against what it installed; and
the installed server and worker process a video under the kernel's MemoryDenyWriteExecute
(the units set it), then stop on SIGTERM."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

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


def install(root: Path, wheel: Path) -> str:
    command = [
        str(INSTALL),
        "--root",
        str(root),
        "--wheel",
        str(wheel),
        "--no-apt",
        "--system-deps",
    ]
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


def build_wheel(folder: Path) -> Path:
    """As deploy/install.sh does without --wheel (built once here: it takes seconds)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), CHECKOUT],
        env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
        check=True,
        timeout=180,
    )
    return next(folder.glob("reelwatch-*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A root installed into twice, the operator's environment file edited in between:
    (root, first output, second output). The second run must change no file."""
    root = tmp_path_factory.mktemp("root")
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    first = install(root, wheel)
    env = root / "etc/reelwatch/reelwatch.env"
    env.write_text(env.read_text() + "REELWATCH_MAX_UPLOAD_MB=77\n")
    before = snapshot(root)
    second = install(root, wheel)
    assert snapshot(root) == before  # the environment file too: never overwritten
    return root, first, second


def test_installing_twice_changes_nothing(installed: tuple[Path, str, str]) -> None:
    root, first, second = installed
    assert "installed release 0.1.0-" in first and "wrote" in first
    said = [line.split(":")[1].strip() for line in second.splitlines()]
    assert said == ["database schema up to date", "systemd is not running here"]
    assert (root / "var/lib/reelwatch/reelwatch.db").is_file()  # `db upgrade` ran
    assert (root / "var/lib/reelwatch").stat().st_mode & 0o777 == 0o700
    assert (root / "etc/reelwatch/reelwatch.env").stat().st_mode & 0o777 == 0o640


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
    # systemd's exposure score of the sandbox (0 to 100; 32 today, "OK"): no regression.
    services = [unit for unit in UNITS if unit.endswith(".service")]
    score = ["systemd-analyze", "security", "--offline=yes", f"--root={root}", "--threshold=35"]
    assert subprocess.run([*score, *services], capture_output=True, timeout=60).returncode == 0


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
    reelwatch = str(root / "opt/reelwatch/current/bin/reelwatch")
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


def test_the_compose_file_names_what_exists() -> None:
    """Docker is not on the test machine: the file parses, every service it depends on,
    volume and file it mounts exists, and its edit of the nginx site names its server."""
    folder = CHECKOUT / "deploy" / "docker"
    compose = yaml.safe_load((folder / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "migrate", "server", "worker-1", "worker-2", "monitor", "nginx"} <= set(services)
    for service in services.values():
        assert set(service.get("depends_on", {})) <= set(services)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in compose["volumes"] or (folder / source).is_file(), source
        if "build" in service:
            dockerfile = CHECKOUT / service["build"]["dockerfile"]
            assert (folder / service["build"]["context"]).resolve() == CHECKOUT
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY") and "dist/" not in line:  # the wheel is built
                    assert (CHECKOUT / line.split()[1]).is_file(), line
    site = subprocess.run(
        [
            "sh",
            "-c",
            services["nginx"]["command"][2].split(" > ")[0].replace("/reelwatch.conf", ""),
        ],
        input=(CHECKOUT / "deploy/nginx/reelwatch.conf").read_text(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.findall(r"^\s*server (\S+:\d+)", site, flags=re.M) == ["server:8000"]
