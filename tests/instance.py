"""A real reelwatch instance inside the test process: uvicorn on a loopback port in a
thread and workers in threads, on the test's database and media store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from reelwatch.accounts import create_user
from reelwatch.config import Settings, load_settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.engine.worker import Worker, WorkerConfig
from reelwatch.notify.dispatcher import Dispatcher
from reelwatch.notify.sink import MailSink
from reelwatch.storage import open_store
from reelwatch.videos.pipeline import build_workflows
from reelwatch.web import create_app

TERMINAL = {"ready", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate`` returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class LiveInstance:
    def __init__(self, settings: Settings, workers: int = 2, dispatchers: int = 0) -> None:
        self.settings = settings
        upgrade_database(settings.resolved_database_url)
        self.db = Database(settings.resolved_database_url)
        # Its own declaration: other instances in this process have other media stores.
        self.workflows = build_workflows(settings, open_store(settings))
        self.url = f"http://{settings.bind}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=settings.host_port[1], log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.stop_workers = threading.Event()
        self.stop_dispatchers = threading.Event()
        self.worker_threads: list[threading.Thread] = []
        self.threads = [threading.Thread(target=self.server.run, daemon=True)]
        self.worker_count = workers
        self.dispatcher_count = dispatchers
        self._tokens: dict[str, str] = {}

    def start(self) -> LiveInstance:
        self.threads[0].start()
        wait_until(lambda: self.server.started, timeout=20)
        for _ in range(self.worker_count):
            self.add_worker()
        for index in range(self.dispatcher_count):
            self.add_dispatcher(f"dispatcher-{index}")
        return self

    def add_dispatcher(self, owner: str) -> Dispatcher:
        dispatcher = Dispatcher(self.db, self.settings, owner=owner)
        thread = threading.Thread(target=dispatcher.run, args=(self.stop_dispatchers,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return dispatcher

    def add_worker(
        self, backoff_scale: float | None = None, queues: tuple[str, ...] = ("default",)
    ) -> Worker:
        if backoff_scale is None:
            backoff_scale = self.settings.retry_backoff_scale
        config = WorkerConfig(
            lease_s=self.settings.lease_seconds, queues=queues, backoff_scale=backoff_scale
        )
        worker = Worker(self.db, config, workflows=self.workflows)
        thread = threading.Thread(target=worker.run, args=(self.stop_workers,), daemon=True)
        thread.start()
        self.threads.append(thread)
        self.worker_threads.append(thread)
        return worker

    def stop_processing(self) -> None:
        """Stop every worker (dispatchers and the API go on), as a dead worker machine."""
        self.stop_workers.set()
        for thread in self.worker_threads:
            thread.join(timeout=30)
        self.stop_workers = threading.Event()
        self.worker_threads.clear()

    def stop(self) -> None:
        self.stop_workers.set()
        self.stop_dispatchers.set()
        self.server.should_exit = True
        for thread in self.threads:
            thread.join(timeout=30)
        self.db.dispose()

    def token(self, email: str, *, admin: bool = False) -> str:
        if email not in self._tokens:
            with self.db.write() as session:
                self._tokens[email] = create_user(session, email, is_admin=admin).token
        return self._tokens[email]

    def client(self, email: str = "alice@example.com", *, admin: bool = False) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=60,
            headers={"Authorization": f"Bearer {self.token(email, admin=admin)}"},
        )


def upload(client: httpx.Client, path: Path, title: str | None = None) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = client.post(
            "/api/v1/videos",
            files={"file": (path.name, handle)},
            data={"title": title} if title else {},
        )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_for_outcome(client: httpx.Client, video_id: str, timeout: float = 120) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        video = client.get(f"/api/v1/videos/{video_id}").json()
        return video if video["status"] in TERMINAL else None

    return wait_until(finished, timeout=timeout, interval=0.2)  # type: ignore[no-any-return]


def mailing_instance(
    tmp_path: Path,
    sink: MailSink,
    alert_url: str = "",
    *,
    workers: int = 2,
    dispatchers: int = 1,
) -> LiveInstance:
    """An instance that mails through ``sink`` (and alerts ``alert_url``), with short
    leases and no retry backoff: the notification tests' set-up."""
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=5,
        retry_backoff_scale=0.0,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        alert_urls=alert_url,
    )
    return LiveInstance(settings, workers=workers, dispatchers=dispatchers).start()
