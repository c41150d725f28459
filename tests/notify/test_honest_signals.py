"""What users are told is true and actionable: outcome e-mails link to the video's web
page (through sign-in), and a retry is offered only where it can help."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from instance import LiveInstance, mailing_instance, upload, wait_for_outcome, wait_until
from receivers import AlertReceiver
from reelwatch.db.models import OutboxMessage
from reelwatch.notify.sink import MailSink, list_mail, read_mail
from web.support import form_token


def start_instance(
    tmp_path: Path, sink: MailSink, receiver: AlertReceiver | None = None, *, workers: int = 1
) -> LiveInstance:
    return mailing_instance(tmp_path, sink, receiver.url if receiver else "", workers=workers)


def bodies_about(sink: MailSink, video: dict[str, Any], subject: str = "") -> list[tuple[str, str]]:
    """(text, HTML) of every e-mail the sink received about ``video``."""
    found = []
    for stored in list_mail(sink.folder):
        if video["title"] in stored.subject and subject in stored.subject:
            message = read_mail(sink.folder, stored.id)
            text = message.get_body(preferencelist=("plain",))
            html = message.get_body(preferencelist=("html",))
            assert text is not None and html is not None
            found.append((str(text.get_content()), str(html.get_content())))
    return found


def failure_mail(sink: MailSink, video: dict[str, Any]) -> list[tuple[str, str]]:
    return bodies_about(sink, video, "could not process")


def assert_links_to_the_page(instance: LiveInstance, body: str, video_id: str) -> None:
    assert f"{instance.settings.resolved_public_url}/videos/{video_id}" in body
    assert "/api/" not in body


def outbox_rows(instance: LiveInstance) -> int:
    with instance.db.read() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


def test_outcome_emails_link_to_the_page_and_input_failures_are_not_retried(
    tmp_path: Path,
    sink: MailSink,
    receiver: AlertReceiver,
    good_samples: dict[str, Path],
    broken_samples: dict[str, Path],
) -> None:
    instance = start_instance(tmp_path, sink, receiver)
    try:
        client = instance.client("erin@example.com")
        good = upload(client, good_samples["h264"], title="beach")
        bad = upload(client, broken_samples["text"], title="notes")
        assert wait_for_outcome(client, good["id"])["status"] == "ready"
        failed = wait_for_outcome(client, bad["id"])
        assert failed["error"]["code"] == "input_invalid"
        wait_until(lambda: bodies_about(sink, good) and bodies_about(sink, bad))
        wait_until(lambda: receiver.received, timeout=60)
        for video in (good, bad):
            [(text, html)] = bodies_about(sink, video)
            assert_links_to_the_page(instance, text, video["id"])
            assert_links_to_the_page(instance, html, video["id"])
        [(failure_text, _)] = bodies_about(sink, bad)
        assert "upload the new file" in failure_text and "would fail the same way" in failure_text
        [alert] = receiver.received
        assert f"/videos/{bad['id']}" in alert["message"]
        rows = outbox_rows(instance)

        refused = client.post(f"/api/v1/videos/{bad['id']}/retry")
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "not_retryable" and "upload a new file" in error["message"]
        admin = instance.client("root@example.com", admin=True)
        bulk = admin.post("/api/v1/admin/retry", params={"code": "input_invalid"})
        assert bulk.status_code == 409 and "upload a new file" in bulk.json()["error"]["message"]
        # Refused before anything was enqueued: no second mail, no new alert.
        assert outbox_rows(instance) == rows
        assert client.get(f"/api/v1/videos/{bad['id']}").json()["attempts"] == 1
        assert len(bodies_about(sink, bad)) == 1 and len(receiver.received) == 1
    finally:
        instance.stop()


def test_the_page_through_sign_in_offers_retry_only_where_it_helps(
    tmp_path: Path, sink: MailSink, broken_samples: dict[str, Path], good_samples: dict[str, Path]
) -> None:
    instance = start_instance(tmp_path, sink, workers=0)
    try:
        client = instance.client("fay@example.com")
        bad = upload(client, broken_samples["text"], title="notes")
        video = upload(client, good_samples["h264"], title="outage")
        original = instance.settings.media_root / "videos" / video["id"] / "original"
        hidden = original.with_name("hidden")
        original.rename(hidden)  # the store lost it for a while: a service failure
        instance.add_worker()
        assert wait_for_outcome(client, bad["id"])["status"] == "failed"
        outage = wait_for_outcome(client, video["id"])
        assert outage["status"] == "failed" and outage["error"]["recoverable"], outage
        wait_until(lambda: failure_mail(sink, video))
        [(text, html)] = failure_mail(sink, video)
        assert "retry it from its page" in text and "automatically" not in text
        assert_links_to_the_page(instance, html, video["id"])

        with signed_in_browser(instance, f"/videos/{bad['id']}", "fay@example.com") as browser:
            page = browser.get(f"/videos/{bad['id']}").text
            assert "upload a new file" in page
            assert f'action="/videos/{bad["id"]}/retry"' not in page
            page = browser.get(f"/videos/{video['id']}").text
            assert f'action="/videos/{video["id"]}/retry"' in page
            assert "automatically" not in _failure_section(page)

        hidden.rename(original)
        retried = client.post(f"/api/v1/videos/{video['id']}/retry")
        assert retried.status_code == 202
        assert wait_for_outcome(client, video["id"])["status"] == "ready"
    finally:
        instance.stop()


def _failure_section(page: str) -> str:
    match = re.search(r'<div class="failure.*?</div>', page, re.S)
    assert match, "the page shows no failure"
    return match[0]


@contextmanager
def signed_in_browser(instance: LiveInstance, path: str, email: str) -> Iterator[httpx.Client]:
    """A cookie-holding client that asked for ``path`` signed out, was sent to sign in
    with that path as ``next``, signed in, and was sent back there."""
    with httpx.Client(base_url=instance.url, timeout=30) as client:
        redirect = client.get(path)
        assert redirect.status_code == 303
        assert redirect.headers["location"] == f"/login?next={path}"
        login = client.get(redirect.headers["location"])
        token = instance.token(email)
        signed_in = client.post(
            "/login", data={"csrf_token": form_token(login.text), "token": token, "next": path}
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == path
        yield client
