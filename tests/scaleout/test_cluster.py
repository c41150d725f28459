"""A cluster on loopback: nginx in front of 2 API servers, 3 workers and 2 monitors on one
PostgreSQL and one media store, all real processes, while things go wrong.

50 uploads go through nginx while the elected monitor is SIGKILLed (the other takes over
within one lease), one API server is SIGKILLed (uploads go on through the other),
PostgreSQL is restarted (every role rides it out) and a worker is drained (its tasks
finish elsewhere). Every video must end `ready`, each task succeed exactly once, and
each uploader get exactly one outcome e-mail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from instance import free_port, wait_until
from pg import PostgresCluster
from reelwatch.accounts import create_user
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Event, Leadership, Video, WorkerRecord
from reelwatch.insights.checks import MONITOR_LEASE
from reelwatch.notify.sink import MailSink, list_mail

NGINX = "/usr/sbin/nginx"
SITE = Path(__file__).parents[2] / "deploy" / "nginx" / "reelwatch.conf"
UPLOADS = 50
MONITOR_INTERVAL_S = 1.0
MONITOR_LEASE_S = 3 * MONITOR_INTERVAL_S


@dataclass
class Cluster:
    home: Path
    database_url: str
    smtp_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REELWATCH_HOME": str(self.home),
            "REELWATCH_DATABASE_URL": self.database_url,
            "REELWATCH_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "REELWATCH_PUBLIC_URL": f"http://127.0.0.1:{self.ports['nginx']}",
            "REELWATCH_LEASE_SECONDS": "3",
            "REELWATCH_RETRY_BACKOFF_SCALE": "0",
            "REELWATCH_MONITOR_INTERVAL_SECONDS": str(MONITOR_INTERVAL_S),
            "REELWATCH_PING_INTERVAL_SECONDS": "0",
            "REELWATCH_PROBE_INTERVAL_SECONDS": "0",
            "REELWATCH_RENDITIONS": "240",
        }

    def start(self, name: str, *args: str, port: int | None = None) -> None:
        env = self.env()
        if port is not None:
            env["REELWATCH_BIND"] = f"127.0.0.1:{port}"
        log = (self.home / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "reelwatch", *args], env=env, stdout=log, stderr=log
        )

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def nginx_config(prefix: Path, listen: int, servers: list[int]) -> Path:
    """The shipped site (deploy/nginx) with loopback addresses, in a minimal nginx.conf."""
    site = SITE.read_text()
    upstreams = "".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;\n" for port in servers
    )
    site = re.sub(r"(upstream reelwatch \{\n)(?:    server .*\n)+", rf"\g<1>{upstreams}", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    (prefix / "site.conf").write_text(site)
    config = prefix / "nginx.conf"
    config.write_text(
        f"""worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""
    )
    return config


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, PostgresCluster, MailSink]]:
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing: scripts/setup.sh --test installs nginx")
    postgres = PostgresCluster.start()
    sink = MailSink(tmp_path / "mail")
    sink.start()
    home = tmp_path / "home"
    home.mkdir()
    nodes = Cluster(home, postgres.create_database(), sink.port)
    nodes.ports = {"nginx": free_port(), "server-a": free_port(), "server-b": free_port()}
    upgrade_database(nodes.database_url)
    try:
        for server in ("server-a", "server-b"):
            nodes.start(server, "server", "--no-bootstrap", port=nodes.ports[server])
        for index in range(3):
            nodes.start(f"worker-{index}", "worker", "--name", f"worker-{index}")
        for index in range(2):
            nodes.start(f"monitor-{index}", "monitor", "--name", f"monitor-{index}")
        config = nginx_config(
            tmp_path / "nginx",
            nodes.ports["nginx"],
            [nodes.ports["server-a"], nodes.ports["server-b"]],
        )
        nodes.processes["nginx"] = subprocess.Popen(
            [NGINX, "-c", str(config), "-p", str(tmp_path / "nginx"), "-g", "daemon off;"]
        )
        yield nodes, postgres, sink
    finally:
        nodes.stop_all()
        sink.stop()
        postgres.stop()


def test_a_cluster_loses_nothing_while_its_parts_fail(
    cluster: tuple[Cluster, PostgresCluster, MailSink], good_samples: dict[str, Path]
) -> None:
    nodes, postgres, sink = cluster
    db = Database(nodes.database_url)
    with db.write() as session:
        tokens = {
            f"user{i}@example.com": create_user(session, f"user{i}@example.com").token
            for i in range(5)
        }
        admin = create_user(session, "root@example.com", is_admin=True).token
    url = f"http://127.0.0.1:{nodes.ports['nginx']}"
    wait_until(lambda: ready(url), timeout=60)
    faults: dict[int, Callable[[], None]] = {
        10: lambda: kill_leading_monitor(nodes, db),
        20: lambda: nodes.kill("server-a"),
        30: postgres.restart,
        40: lambda: drain(url, admin, "worker-0"),
    }
    uploaded: dict[str, str] = {}
    clip = good_samples["h264"]
    try:
        for index in range(UPLOADS):
            if index in faults:
                faults[index]()
            email = f"user{index % 5}@example.com"
            uploaded[upload_with_retries(url, tokens[email], clip)] = email

        def all_finished() -> bool:
            with db.read() as session:
                statuses = session.scalars(select(Video.status)).all()
            return len(statuses) == UPLOADS and set(statuses) <= {"ready", "failed"}

        wait_until(all_finished, timeout=240, interval=1)
        assert nodes.processes["worker-0"].wait(timeout=60) == 0, "the drained worker exits"
        with db.read() as session:
            statuses = Counter(session.scalars(select(Video.status)))
            completions = session.execute(
                select(Event.workflow_id, Event.task, func.count())
                .where(Event.kind == "task_succeeded")
                .group_by(Event.workflow_id, Event.task)
            ).all()
            drained = session.get_one(WorkerRecord, "worker-0")
        assert statuses == {"ready": UPLOADS}
        assert {count for _, _, count in completions} == {1}, "no task completed twice"
        assert drained.state == "stopped"

        def outcome_mail() -> Counter[str]:
            mails = [m for m in list_mail(sink.folder) if "ready" in m.subject]
            return Counter(m.recipients[0] for m in mails)

        wait_until(lambda: sum(outcome_mail().values()) == UPLOADS, timeout=60)
        assert outcome_mail() == Counter(uploaded.values()), "one e-mail per video, no more"
    finally:
        db.dispose()


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def upload_with_retries(url: str, token: str, clip: Path) -> str:
    """As a well-behaved client does: a 502/503 or a dropped connection is tried again."""
    for attempt in range(30):
        try:
            with clip.open("rb") as handle:
                response = httpx.post(
                    f"{url}/api/v1/videos",
                    files={"file": (clip.name, handle)},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
            if response.status_code == 201:
                return str(response.json()["id"])
            assert response.status_code in (502, 503), response.text
        except httpx.TransportError:
            pass
        time.sleep(min(2.0, 0.2 * (attempt + 1)))  # the client's own backoff
    raise AssertionError("the upload never got through")


def kill_leading_monitor(nodes: Cluster, db: Database) -> None:
    def holder() -> str | None:
        with db.read() as session:
            lease = session.get(Leadership, MONITOR_LEASE)
            return lease.holder if lease else None

    leader = wait_until(holder, timeout=30)
    nodes.kill(leader)
    killed_at = time.monotonic()
    wait_until(lambda: holder() not in (None, leader), timeout=30, interval=0.05)
    took = time.monotonic() - killed_at
    assert took <= MONITOR_LEASE_S + MONITOR_INTERVAL_S + 0.5, f"takeover took {took:.1f} s"


def drain(url: str, token: str, worker: str) -> None:
    response = httpx.post(
        f"{url}/api/v1/admin/workers/{worker}/drain",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
