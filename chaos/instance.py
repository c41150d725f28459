"""``reelwatch up`` as a real process that the chaos run kills, and a keeper that starts
it again whenever it exits, as systemd's ``Restart=always`` would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from chaos.journal import Journal

RESTART_DELAY_S = 1.0
KEEPER_POLL_S = 0.2
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reelwatch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reelwatch", *args]


class UpInstance:
    def __init__(self, home: Path, settings: dict[str, str], journal: Journal) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **settings,
            "REELWATCH_HOME": str(home),
            "REELWATCH_BIND": f"127.0.0.1:{self.port}",
        }
        self.log = home / "up.log"
        self.media_root = home / "media"
        self.journal = journal
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._expected_exit = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._keeper: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def run_cli(self, *args: str) -> str:
        """An operator command (``users add``) with this instance's configuration."""
        result = subprocess.run(
            reelwatch_command(*args), env=self.env, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"reelwatch {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def start(self, ready_timeout_s: float = 90.0) -> None:
        """Start ``up``, wait until its own server answers, then keep it alive."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._spawn()
        self.wait_ready(ready_timeout_s)
        self._keeper = threading.Thread(target=self._keep_alive, name="up-keeper", daemon=True)
        self._keeper.start()

    def stop(self) -> None:
        """SIGTERM (graceful), then the whole tree is killed if it does not stop in time."""
        self._stopping.set()
        if self._keeper is not None:
            self._keeper.join()
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.journal.note("reelwatch up did not stop within 60 s of SIGTERM; killed")
            _kill_tree(process.pid)
            process.wait()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._own_server_answers():
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"reelwatch up did not become ready in {timeout_s:.0f} s; see {self.log}"
        )

    # -- faults ------------------------------------------------------------------------

    def crash(self, *, whole_tree: bool) -> str:
        """SIGKILL ``up`` alone (its children get SIGTERM from the kernel and stop
        gracefully) or ``up`` with every descendant at once (a power cut)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                return ""
            pid = self._process.pid
            self._expected_exit = True
            if not whole_tree:
                self._process.send_signal(signal.SIGKILL)
                return f"up (pid {pid}) alone; its children are told to stop"
            killed = _kill_tree(pid)
            return f"up (pid {pid}) and all {killed - 1} descendants at once"

    def workers(self) -> list[psutil.Process]:
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return []
        try:
            children = psutil.Process(process.pid).children()
            return [c for c in children if "worker" in c.cmdline()]
        except psutil.Error:
            return []

    def admin_token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def leftover_processes(self) -> list[str]:
        """Processes of this instance still alive (call after ``stop``)."""
        home = str(self.home)
        found = []
        for process in psutil.process_iter(["pid", "name", "cmdline"]):
            if process.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(process.info["cmdline"] or [])
                if home in cmdline or process.environ().get("REELWATCH_HOME") == home:
                    found.append(f"pid {process.pid} {cmdline[:120]}")
        return found

    # -- internals ---------------------------------------------------------------------

    def _spawn(self) -> None:
        with self.log.open("ab") as log:
            # Its own session: a Ctrl-C of the chaos run is not a fault of its own.
            self._process = subprocess.Popen(
                reelwatch_command("up"),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def _keep_alive(self) -> None:
        while not self._stopping.wait(KEEPER_POLL_S):
            with self._lock:
                assert self._process is not None
                code = self._process.poll()
                if code is None:
                    continue
                if not self._expected_exit:
                    self.journal.note(f"reelwatch up exited on its own with {code}; restarted")
                self._expected_exit = False
            if self._stopping.wait(RESTART_DELAY_S):
                return
            with self._lock:
                self._spawn()

    def _own_server_answers(self) -> bool:
        """True once this run's server holds the port (not a predecessor shutting down)
        and answers /healthz."""
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return False
        try:
            servers = [c for c in psutil.Process(process.pid).children() if "server" in c.cmdline()]
            listening = any(
                c.laddr.port == self.port and c.status == psutil.CONN_LISTEN
                for server in servers
                for c in server.net_connections()
            )
            return listening and httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except (psutil.Error, httpx.TransportError):
            return False


def _kill_tree(pid: int) -> int:
    """SIGSTOP the root so it restarts nothing, SIGKILL its descendants, then the root."""
    try:
        root = psutil.Process(pid)
        root.suspend()
        descendants = root.children(recursive=True)
    except psutil.Error:
        return 0
    for process in [*descendants, root]:
        with contextlib.suppress(psutil.Error):
            process.kill()
    return len(descendants) + 1
