"""Who may see and change what through the pages: sessions, CSRF, ownership, escaping.
Plain HTTP with a session cookie, as a browser would send it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from instance import LiveInstance, upload, wait_for_outcome, wait_until
from reelwatch.accounts import set_password
from reelwatch.notify.sink import MailSink, StoredMail, list_mail
from web.support import form_token, signed_in_client

pytestmark = pytest.mark.web


def mail_to(sink: MailSink, email: str) -> list[StoredMail]:
    return [mail for mail in list_mail(sink.folder) if email in mail.recipients]


def read_stream_until(client: httpx.Client, path: str, marker: str) -> str:
    """The Server-Sent Events of ``path`` up to the first mention of ``marker``."""
    seen = ""
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        for chunk in response.iter_text():
            seen += chunk
            if marker in seen:
                return seen
    raise AssertionError(f"{path} ended without mentioning {marker}")


def test_no_page_leaks_another_users_data(
    live: LiveInstance, clip: Path, mail_sink: MailSink
) -> None:
    alice = live.client("alice.web@example.com")
    private = wait_for_outcome(alice, upload(alice, clip, title="alice private")["id"])
    [alice_mail] = wait_until(lambda: mail_to(mail_sink, "alice.web@example.com"))
    own = upload(live.client("bob.web@example.com"), clip, title="bob own")
    with signed_in_client(live.url, live.token("bob.web@example.com")) as bob:
        listing = bob.get("/videos").text
        assert "bob own" in listing and "alice private" not in listing
        assert private["id"] not in listing
        base = f"/api/v1/videos/{private['id']}"
        for path in (
            f"/videos/{private['id']}",
            f"/stream/videos/{private['id']}",
            base,
            f"{base}/events",
            f"{base}/thumbnail",
            f"{base}/renditions/480p",
            f"/mail/{alice_mail.id}",
        ):
            assert bob.get(path).status_code == 404, path
        csrf = form_token(listing)
        retry = bob.post(f"/videos/{private['id']}/retry", data={"csrf_token": csrf})
        assert retry.status_code == 404
        mailbox = bob.get("/mail").text
        assert alice_mail.id not in mailbox and "alice private" not in mailbox
        for path in ("/admin", "/admin/workflow", "/stream/admin", "/api/v1/admin/overview"):
            assert bob.get(path).status_code == 403, path
        assert private["id"] not in read_stream_until(bob, "/stream/videos", own["id"])


def test_forms_and_the_pages_api_calls_need_the_csrf_token(live: LiveInstance, clip: Path) -> None:
    token = live.token("hana@example.com")
    with httpx.Client(base_url=live.url) as stranger:
        assert stranger.post("/login", data={"token": token}).status_code == 403
    with signed_in_client(live.url, token) as hana:
        assert hana.post("/logout", data={"csrf_token": "guessed"}).status_code == 403
        with clip.open("rb") as handle:
            refused = hana.post("/api/v1/videos", files={"file": (clip.name, handle)})
        assert refused.status_code == 403
        assert "X-CSRF-Token" in refused.json()["error"]["message"]
        csrf = form_token(hana.get("/upload").text)
        with clip.open("rb") as handle:
            accepted = hana.post(
                "/api/v1/videos",
                files={"file": (clip.name, handle)},
                headers={"X-CSRF-Token": csrf},
            )
        assert accepted.status_code == 201, accepted.text
        # Reading needs no token: the pages' <video> and <img> elements cannot send one.
        assert hana.get(f"/api/v1/videos/{accepted.json()['id']}").status_code == 200


def test_sign_in_with_password_and_out(live: LiveInstance) -> None:
    live.token("gina@example.com")  # creates her
    with live.db.write() as session:
        set_password(session, "gina@example.com", "correct horse")
    with httpx.Client(base_url=live.url) as browser:
        csrf = form_token(browser.get("/login").text)
        form = {"csrf_token": csrf, "email": "Gina@example.com", "next": "//elsewhere.example"}
        wrong = browser.post("/login", data={**form, "password": "incorrect horse"})
        assert wrong.status_code == 401 and "did not match" in wrong.text
        signed_in = browser.post("/login", data={**form, "password": "correct horse"})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/videos"  # never to another site
        assert browser.get("/videos").status_code == 200

        with live.db.write() as session:  # a new password ends the sessions of the old one
            set_password(session, "gina@example.com", "battery staple")
        assert browser.get("/videos").headers["location"] == "/login?next=/videos"

        csrf = form_token(browser.get("/login").text)
        login = {"csrf_token": csrf, "email": "gina@example.com", "password": "battery staple"}
        assert browser.post("/login", data=login).status_code == 303
        signed_out = browser.post(
            "/logout", data={"csrf_token": form_token(browser.get("/videos").text)}
        )
        assert signed_out.headers["location"] == "/login"
        assert browser.get("/videos").status_code == 303


def test_what_users_write_is_escaped(live: LiveInstance, tmp_path: Path, clip: Path) -> None:
    named = tmp_path / "<img src=x onerror=alert(2)>.mp4"
    named.write_bytes(clip.read_bytes())
    client = live.client("ivy@example.com")
    video = upload(client, named, title="<script>alert(1)</script>")
    with signed_in_client(live.url, live.token("ivy@example.com")) as ivy:
        for path in ("/videos", f"/videos/{video['id']}"):
            page = ivy.get(path).text
            assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
            assert "<img src=x" not in page
        update = read_stream_until(ivy, "/stream/videos", video["id"])
        assert "<script>alert" not in update.replace("\\u003c", "<").replace('\\"', '"')
