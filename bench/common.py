"""What the benchmarks share: throwaway PostgreSQL and Redis, a real reelwatch instance in
child processes, statistics and the printed report.

Every process a benchmark starts is registered with a ``Processes`` context manager,
which stops it (and its children: each runs in its own process group) when the
benchmark ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:  # tests/pg.py (PostgreSQL) and tests/samples.py (media)
    sys.path.insert(0, str(TESTS))

from pg import PostgresCluster  # noqa: E402
from reelwatch.database import Database  # noqa: E402
from reelwatch.db.models import WorkerRecord  # noqa: E402

T = TypeVar("T")
DATABASES = ("sqlite", "postgresql")


# --- statistics and report -------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.99 for p99)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(len(ordered), rank) - 1]


@dataclass(frozen=True)
class Latency:
    """p50, p99 and max of a sample of latencies, in milliseconds."""

    count: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, milliseconds: Sequence[float]) -> Latency:
        return cls(
            len(milliseconds),
            percentile(milliseconds, 0.5),
            percentile(milliseconds, 0.99),
            max(milliseconds, default=float("nan")),
        )

    def __str__(self) -> str:
        return f"p50 {self.p50:7.2f} ms  p99 {self.p99:7.2f} ms  max {self.max:7.2f} ms"


def heading(title: str) -> None:
    print(f"\n== {title}", flush=True)


def line(label: str, text: str) -> None:
    print(f"  {label:<44} {text}", flush=True)


def verdict(goal: str, met: bool) -> None:
    print(f"  goal: {goal}: {'MET' if met else 'NOT MET'}", flush=True)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and how long it took, in seconds."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout:g} s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder, removed afterwards (``BENCH_KEEP=1`` keeps it, with the logs)."""
    folder = Path(tempfile.mkdtemp(prefix=f"reelwatch-bench-{prefix}-"))
    try:
        yield folder
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"  (kept {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# --- child processes ------------------------------------------------------------------


class Processes:
    """Starts child processes and stops every one of them on exit, children included."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_: object) -> None:
        for process in reversed(self.started):
            self.stop(process)
        for handle in self._files:
            handle.close()

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdout: int | None = None,
        cwd: Path = REPO,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in its own process group; output goes to ``logs/name.log``
        unless ``stdout`` is ``subprocess.PIPE``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        self._files.append(log)
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log if stdout is None else stdout,
            stderr=log,
            env={**os.environ, "PYTHONPATH": _python_path(), **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
        """SIGTERM to the process group, then SIGKILL after ``grace_s``."""
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_s)
        _signal_group(process, signal.SIGKILL)  # leftovers of the group (prefork children)
        process.wait()

    def log_of(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _python_path() -> str:
    """The repository first (for ``bench``), then whatever the caller had."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


# --- services -------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster (tests/pg.py: fsync off, as in the tests)."""
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def postgres_if(kind: str) -> Iterator[PostgresCluster | None]:
    """A cluster when ``kind`` is postgresql, else nothing."""
    if kind != "postgresql":
        yield None
        return
    with postgres() as cluster:
        yield cluster


def redis_server(processes: Processes) -> str:
    """Debian's redis-server on a free loopback port, without persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install redis-server")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    processes.start("redis", [*command, "--appendonly", "no", "--daemonize", "no"])
    import redis

    client = redis.Redis(port=port)
    wait_until(lambda: _answers(client), timeout=10)
    client.close()
    return f"redis://127.0.0.1:{port}/0"


def _answers(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def database_url(kind: str, folder: Path, cluster: PostgresCluster | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'reelwatch.db'}"
    assert cluster is not None, "PostgreSQL runs need the cluster"
    return cluster.create_database()


def add_database_option(parser: Any) -> None:
    parser.add_argument(
        "--database",
        choices=[*DATABASES, "both"],
        default="both",
        help="which database to run on (default: both)",
    )


def chosen_databases(choice: str) -> tuple[str, ...]:
    return DATABASES if choice == "both" else (choice,)


# --- a reelwatch instance in child processes -----------------------------------------


class Instance:
    """``reelwatch server`` (it migrates and creates the admin), the built-in mail sink
    and any number of ``reelwatch worker`` processes, on one database and media store."""

    def __init__(
        self,
        processes: Processes,
        home: Path,
        database_url: str,
        *,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.processes = processes
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.server: subprocess.Popen[bytes] | None = None
        self.env = {
            "REELWATCH_HOME": str(home),
            "REELWATCH_DATABASE_URL": database_url,
            "REELWATCH_BIND": f"127.0.0.1:{self.port}",
            "REELWATCH_PING_INTERVAL_SECONDS": "0",
            "REELWATCH_PROBE_INTERVAL_SECONDS": "0",
            **(settings or {}),
        }

    def start(self, workers: int = 0) -> Instance:
        mail_port = free_port()
        sink = ["mock", "smtp", "--port", str(mail_port), "--folder", str(self.home / "mail")]
        self.processes.start("mailsink", self.reelwatch(*sink), env=self.env)
        self.env["REELWATCH_SMTP_URL"] = f"smtp://127.0.0.1:{mail_port}"
        self.server = self.processes.start("server", self.reelwatch("server"), env=self.env)
        try:
            wait_until(self._ready, timeout=60, interval=0.1)
        except TimeoutError:
            raise RuntimeError(
                f"server did not start:\n{self.processes.log_of('server')}"
            ) from None
        for index in range(workers):
            self.add_worker(f"bench-worker-{index}")
        return self

    def _ready(self) -> bool:
        assert self.server is not None
        if self.server.poll() is not None:
            raise RuntimeError(f"server exited:\n{self.processes.log_of('server')}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def reelwatch(*args: str) -> list[str]:
        return [sys.executable, "-m", "reelwatch", *args]

    def add_worker(self, name: str) -> subprocess.Popen[bytes]:
        process = self.processes.start(name, self.reelwatch("worker", "--name", name), env=self.env)
        self.workers[name] = process
        return process

    def workers_alive(self) -> bool:
        """True while every worker runs; a dead one would leave the benchmark waiting."""
        for name, process in self.workers.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.processes.log_of(name)}")
        return True

    def wait_idle(self, db: Database, workers: int) -> None:
        """Until every worker reports ``idle``: one still importing would charge its
        start-up (a second or two of CPU) to what the benchmark measures next."""
        wait_until(
            lambda: self.workers_alive() and idle_workers(db) == workers, timeout=120, interval=0.1
        )

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {self.token}"},
        )


@contextlib.contextmanager
def idle_instance(
    kind: str, folder: Path, workers: int
) -> Iterator[tuple[Processes, Instance, Database]]:
    """A fresh instance on a database of ``kind`` under ``folder``, its ``workers`` all
    reporting ``idle``; its processes, and the database to read the outcome from (not
    the API: polling the server would charge reelwatch for the benchmark's requests)."""
    with Processes(folder / "logs") as processes, postgres_if(kind) as cluster:
        url = database_url(kind, folder, cluster)
        instance = Instance(processes, folder / "home", url).start(workers=workers)
        db = Database(url)
        try:
            instance.wait_idle(db, workers)
            yield processes, instance, db
        finally:
            db.dispose()


def idle_workers(db: Database) -> int:
    with db.read() as session:
        query = select(func.count()).where(WorkerRecord.state == "idle")
        return int(session.scalar(query) or 0)


def upload(client: httpx.Client, path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = client.post("/api/v1/videos", files={"file": (path.name, handle)})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def make_videos(
    folder: Path, count: int, *, duration_s: float, width: int, height: int
) -> list[Path]:
    """``count`` test-pattern videos with sound, generated by ffmpeg (tests/samples.py)."""
    import samples

    folder.mkdir(parents=True, exist_ok=True)
    return [
        samples.make_video(
            folder / f"clip-{index}.mp4", duration_s=duration_s, width=width, height=height
        )
        for index in range(count)
    ]
