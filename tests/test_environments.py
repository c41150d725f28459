"""Environments (production, beta, staging, development): the example configuration
files load, production refuses unsafe settings in one line naming the variable, staging
and beta mail users only on the allow-list, and JSON logs carry request, task and video
ids (uvicorn's lines included)."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from instance import LiveInstance, free_port, upload, wait_for_outcome, wait_until
from reelwatch.accounts import create_user
from reelwatch.config import ConfigError, Settings, load_settings
from reelwatch.database import Database
from reelwatch.db.models import OutboxMessage
from reelwatch.logs import JsonFormatter
from reelwatch.notify import outbox
from reelwatch.notify.dispatcher import Dispatcher
from reelwatch.notify.sink import MailSink, list_mail
from samples import make_video

EXAMPLES = Path(__file__).parents[1] / "deploy" / "config"
STRONG_SMTP = "smtp://reelwatch:Kq3-vT9x-Lw2p@127.0.0.1:2525"
STRONG_DATABASE = "postgresql+psycopg://reelwatch:pX7-mQ2r-Zt8w@db.internal/reelwatch"


@pytest.fixture
def production_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production example, with its secrets in the environment as documented."""
    monkeypatch.setenv("REELWATCH_CONFIG", str(EXAMPLES / "production.toml"))
    monkeypatch.setenv("REELWATCH_SMTP_URL", STRONG_SMTP)
    monkeypatch.setenv("REELWATCH_DATABASE_URL", STRONG_DATABASE)


@pytest.mark.parametrize("environment", ["production", "staging", "beta", "development"])
def test_each_example_file_loads(
    monkeypatch: pytest.MonkeyPatch, environment: str, production_file: None
) -> None:
    monkeypatch.setenv("REELWATCH_CONFIG", str(EXAMPLES / f"{environment}.toml"))
    settings = load_settings()
    assert settings.env == environment
    assert settings.startup_warnings() == []
    if environment in ("staging", "beta"):
        assert settings.mail_allowlist_entries  # user mail is held to a list there
        assert settings.https
    if environment == "production":
        assert settings.https and settings.log_format == "json" and not settings.api_docs_enabled
        assert settings.mail_allowlist_entries is None


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("REELWATCH_PUBLIC_URL", "http://videos.example.com", "must be an https:// URL"),
        ("REELWATCH_SMTP_URL", "smtp://user:secret@mail.example.com:587", "placeholder"),
        ("REELWATCH_SMTP_URL", "smtps://user:CHANGEME@mail.example.com", "placeholder"),
        ("REELWATCH_DATABASE_URL", "postgresql+psycopg://rw:short1@db/rw", "shorter than 12"),
        ("REELWATCH_LOG_LEVEL", "debug", "debug is refused"),
        ("REELWATCH_SMTP_URL", "", "must be set when REELWATCH_ENV=production"),
    ],
)
def test_production_refuses_unsafe_settings_in_words(
    monkeypatch: pytest.MonkeyPatch, production_file: None, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refusal:
        load_settings()
    message = str(refusal.value)
    assert message.startswith(f"{variable}: ") and expected in message, message
    assert "\n" not in message
    for password in ("secret", "CHANGEME", "short1"):
        assert password not in message  # a secret is never repeated into a log


def test_the_same_settings_are_accepted_outside_production(production_file: None) -> None:
    settings = load_settings(
        env="staging", public_url="http://10.0.0.5:8000", log_level="debug", smtp_url=None
    )
    assert settings.env == "staging" and settings.log_level == "debug"


def test_the_mail_allowlist_is_checked_and_defaults_by_environment() -> None:
    with pytest.raises(ConfigError, match=r"^REELWATCH_MAIL_ALLOWLIST: 'not an address'"):
        load_settings(mail_allowlist="qa@example.com, not an address")
    assert load_settings(env="development").mail_allowlist_entries is None  # anyone
    assert load_settings(env="beta").mail_allowlist_entries == frozenset()  # admins only
    listed = load_settings(env="development", mail_allowlist="QA@Example.com,@example.org")
    assert listed.mail_allowlist_entries == frozenset({"qa@example.com", "@example.org"})


def test_staging_sends_user_mail_only_to_the_allowlist_and_the_admins(
    db: Database, settings: Settings, sink: MailSink
) -> None:
    with db.write() as session:
        create_user(session, "root@ops.example.net", is_admin=True)
    smtp = f"smtp://127.0.0.1:{sink.port}"
    staging = load_settings(
        **_same_instance(settings), env="staging", smtp_url=smtp, mail_allowlist="qa@x.com,@y.org"
    )
    recipients = [
        *("qa@x.com", "bob@y.org", "root@ops.example.net", staging.probe_email),
        "eve@elsewhere.com",
    ]
    _enqueue(db, [_email(f"user:{to}", to) for to in recipients])
    _enqueue(db, [outbox.Message("alert:1", outbox.ALERT, outbox.ADMINS, "failed", "body")])
    Dispatcher(db, staging, owner="d").dispatch_due()
    delivered = sorted(to for mail in list_mail(sink.folder) for to in mail.recipients)
    assert delivered == sorted([*recipients[:4], "root@ops.example.net"])  # and the alert
    eve = _row(db, "user:eve@elsewhere.com")
    assert eve.state == outbox.SUPPRESSED
    assert (
        eve.last_error == "suppressed in staging: the recipient is not on REELWATCH_MAIL_ALLOWLIST"
    )
    # With no list, beta mails the admins only.
    beta = load_settings(**_same_instance(settings), env="beta", smtp_url=smtp)
    _enqueue(db, [_email("user:qa-2", "qa@x.com"), _email("user:root-2", "root@ops.example.net")])
    Dispatcher(db, beta, owner="d").dispatch_due()
    assert _row(db, "user:root-2").state == outbox.SENT
    qa = _row(db, "user:qa-2")
    assert qa.state == outbox.SUPPRESSED and "the admins (no REELWATCH_MAIL_ALLOWLIST)" in str(
        qa.last_error
    )
    with db.read() as session:
        assert outbox.undelivered(session, parked_only=True, limit=10) == []
        held = outbox.undelivered(session, parked_only=False, limit=10)
    # `reelwatch outbox` lists what was held, with the reason.
    assert {m.key for m in held if m.state == outbox.SUPPRESSED} == {
        "user:eve@elsewhere.com",
        "user:qa-2",
    }


def _same_instance(settings: Settings) -> dict[str, Any]:
    return {"home": settings.home, "database_url": settings.database_url}


def _email(key: str, to: str) -> outbox.Message:
    return outbox.Message(key, outbox.EMAIL, to, "Your video is ready", "It is.")


def _enqueue(db: Database, messages: list[outbox.Message]) -> None:
    with db.write() as session:
        for message in messages:
            outbox.enqueue(session, message)


def _row(db: Database, key: str) -> OutboxMessage:
    with db.read() as session:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.key == key))
        assert row is not None
        return row


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes, through the JSON formatter, while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_json_logs_carry_the_request_task_and_video_ids(
    tmp_path: Path, json_log: io.StringIO
) -> None:
    settings = load_settings(
        home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}", log_format="json"
    )
    instance = LiveInstance(settings, workers=1).start()
    try:
        with instance.client() as client:
            client.headers["X-Request-ID"] = "upload-7f3a"
            video = upload(client, make_video(tmp_path / "clip.mp4", duration_s=0.5))
            assert wait_for_outcome(client, video["id"])["status"] == "ready"
    finally:
        instance.stop()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    upload_line = next(line for line in lines if line.get("request_id") == "upload-7f3a")
    assert upload_line["logger"] == "reelwatch.access"
    assert upload_line["message"].startswith("POST /api/v1/videos 201")
    task_lines = [line for line in lines if line.get("video_id") == video["id"]]
    assert task_lines and all(isinstance(line["task_id"], int) for line in task_lines)
    assert any(" done in " in line["message"] for line in task_lines)


def test_the_server_logs_json_uvicorn_included_and_never_echoes_a_bad_request_id(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "REELWATCH_HOME": str(tmp_path / "home"),
        "REELWATCH_BIND": f"127.0.0.1:{port}",
        "REELWATCH_LOG_FORMAT": "json",
        "REELWATCH_CONFIG": str(tmp_path / "none.toml"),
    }
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "reelwatch", "server"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{base}/healthz"), timeout=30)
        with httpx.Client(base_url=base) as client:
            sane = client.get("/healthz", headers={"X-Request-ID": "req-42.a_b:c"})
            assert sane.headers["x-request-id"] == "req-42.a_b:c"
            hostile = ["a" * 1024, "abc%0d%0aSet-Cookie: x=1", 'quote"d', "ünï"]
            for value in hostile:
                answer = client.get("/healthz", headers={b"X-Request-ID": value.encode()})
                replaced = answer.headers["x-request-id"]
                assert replaced != value and len(replaced) == 32 and replaced.isalnum()
        raw = _raw_request(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\rSet-Cookie: x\r\n\r\n"
        )
        assert b"Set-Cookie" not in raw and b"set-cookie" not in raw
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "reelwatch.access"} <= loggers, loggers
    ids = {line.get("request_id") for line in lines if line["logger"] == "reelwatch.access"}
    assert "req-42.a_b:c" in ids and not any("Set-Cookie" in str(i) for i in ids)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _raw_request(port: int, request: bytes) -> bytes:
    """What the server answers to bytes no HTTP client would send."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        return answer


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_pages_and_the_status_name_the_environment(tmp_path: Path, environment: str) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        env=environment,
        public_url="https://videos.example.com",
        smtp_url=STRONG_SMTP,
    )
    instance = LiveInstance(settings, workers=0).start()
    try:
        with httpx.Client(base_url=instance.url, headers={"Accept": "text/html"}) as browser:
            pages = [browser.get("/login"), browser.get("/status"), browser.get("/no/such/page")]
            status = browser.get("/api/v1/status").json()
    finally:
        instance.stop()
    assert [page.status_code for page in pages] == [200, 200, 404]
    banner = f'<div class="banner banner-environment">{environment} environment</div>'
    for page in pages:
        assert (banner in page.text) == (environment != "production"), page.url
    assert status["environment"] == environment
