"""The API server role: uvicorn serving the FastAPI app, and a notification dispatcher
beside it, so the outbox is delivered even when no worker is alive.

With ``REELWATCH_SERVER_PROCESSES`` above one (the default on a machine of several
cores), this process binds the port, runs the one dispatcher and keeps that many uvicorn
processes alive on the shared socket (uvicorn's own supervisor: a dead one is replaced,
SIGTERM stops them gracefully, SIGHUP restarts them one by one). Migrations and the
first admin are done once, before (``reelwatch.runtime.bootstrap``); each serving
process freezes its start-up heap, so that garbage collections skip it.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.logs import configure_logging
from reelwatch.notify.dispatcher import dispatching
from reelwatch.processes import die_with_parent
from reelwatch.web import create_app

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger(__name__)

# The most of an unfinished request head (request line and headers) h11 buffers before
# answering 400; h11's own default, spelled out so that it does not move with the library.
MAX_REQUEST_HEAD_BYTES = 16 * 1024
HEALTHCHECK_TIMEOUT_S = 30


def server_config(
    settings: Settings, app: ASGIApp | Callable[[], ASGIApp] | None = None, *, factory: bool = False
) -> uvicorn.Config:
    """uvicorn with reelwatch's limits. h11, not httptools even where it is installed, so
    that the head limit above holds. No ``limit_concurrency``: event streams and long
    uploads hold connections legitimately, and past the limit uvicorn answers every new
    client a bare 503; bound connections per client in the reverse proxy instead
    (deploy/nginx). A request body that stalls is ended by the app (api/protection.py)."""
    host, port = settings.host_port
    return uvicorn.Config(
        app if app is not None else create_app(settings),
        factory=factory,
        host=host,
        port=port,
        http="h11",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level=settings.log_level,
        # JSON logs: uvicorn's loggers go through the root's JSON handler (reelwatch.logs).
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        timeout_graceful_shutdown=10,
        access_log=False,
        # Only these proxies may name the client in X-Forwarded-For (the throttles' IP).
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def log_startup_warnings(settings: Settings) -> None:
    for warning in settings.startup_warnings():
        log.warning(warning)


def run_server(settings: Settings) -> None:
    log_startup_warnings(settings)
    if settings.resolved_server_processes > 1:
        _run_processes(settings)
        return
    server = uvicorn.Server(server_config(settings))
    freeze_startup_heap()
    with _signals_held(server) as received, _dispatcher(settings):
        server.run()
    _end_as_signalled(received)
    if not server.started:  # the port is taken, say: exit as `uvicorn.run` does
        raise SystemExit(STARTUP_FAILURE)


def _run_processes(settings: Settings) -> None:
    config = server_config(
        settings, functools.partial(process_app, settings, os.getpid()), factory=True
    )
    config.workers = settings.resolved_server_processes
    # A serving process that does not answer the supervisor's ping this long is killed
    # and replaced: uvicorn's 5 s could catch a healthy one on a machine starved of CPU.
    config.timeout_worker_healthcheck = HEALTHCHECK_TIMEOUT_S
    sock = tcp_socket(config.bind_socket())  # exits with STARTUP_FAILURE when taken
    processes = _Processes(config, sockets=[sock])  # it handles the stop signals now
    try:
        with _dispatcher(settings):
            processes.run()
    finally:
        sock.close()
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    _end_as_signalled(processes.received)
    if any(p.exitcode == STARTUP_FAILURE for p in processes.processes):
        raise SystemExit(STARTUP_FAILURE)


def tcp_socket(sock: socket.socket) -> socket.socket:
    """The listening socket uvicorn bound for its processes, saying it is TCP.

    uvicorn binds it without naming the protocol (``proto`` 0), and asyncio turns Nagle's
    algorithm off (``TCP_NODELAY``) only on accepted sockets whose ``proto`` says TCP:
    without it, a response written in two pieces waits for the client's delayed ACK,
    40 ms on every request of a keep-alive connection (every serving process answered
    at about 2,200 req/s whatever its speed)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock
    return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def process_app(settings: Settings, parent_pid: int) -> ASGIApp:
    """The app of one serving process, spawned by uvicorn's supervisor (a fresh
    interpreter: logging is set up again); it dies with the process that spawned it,
    so that a SIGKILLed server leaves nothing holding its port."""
    die_with_parent(parent_pid, signal.SIGTERM)
    configure_logging(settings)
    app = create_app(settings)
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, the app, its routes and models)
    out of the garbage collector's sight: a full collection then scans only what
    requests made, instead of pausing every request for the whole heap."""
    gc.collect()
    gc.freeze()


class _Processes(Multiprocess):
    """uvicorn's supervisor of serving processes, remembering the stop signal."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.received: list[int] = []

    def handle_int(self) -> None:
        self.received.append(signal.SIGINT)
        super().handle_int()

    def handle_term(self) -> None:
        self.received.append(signal.SIGTERM)
        super().handle_term()


@contextmanager
def _dispatcher(settings: Settings) -> Iterator[None]:
    """The role's one notification dispatcher, with its own connection."""
    db = Database(settings.resolved_database_url, pool_size=1)
    owner = f"{socket.gethostname()}:{os.getpid()}:server"
    try:
        with dispatching(db, settings, owner=owner):
            yield
    finally:
        db.dispose()


@contextmanager
def _signals_held(server: uvicorn.Server) -> Iterator[list[int]]:
    """uvicorn raises the stop signal again once it has shut down (and a signal may come
    before it listens for them): held until the dispatcher has stopped too, then raised
    by ``_end_as_signalled``, so the process still ends as signalled."""
    received: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        server.should_exit = True

    defaults = {sig: signal.signal(sig, hold) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in defaults.items():
            signal.signal(sig, handler)


def _end_as_signalled(received: list[int]) -> None:
    for signum in received:
        signal.raise_signal(signum)
