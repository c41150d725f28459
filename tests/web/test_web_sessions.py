"""Sessions that the server can end, and the throttles on what anyone may try without an
account (sign-in, status subscriptions), on SQLite and PostgreSQL. Plain HTTP against a
live instance; X-Forwarded-For sent from loopback (a trusted proxy) names other clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from instance import LiveInstance, free_port
from reelwatch import accounts
from reelwatch.accounts import rotate_token, set_password
from reelwatch.api.session import SESSION_COOKIE
from reelwatch.config import load_settings
from reelwatch.database import utcnow
from reelwatch.db.models import User, WebSession
from reelwatch.notices.service import sync_auto_incidents
from reelwatch.operations.gc import purge_expired_rows
from web.support import form_token, signed_in_client

pytestmark = pytest.mark.web

PER_ACCOUNT, PER_IP, PER_ADDRESS = 3, 5, 2


@pytest.fixture
def instance(tmp_path: Path, database_url: str) -> Iterator[LiveInstance]:
    settings = load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        bind=f"127.0.0.1:{free_port()}",
        login_failures_per_account=PER_ACCOUNT,
        login_failures_per_ip=PER_IP,
        status_subscriptions_per_ip=PER_IP,
        status_subscriptions_per_address=PER_ADDRESS,
    )
    live = LiveInstance(settings, workers=0).start()
    yield live
    live.stop()


def with_password(live: LiveInstance, email: str, password: str = "correct horse") -> str:
    live.token(email)  # creates the user
    with live.db.write() as session:
        set_password(session, email, password)
    return email


def password_sign_in(
    live: LiveInstance, email: str, password: str, client_ip: str = "203.0.113.1"
) -> httpx.Response:
    """One sign-in from a fresh browser at ``client_ip``."""
    with httpx.Client(base_url=live.url, headers={"X-Forwarded-For": client_ip}) as browser:
        csrf = form_token(browser.get("/login").text)
        form = {"csrf_token": csrf, "email": email, "password": password}
        return browser.post("/login", data=form)


def assert_throttled(response: httpx.Response, most_s: int) -> None:
    assert response.status_code == 429, response.text
    assert 0 < int(response.headers["Retry-After"]) <= most_s


@pytest.fixture
def scrypt_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per scrypt the server computes (the real one still runs)."""
    runs: list[int] = []
    real: Callable[..., bytes] = accounts._scrypt

    def counted(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        runs.append(n)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(accounts, "_scrypt", counted)
    return runs


def test_password_guesses_are_refused_before_scrypt_per_account_then_per_ip(
    instance: LiveInstance, scrypt_runs: list[int]
) -> None:
    kim = with_password(instance, "kim@example.com")
    scrypt_runs.clear()  # setting the password hashed it
    for _ in range(PER_ACCOUNT):
        assert password_sign_in(instance, kim, "wrong guess").status_code == 401
    assert len(scrypt_runs) == PER_ACCOUNT
    for password in ("another guess", "correct horse"):  # the right one too, while locked
        refused = password_sign_in(instance, kim, password)
        assert_throttled(refused, 300)
        assert "Too many failed sign-ins; try again in about 5 minutes." in refused.text
        assert 'id="email"' in refused.text  # the sign-in form again, to retry later
    assert len(scrypt_runs) == PER_ACCOUNT  # refused before any hashing
    # Kim from elsewhere is refused as well: the limit is the account's.
    assert_throttled(password_sign_in(instance, kim, "correct horse", "198.51.100.9"), 300)

    # Another account from the same IP signs in; a success costs the IP nothing...
    lee = with_password(instance, "lee@example.com")
    assert password_sign_in(instance, lee, "correct horse").status_code == 303
    # ...until the IP's failures reach its own limit, for every account.
    for _ in range(PER_IP - PER_ACCOUNT):
        assert password_sign_in(instance, lee, "wrong guess").status_code == 401
    assert_throttled(password_sign_in(instance, lee, "correct horse"), 300)
    assert password_sign_in(instance, lee, "correct horse", "198.51.100.9").status_code == 303


def test_status_subscriptions_are_throttled_per_address_and_per_ip(instance: LiveInstance) -> None:
    with instance.db.write() as session:  # not operational: subscribing is possible
        sync_auto_incidents(session, ["failure_ratio_high"], utcnow())

    def subscribe(email: str, client_ip: str) -> httpx.Response:
        return httpx.post(
            f"{instance.url}/api/v1/status/subscribe",
            json={"email": email},
            headers={"X-Forwarded-For": client_ip},
        )

    target = "victim@example.com"
    for index in range(PER_ADDRESS):  # from anywhere, the address has its own limit
        assert subscribe(target, f"198.51.100.{index}").status_code == 202
    flooded = subscribe(target.upper(), "198.51.100.99")
    assert_throttled(flooded, 86400)
    assert flooded.json()["error"]["code"] == "too_many_requests"

    for index in range(PER_IP):
        assert subscribe(f"reader{index}@example.com", "203.0.113.5").status_code == 202
    busy = subscribe("one.more@example.com", "203.0.113.5")
    assert_throttled(busy, 3600)
    assert busy.json()["error"]["code"] == "too_many_requests"
    # IPv6 counts per /64: one host may hold all of its addresses.
    for index in range(PER_IP):
        assert subscribe(f"six{index}@example.com", f"2001:db8:1:2::{index}").status_code == 202
    assert_throttled(subscribe("six.more@example.com", "2001:db8:1:2:ffff::1"), 3600)
    assert subscribe("six.more@example.com", "2001:db8:1:3::1").status_code == 202

    with httpx.Client(base_url=instance.url) as browser:  # the status page's form
        csrf = form_token(browser.get("/status").text)
        page = browser.post("/status/subscribe", data={"csrf_token": csrf, "email": target})
        assert_throttled(page, 86400)
        assert "Too many subscriptions" in page.text


def session_rows(live: LiveInstance, email: str) -> list[WebSession]:
    with live.db.read() as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
        return list(session.scalars(select(WebSession).where(WebSession.user_id == user_id)))


def copy_of(browser: httpx.Client) -> httpx.Client:
    """Another client holding only a copy of ``browser``'s session cookie."""
    cookie = browser.cookies[SESSION_COOKIE]
    return httpx.Client(base_url=str(browser.base_url), cookies={SESSION_COOKIE: cookie})


def test_signing_out_ends_the_session_on_the_server(instance: LiveInstance) -> None:
    with signed_in_client(instance.url, instance.token("max@example.com")) as browser:
        stolen = copy_of(browser)
        assert stolen.get("/videos").status_code == 200
        assert stolen.get("/api/v1/videos").status_code == 200
        csrf = form_token(browser.get("/videos").text)
        assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
        assert stolen.get("/videos").headers["location"] == "/login?next=/videos"
        assert stolen.get("/api/v1/videos").status_code == 401
        stolen.close()
    [row] = session_rows(instance, "max@example.com")
    assert row.revoked_at is not None


def test_a_new_password_or_token_ends_every_session(instance: LiveInstance) -> None:
    nia = with_password(instance, "nia@example.com")
    url = instance.url
    with httpx.Client(base_url=url) as laptop, httpx.Client(base_url=url) as phone:
        for browser in (laptop, phone):
            csrf = form_token(browser.get("/login").text)
            form = {"csrf_token": csrf, "email": nia, "password": "correct horse"}
            assert browser.post("/login", data=form).status_code == 303
            assert browser.get("/videos").status_code == 200
        with instance.db.write() as session:
            set_password(session, nia, "battery staple")
        assert [b.get("/videos").status_code for b in (laptop, phone)] == [303, 303]

    with signed_in_client(instance.url, instance.token("nia@example.com")) as browser:
        assert browser.get("/videos").status_code == 200
        with instance.db.write() as session:
            rotate_token(session, nia)
        assert browser.get("/api/v1/videos").status_code == 401
    assert all(row.revoked_at is not None for row in session_rows(instance, nia))


def test_last_seen_is_written_at_most_once_a_minute_and_expired_rows_go(
    instance: LiveInstance,
) -> None:
    with signed_in_client(instance.url, instance.token("oli@example.com")) as browser:
        [row] = session_rows(instance, "oli@example.com")
        browser.get("/videos")
        [again] = session_rows(instance, "oli@example.com")
        assert again.last_seen_at == row.last_seen_at  # seen within the minute: no write
        two_minutes_ago = utcnow() - timedelta(minutes=2)
        with instance.db.write() as session:
            session.execute(update(WebSession).values(last_seen_at=two_minutes_ago))
        browser.get("/videos")
        [touched] = session_rows(instance, "oli@example.com")
        assert touched.last_seen_at > two_minutes_ago

        with instance.db.write() as session:
            session.execute(update(WebSession).values(expires_at=utcnow()))
        assert browser.get("/videos").status_code == 303
    assert purge_expired_rows(instance.db, utcnow()) >= 1
    assert session_rows(instance, "oli@example.com") == []
