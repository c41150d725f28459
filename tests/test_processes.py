"""Real processes: ``reelwatch up``, the CLI, and workers killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

import samples
from instance import free_port, wait_until
from pg import PostgresCluster
from reelwatch.cli.mail import plain_text_body
from reelwatch.notify.sink import list_mail, read_mail

pytestmark = pytest.mark.slow


def reelwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "reelwatch", *args]


class UpProcess:
    """``reelwatch up`` in its own process, on a fresh home and port."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.env = {
            **os.environ,
            "REELWATCH_HOME": str(home),
            "REELWATCH_BIND": f"127.0.0.1:{self.port}",
            "REELWATCH_LEASE_SECONDS": "3",
            "REELWATCH_RETRY_BACKOFF_SCALE": "0",
            # The probe's own uploads would mix with the tests' (tests/monitor covers it).
            "REELWATCH_PROBE_INTERVAL_SECONDS": "0",
            **env,
        }
        self.process: subprocess.Popen[str] | None = None
        self.log = home / "up.log"

    def start(self) -> UpProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            reelwatch("up"),
            env=self.env,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_until(self._ready, timeout=60)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"reelwatch up exited:\n{self.log.read_text()}")
        return self._own_server_listens() and answers(self.url)

    def _own_server_listens(self) -> bool:
        """True once the port is held by this run's server, not a predecessor's."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children():
            if "server" in child.cmdline():
                return any(
                    c.laddr.port == self.port and c.status == psutil.CONN_LISTEN
                    for c in child.net_connections()
                )
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        token = (self.home / "admin.token").read_text().strip()
        return httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )

    def workers(self) -> list[psutil.Process]:
        assert self.process is not None
        children = psutil.Process(self.process.pid).children()
        return [c for c in children if "worker" in c.cmdline()]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpProcess]:
    instance = UpProcess(tmp_path / "home").start()
    yield instance
    instance.stop()


def outcome(client: httpx.Client, video_id: str, timeout: float = 120) -> dict[str, object]:
    def finished() -> dict[str, object] | None:
        video = client.get(f"/api/v1/videos/{video_id}").json()
        return video if video["status"] in {"ready", "failed"} else None

    return wait_until(finished, timeout=timeout, interval=0.2)  # type: ignore[no-any-return]


def event_kinds(client: httpx.Client, video_id: str) -> list[str]:
    return [e["kind"] for e in client.get(f"/api/v1/videos/{video_id}/events").json()]


def test_up_creates_an_admin_and_the_cli_uploads_and_waits(up: UpProcess, tmp_path: Path) -> None:
    token_file = up.home / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() in up.log.read_text()
    video = samples.make_video(tmp_path / "clip.mp4", duration_s=1.0)
    result = subprocess.run(
        reelwatch("upload", str(video), "--wait"),
        env={**up.env, "REELWATCH_URL": up.url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Not a terminal: the outcome is one tab-separated line a video, not a squashed table.
    [outcome] = [line for line in result.stdout.splitlines() if "\tclip.mp4\t" in line]
    assert outcome.split("\t")[2] == "ready", outcome
    listing = subprocess.run(
        reelwatch("status"),
        env={**up.env, "REELWATCH_URL": up.url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "clip.mp4" in listing.stdout and "ready" in listing.stdout
    env = {**up.env, "REELWATCH_URL": up.url, "COLUMNS": "200"}
    queue = subprocess.run(reelwatch("queue"), env=env, capture_output=True, text=True, timeout=60)
    assert "waiting tasks" in queue.stdout and "ready 1" in queue.stdout, queue.stdout
    workers = subprocess.run(
        reelwatch("workers"), env=env, capture_output=True, text=True, timeout=60
    )
    assert workers.stdout.count(":up-") == 2, workers.stdout
    capacity = subprocess.run(
        reelwatch("capacity"), env=env, capture_output=True, text=True, timeout=60
    )
    assert "from 1 recent videos" in capacity.stdout, capacity.stdout


def test_demo_pushes_good_and_broken_samples_to_their_outcomes(up: UpProcess) -> None:
    env = {**up.env, "REELWATCH_URL": up.url, "COLUMNS": "200"}
    result = subprocess.run(reelwatch("demo"), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ready") >= 3 and "input_no_video" in result.stdout


def test_worker_killed_mid_transcode_is_restarted_and_the_video_becomes_ready(
    up: UpProcess, tmp_path: Path
) -> None:
    client = up.client()
    long_video = samples.make_long_video(tmp_path / "long.mp4")
    video = client.post("/api/v1/videos", files={"file": long_video.open("rb")}).json()

    def transcoding_worker() -> psutil.Process | None:
        for worker in up.workers():
            if any(c.name() == "ffmpeg" for c in worker.children()):
                return worker
        return None

    victim = wait_until(transcoding_worker, timeout=60, interval=0.05)
    victim.send_signal(signal.SIGKILL)
    final = outcome(client, video["id"], timeout=180)
    assert final["status"] == "ready", final
    timeline = client.get(f"/api/v1/videos/{video['id']}/events").json()
    lost = [e for e in timeline if e["kind"] == "task_failed"]
    assert lost and lost[0]["data"]["code"] == "worker_lost"
    assert victim.pid not in {
        w.pid for w in wait_until(lambda: len(up.workers()) == 2 and up.workers())
    }, "the dead worker was not replaced"


OUTCOME_SUBJECTS = ("Your video is ready", "We could not process your video")


def test_videos_survive_sigkill_of_up_at_any_moment(
    tmp_path: Path, broken_samples: dict[str, Path]
) -> None:
    instance = UpProcess(tmp_path / "home").start()
    clips = [samples.make_video(tmp_path / f"clip{i}.mp4", duration_s=2.0) for i in range(3)]
    uploads = [*clips, broken_samples["truncated"]]  # one that must end failed
    ids = []
    for path in uploads:  # each upload lands at another stage of the previous ones
        response = instance.client().post("/api/v1/videos", files={"file": path.open("rb")})
        assert response.status_code == 201
        ids.append(response.json()["id"])
        instance.stop(signal.SIGKILL)
        instance.start()
    client = instance.client()
    try:
        for video_id, path in zip(ids, uploads, strict=True):
            final = outcome(client, video_id, timeout=180)
            assert final["status"] == ("failed" if path not in clips else "ready"), final
            original = instance.home / "media" / "videos" / video_id / "original"
            assert original.read_bytes() == path.read_bytes()
        # One outcome e-mail per video, through the built-in sink, despite the crashes.
        mail_folder = instance.home / "mail"
        wait_until(lambda: len(list_mail(mail_folder)) >= len(ids))
        for video_id in ids:
            mails = [
                m
                for m in list_mail(mail_folder)
                if video_id in plain_text_body(read_mail(mail_folder, m.id))
                and m.subject.startswith(OUTCOME_SUBJECTS)
            ]
            assert len(mails) == 1, video_id
    finally:
        instance.stop()


def test_lease_expiry_rescues_a_killed_standalone_worker_on_postgresql(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """Separate server and worker processes on PostgreSQL, as on several machines."""
    env = {
        **os.environ,
        "REELWATCH_HOME": str(tmp_path / "home"),
        "REELWATCH_DATABASE_URL": pg_cluster.create_database(),
        "REELWATCH_BIND": f"127.0.0.1:{free_port()}",
        "REELWATCH_LEASE_SECONDS": "3",
        "REELWATCH_RETRY_BACKOFF_SCALE": "0",
    }
    server = subprocess.Popen(
        reelwatch("server"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = subprocess.Popen(
        reelwatch("worker", "--name", "first"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    second: subprocess.Popen[bytes] | None = None
    try:
        url = f"http://{env['REELWATCH_BIND']}"
        wait_until(lambda: answers(url), timeout=60)
        token = (tmp_path / "home" / "admin.token").read_text().strip()
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        long_video = samples.make_long_video(tmp_path / "long.mp4")
        video = client.post("/api/v1/videos", files={"file": long_video.open("rb")}).json()
        wait_until(
            lambda: any(c.name() == "ffmpeg" for c in psutil.Process(first.pid).children()),
            interval=0.05,
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.Popen(
            reelwatch("worker", "--name", "second"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        final = outcome(client, video["id"], timeout=180)
        assert final["status"] == "ready"
        timeline = client.get(f"/api/v1/videos/{video['id']}/events").json()
        kinds = [e["kind"] for e in timeline]
        assert "lease_expired" in kinds
        assert {e["worker"] for e in timeline if e["kind"] == "task_succeeded"} >= {"second"}
    finally:
        for process in (server, first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
