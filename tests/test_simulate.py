"""Simulation mode: everything real but the transcoder, a stand-in without ffmpeg whose
injected failures take each catalog code to its documented end, with its e-mails."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from reelwatch.config import ConfigError, Settings, load_settings
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import OutboxMessage
from reelwatch.failures import CATALOG, DEPENDENCY_CODES, FailureCode
from reelwatch.insights.checks import CRITICAL, OK
from reelwatch.monitor.checks import check_transcoder
from reelwatch.notify.sink import MailSink, list_mail
from reelwatch.operations.doctor import examine
from reelwatch.simulation import parse_failure_rates
from reelwatch.storage import LocalStore
from reelwatch.videos.pipeline.simulated import (
    PLACEHOLDER_JPEG,
    SimulatedTasks,
    SimulationCancelled,
    simulated_media_info,
)

REELWATCH = [sys.executable, "-m", "reelwatch"]


@pytest.fixture
def no_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH without ffmpeg (nor anything else): any ffmpeg run would fail."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def simulated(tmp_path: Path, sink: MailSink, failures: str = "") -> Settings:
    return load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=5,
        retry_backoff_scale=0.0,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        simulate=True,
        simulate_speed=0.05,
        simulate_failures=failures,
    )


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[LiveInstance]:
    instance = LiveInstance(settings, workers=1, dispatchers=1).start()
    try:
        yield instance
    finally:
        instance.stop()


def upload_bytes(client: httpx.Client, folder: Path, title: str) -> dict[str, object]:
    """Any bytes: the stand-in reads none of them (300 KB: a 1.2 s video for it)."""
    clip = folder / f"{title}.mp4"
    clip.write_bytes(os.urandom(300_000))
    return upload(client, clip, title=title)


def subjects_for(sink: MailSink, title: str) -> list[str]:
    return sorted(m.subject for m in list_mail(sink.folder) if m.subject.endswith(f": {title}"))


@pytest.mark.parametrize("code", list(FailureCode))
def test_each_injected_code_ends_as_the_catalog_says_with_its_emails(
    code: FailureCode, tmp_path: Path, sink: MailSink, no_ffmpeg: Path
) -> None:
    kind = CATALOG[code]
    with running(simulated(tmp_path, sink, f"{code.value}:1.0")) as instance:
        client = instance.client("dora@example.com")
        video = upload_bytes(client, tmp_path, title="demo")
        outcome = wait_for_outcome(client, str(video["id"]), timeout=60)
        assert outcome["status"] == "failed"
        assert outcome["error"]["code"] == code.value
        assert outcome["error"]["recoverable"] is kind.recoverable
        assert outcome["attempts"] == kind.max_attempts
        expected = ["We could not process your video: demo"]
        if code in DEPENDENCY_CODES:  # a dependency down: told at once that it waits
            expected.append("Your video is saved; processing is delayed: demo")
        wait_until(lambda: len(subjects_for(sink, "demo")) >= len(expected), timeout=30)
        with instance.db.read() as session:
            channels = sorted(session.scalars(select(OutboxMessage.channel)))
        assert subjects_for(sink, "demo") == sorted(expected)
        assert channels == sorted(["email"] * len(expected) + ["alert"])


def test_a_long_retry_delay_mails_the_delay_and_then_the_outcome(
    tmp_path: Path, sink: MailSink, no_ffmpeg: Path
) -> None:
    settings = simulated(tmp_path, sink, "ffmpeg_crashed:1").model_copy(
        update={"retry_backoff_scale": 0.005, "delay_notice_minutes": 0.001}  # > 0.06 s
    )
    with running(settings) as instance:
        client = instance.client("erin@example.com")
        video = upload_bytes(client, tmp_path, title="crashy")
        assert wait_for_outcome(client, str(video["id"]), timeout=60)["status"] == "failed"
        wait_until(lambda: len(subjects_for(sink, "crashy")) == 2, timeout=30)
        assert subjects_for(sink, "crashy") == [
            "We could not process your video: crashy",
            "Your video is saved; processing is delayed: crashy",
        ]


def test_without_failures_a_video_is_ready_without_ffmpeg(
    tmp_path: Path, sink: MailSink, no_ffmpeg: Path
) -> None:
    with running(simulated(tmp_path, sink)) as instance:
        client = instance.client("finn@example.com")
        video = upload_bytes(client, tmp_path, title="fine")
        ready = wait_for_outcome(client, str(video["id"]), timeout=60)
        assert ready["status"] == "ready", ready
        assert [r["name"] for r in ready["renditions"]] == ["480p", "720p"]
        original = (tmp_path / "fine.mp4").read_bytes()
        for rendition in ready["renditions"]:
            assert client.get(rendition["url"]).content == original
        thumbnail = client.get(f"/api/v1/videos/{video['id']}/thumbnail")
        assert thumbnail.content == PLACEHOLDER_JPEG
        wait_until(lambda: subjects_for(sink, "fine") == ["Your video is ready: fine"])


@dataclass
class RecordingContext:
    """A transcode task's context that keeps the progress it is told."""

    subject_id: str
    probe: dict[str, Any]
    params: dict[str, Any] = field(default_factory=lambda: {"rungs": [480]})
    workflow_input: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    cancelled: threading.Event = field(default_factory=threading.Event)
    reported: list[float] = field(default_factory=list)

    def upstream_outputs(self) -> dict[str, dict[str, Any]]:
        return {"probe": self.probe}

    def spare_workers(self, queue: str) -> int:
        return 0

    def report_progress(self, fraction: float) -> None:
        self.reported.append(fraction)

    def checkpoint(self, kind: str, data: dict[str, Any]) -> bool:
        raise AssertionError(f"the stand-in records no checkpoint ({kind})")


def test_the_stand_in_progresses_over_the_simulated_duration_and_stops_when_cancelled(
    tmp_path: Path,
) -> None:
    settings = load_settings(home=tmp_path / "home", simulate=True, simulate_speed=0.1)
    store = LocalStore(settings.media_root)
    tasks = SimulatedTasks(settings, store)
    store.video_dir("v1").mkdir(parents=True)
    store.original_path("v1").write_bytes(b"x" * 1_250_000)  # 5 s of video: 0.5 s of work
    ctx = RecordingContext("v1", asdict(simulated_media_info(1_250_000)))
    started = time.monotonic()
    output = tasks.transcode(ctx)
    assert time.monotonic() - started >= 0.5
    assert ctx.reported == sorted(ctx.reported) and ctx.reported[-1] == 1.0
    assert len([f for f in ctx.reported if 0 < f < 1]) >= 3  # it advanced in steps
    assert [r["rendition"] for r in output["renditions"]] == ["480p"]

    cancelled = RecordingContext("v1", ctx.probe)
    cancelled.cancelled.set()
    with pytest.raises(SimulationCancelled):
        tasks.transcode(cancelled)


def test_simulation_is_refused_in_production(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REELWATCH_SIMULATE: must be off"):
        load_settings(
            home=tmp_path,
            env="production",
            smtp_url="smtp://127.0.0.1:25",
            public_url="https://example.com",
            simulate=True,
        )


@pytest.mark.parametrize("value", ["bogus:0.5", "timeout:2", "timeout:-0.1", "timeout", ":1"])
def test_a_bad_failure_list_is_a_one_line_configuration_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"^REELWATCH_SIMULATE_FAILURES: .*code:rate pairs"):
        load_settings(home=tmp_path, simulate=True, simulate_failures=value)
    spaced = load_settings(home=tmp_path, simulate_failures=" timeout:0.5, disk_full:1 ")
    assert parse_failure_rates(spaced.simulate_failures) == {
        FailureCode.TIMEOUT: 0.5,
        FailureCode.DISK_FULL: 1.0,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--simulate", "--fail", "bogus:0.1"], "error: --fail: unknown failure code 'bogus'"),
        (["--simulate", "--fail", "timeout:1.5"], "error: --fail: 'timeout:1.5' needs a rate"),
        (["--simulate", "--fail", "timeout"], "error: --fail: 'timeout' needs a rate"),
        (["--fail", "timeout:0.5"], "error: --fail: only with --simulate"),
    ],
)
def test_up_refuses_a_bad_fail_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = {**os.environ, "REELWATCH_HOME": str(tmp_path / "home"), "COLUMNS": "300"}
    result = subprocess.run(
        [*REELWATCH, "up", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "home").exists()  # stopped before starting anything


def test_up_simulate_runs_everything_but_ffmpeg(tmp_path: Path, no_ffmpeg: Path) -> None:
    home, bind = tmp_path / "home", f"127.0.0.1:{free_port()}"
    env = {**os.environ, "REELWATCH_HOME": str(home), "REELWATCH_BIND": bind}
    env |= {"REELWATCH_WORKERS": "1", "REELWATCH_MONITOR_INTERVAL_SECONDS": "0.5"}
    env |= {"REELWATCH_PING_INTERVAL_SECONDS": "1", "REELWATCH_PROBE_INTERVAL_SECONDS": "1"}
    env |= {"REELWATCH_SIMULATE_SPEED": "0.05", "REELWATCH_RETRY_BACKOFF_SCALE": "0"}
    process = subprocess.Popen(
        [*REELWATCH, "up", "--simulate", "--fail", "input_no_video:1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until((home / "admin.token").exists, timeout=60)
        token = (home / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://{bind}", headers=headers, timeout=30) as client:
            wait_until(lambda: _answers(client), timeout=60)
            answered = datetime.now(UTC).replace(tzinfo=None)
            clip = tmp_path / "clip.mp4"
            clip.write_bytes(os.urandom(10_000))
            failed = wait_for_outcome(client, str(upload(client, clip)["id"]), timeout=60)
            assert failed["error"]["code"] == "input_no_video"
            checks = wait_until(lambda: _checks_done(client, answered), timeout=90)
            assert checks["ffmpeg"]["state"] == "ok"
            assert checks["ffmpeg"]["detail"].startswith("simulated")
            assert checks["ping_ffmpeg"]["state"] == "ok"
            # The probe's video gets the injected failure too: the monitor sees it.
            assert checks["e2e_probe"]["state"] == "critical"
            assert "input_no_video" in checks["e2e_probe"]["detail"]
            assert "Simulation mode" in client.get("/login").text
            assert client.get("/api/v1/status").json()["simulated"] is True
            # `demo` against it needs no ffmpeg either: placeholders, any outcome.
            demo = subprocess.run(
                [*REELWATCH, "demo"], env=env, capture_output=True, text=True, timeout=120
            )
            assert demo.returncode == 0, demo.stderr
            names = [v["title"] for v in client.get("/api/v1/videos").json()["videos"]]
            assert sum(name.startswith("simulated-") for name in names) == 5
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _checks_done(client: httpx.Client, answered: datetime) -> dict[str, dict[str, str]] | None:
    """The checks, once ffmpeg, the ping and the end-to-end probe have a result, the
    probe's from a run after the server ``answered`` (the monitor starts beside the
    server, so its first probe may find nothing listening yet)."""
    checks = {c["name"]: c for c in client.get("/api/v1/admin/checks").json()["checks"]}
    if not {"ffmpeg", "ping_ffmpeg", "e2e_probe"} <= checks.keys():
        return None
    probed = datetime.fromisoformat(checks["e2e_probe"]["checked_at"].removesuffix("Z"))
    return checks if probed > answered else None


def test_doctor_and_the_ffmpeg_check_need_no_ffmpeg_when_simulated(
    tmp_path: Path, no_ffmpeg: Path
) -> None:
    settings = load_settings(home=tmp_path / "home", simulate=True)
    upgrade_database(settings.resolved_database_url)
    findings = {finding.name: finding.result for finding in examine(settings)}
    assert findings["ffmpeg"].state == OK
    assert findings["ffmpeg"].detail.startswith("simulated")
    assert "ffprobe" not in findings
    real = load_settings(home=tmp_path / "home")
    assert check_transcoder(real).state == CRITICAL  # the same PATH, not simulated
