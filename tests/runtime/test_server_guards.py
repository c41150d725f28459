"""The HTTP server's guard rails, on the real uvicorn server as ``reelwatch server``
configures it: security headers on every response, API docs off in production, a
deadline for stalled bodies and idle connections, a bound on the request head."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from instance import free_port, wait_until
from reelwatch.accounts import create_user
from reelwatch.cli.main import app as cli
from reelwatch.config import Settings, load_settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.runtime.server import log_startup_warnings, server_config
from reelwatch.web import create_app
from samples import make_video

BOUNDARY = "reelwatchboundary"
EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


@contextmanager
def serving(settings: Settings, app: FastAPI | None = None) -> Iterator[str]:
    """``reelwatch server``'s uvicorn in a thread; its base URL."""
    upgrade_database(settings.resolved_database_url)
    server = uvicorn.Server(server_config(settings, app))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20)
    try:
        yield f"http://{settings.bind}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}", **overrides)


def token_for(settings: Settings, email: str = "alice@example.com") -> str:
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        with db.write() as session:
            return create_user(session, email).token
    finally:
        db.dispose()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = make_settings(tmp_path, body_timeout_seconds=1, keep_alive_seconds=1)
    with serving(settings) as url:
        yield settings, url


def connect(settings: Settings) -> socket.socket:
    sock = socket.create_connection(settings.host_port, timeout=10)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it never does."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def upload_head(token: str, length: int) -> bytes:
    return (
        f"POST /api/v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def multipart(data: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
            f"Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def test_every_response_carries_the_security_headers(guarded: tuple[Settings, str]) -> None:
    _, url = guarded
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        responses = {
            "json": client.get("/api/v1/status"),
            "unauthorized": client.get("/api/v1/videos"),
            "not found": client.get("/no/such/page"),
            "static": client.get("/static/app.css"),
            "redirect": client.get("/videos"),
            "health": client.get("/healthz"),
            "metrics": client.get("/metrics"),
            "page": client.get("/login"),
            "docs": client.get("/docs"),
            "openapi": client.get("/openapi.json"),
        }
    assert responses["redirect"].status_code in (302, 303, 307)
    assert responses["not found"].status_code == 404
    assert responses["unauthorized"].status_code == 401
    for name, response in responses.items():
        assert response.status_code < 500, name
        for header, value in EVERYWHERE.items():
            assert response.headers.get(header) == value, (name, header)
        assert "strict-transport-security" not in response.headers  # http public URL
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy, name
        assert "https:" not in policy, name  # nothing from another site, /docs included
        assert "script-src 'self';" in policy, name
    assert responses["page"].headers["cache-control"] == "no-store"
    assert "script-src 'self';" in responses["page"].headers["content-security-policy"]


def test_even_an_unexpected_500_carries_the_security_headers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_url="https://videos.example.com")
    app = create_app(settings)

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)  # answered by Starlette's outermost error layer
    browser = {"Accept": "text/html,*/*;q=0.8"}
    with serving(settings, app) as url:  # uvicorn closes the connection after a 500
        response = httpx.get(f"{url}/broken")
        page = httpx.get(f"{url}/broken", headers=browser)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    # A browser gets a page saying so, with a way back and nothing of the traceback.
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "Something went wrong on our side" in page.text and 'href="/login"' in page.text
    assert "a bug" not in page.text and "RuntimeError" not in page.text
    for header, value in EVERYWHERE.items():
        assert response.headers.get(header) == value, header
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_production_hides_the_api_docs_sends_hsts_and_warns_about_docs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    production = {"env": "production", "smtp_url": "smtp://127.0.0.1:9"}
    https = make_settings(tmp_path / "a", public_url="https://videos.example.com", **production)
    with serving(https) as url, httpx.Client(base_url=url) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
        assert client.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
    assert https.startup_warnings() == []
    enabled = make_settings(tmp_path / "b", api_docs=True, public_url="https://x", **production)
    with serving(enabled) as url, httpx.Client(base_url=url) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200
    with caplog.at_level(logging.WARNING):
        log_startup_warnings(enabled)  # what ``reelwatch server`` does before serving
    assert "REELWATCH_API_DOCS is on in production" in caplog.text
    env = {
        "REELWATCH_HOME": str(enabled.home),
        "REELWATCH_ENV": "production",
        "REELWATCH_SMTP_URL": "smtp://127.0.0.1:9",
        "REELWATCH_PUBLIC_URL": "https://x",
        "REELWATCH_API_DOCS": "true",
        "COLUMNS": "400",
    }
    doctor = CliRunner().invoke(cli, ["doctor"], env=env)
    assert "REELWATCH_API_DOCS is on in production" in doctor.output


def test_a_stalled_upload_body_is_answered_408_and_its_connection_closed(
    guarded: tuple[Settings, str],
) -> None:
    settings, _ = guarded
    token = token_for(settings)
    body = multipart(b"x" * 10_000)
    with connect(settings) as sock:
        sock.sendall(upload_head(token, len(body)) + body[:3000])
        started = time.monotonic()
        answer = read_until_closed(sock)  # stalls: the server must speak and hang up
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"code":"request_timeout"' in answer
    assert 0.9 < waited < 5
    incoming = settings.media_root / "incoming"
    assert wait_until(lambda: not any(incoming.iterdir()), timeout=10)  # nothing half-kept


def test_an_idle_keep_alive_connection_is_closed(guarded: tuple[Settings, str]) -> None:
    settings, _ = guarded
    with connect(settings) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert waited < 5  # keep_alive_seconds=1, not for ever


def test_a_slow_but_steady_upload_succeeds(guarded: tuple[Settings, str], tmp_path: Path) -> None:
    settings, _ = guarded
    token = token_for(settings)
    body = multipart(
        make_video(tmp_path / "clip.mp4", duration_s=0.5, width=64, height=48).read_bytes()
    )
    pieces = [body[i : i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
    with connect(settings) as sock:
        sock.sendall(upload_head(token, len(body)))
        started = time.monotonic()
        for piece in pieces:
            time.sleep(0.6)  # the client's pace: each gap under the 1 s body deadline
            sock.sendall(piece)
        answer = sock.recv(65536)
    assert time.monotonic() - started > 2  # longer in total than the deadline
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]


def test_a_request_head_that_never_ends_is_refused_at_the_bound(
    guarded: tuple[Settings, str],
) -> None:
    settings, _ = guarded
    answer = b""
    with connect(settings) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):  # up to 64 KiB of one header, never finished
                sock.sendall(b"a" * 1024)
            answer = read_until_closed(sock)
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed on us mid-send: the 400 may be lost with the reset
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 ")
    # The connection is over: the server did not keep buffering.
    with connect(settings) as other:
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_until_closed(other).startswith(b"HTTP/1.1 200 ")
