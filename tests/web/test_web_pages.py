"""The pages in a real browser: upload to ready without reloading, play, read the mail,
the admin dashboard's charts and graphs, reading without JavaScript."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy import delete

import samples
from instance import LiveInstance, upload, wait_for_outcome
from reelwatch.db.models import AlertState
from reelwatch.notify.sink import MailSink
from web.support import (
    DESKTOP,
    MAX_UPLOAD_MB,
    insert_alert_history,
    insert_load_history,
    signed_in_page,
    web_settings,
)

pytestmark = pytest.mark.web

PROCESSING_S = 90_000  # ms: a two-second clip on two busy cores


def test_sign_in_page_says_what_went_wrong(live: LiveInstance, browser: Browser) -> None:
    with browser.new_context(base_url=live.url, viewport=DESKTOP) as context:
        page = context.new_page()
        page.goto("/videos")
        expect(page).to_have_url(re.compile(r"/login\?next=/videos$"))
        page.fill("#token", "rw_not-a-real-token")
        page.get_by_role("button", name="Sign in with token").click()
        expect(page.get_by_role("alert")).to_contain_text("That did not match an account")
        page.fill("#token", live.token("dana@example.com"))
        page.get_by_role("button", name="Sign in with token").click()
        expect(page).to_have_url(re.compile(r"/videos$"))  # back where they were going


def test_upload_watch_ready_play_and_read_the_mail(
    live: LiveInstance, browser: Browser, clip: Path
) -> None:
    context, page = signed_in_page(browser, live.url, live.token("dana@example.com"))
    with context:
        page.goto("/upload")
        page.evaluate("() => { window.notReloaded = true; }")
        page.set_input_files("[data-file-input]", str(clip))
        row = page.locator(".upload").filter(has_text=clip.name)
        expect(row.locator("[data-role=status]")).to_have_text("ready", timeout=PROCESSING_S)
        assert page.evaluate("() => window.notReloaded === true"), "the page was reloaded"

        row.get_by_role("link", name="Open").click()
        expect(page.locator("#summary [data-role=status]")).to_have_text("ready")
        duration = page.wait_for_function(
            "() => { const v = document.querySelector('video[data-player]');"
            " return v && v.readyState >= 1 && v.duration > 0 && v.duration; }"
        ).json_value()
        assert math.isclose(duration, 2.0, abs_tol=0.2)
        expect(page.locator("#timeline")).to_contain_text("Ready to watch")
        expect(page.locator("#graph svg")).to_contain_text("finalize")
        expect(page.get_by_role("link", name="Download").first).to_be_visible()

        page.goto("/videos")
        card = page.locator(".card").filter(has_text="beach day")
        expect(card.locator("img")).to_be_visible()

        page.goto("/mail")
        page.get_by_role("link", name="Your video is ready: beach day").click()
        expect(page.locator(".mail-text")).to_contain_text("beach day")


@pytest.fixture
def paused(tmp_path: Path, mail_sink: MailSink) -> Iterator[LiveInstance]:
    """An instance with no worker yet: a video waits until the test adds one."""
    instance = LiveInstance(web_settings(tmp_path / "home", mail_sink.port), workers=0).start()
    yield instance
    instance.stop()


def test_video_page_follows_processing_live(
    paused: LiveInstance, browser: Browser, clip: Path
) -> None:
    video = upload(paused.client("erin@example.com"), clip)
    context, page = signed_in_page(browser, paused.url, paused.token("erin@example.com"))
    with context:
        page.goto(f"/videos/{video['id']}")
        expect(page.locator("#summary [data-role=status]")).to_have_text("queued")
        page.evaluate("() => { window.notReloaded = true; }")
        paused.add_worker()
        expect(page.locator("#summary [data-role=status]")).to_have_text(
            "ready", timeout=PROCESSING_S
        )
        expect(page.locator("video[data-player]")).to_be_visible()
        expect(page.locator("#timeline")).to_contain_text("Ready to watch")
        expect(page.locator("#graph .chip.state-succeeded").first).to_be_visible()
        assert page.evaluate("() => window.notReloaded === true"), "the page was reloaded"


def test_a_failure_is_explained_and_says_why_it_is_not_retried(
    live: LiveInstance, browser: Browser, tmp_path: Path
) -> None:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(random.Random(7).randbytes(65536))
    client = live.client("jo@example.com")
    video = wait_for_outcome(client, upload(client, noise, title="holiday noise")["id"])
    context, page = signed_in_page(browser, live.url, live.token("jo@example.com"))
    with context:
        page.goto(f"/videos/{video['id']}")
        failure = page.locator(".failure")
        expect(failure).to_contain_text("The file you uploaded is not a video we can read")
        expect(failure).to_contain_text("input_invalid")
        expect(page.locator("#graph .chip.state-failed").first).to_be_visible()
        # The upload itself is broken: the same file would fail the same way.
        expect(page.locator("[data-role=no-retry]")).to_contain_text("upload a new file")
        expect(page.get_by_role("button", name="Retry")).to_have_count(0)


def test_upload_errors_are_told_in_words(
    live: LiveInstance, browser: Browser, tmp_path: Path
) -> None:
    too_big = tmp_path / "huge.mp4"
    too_big.write_bytes(b"\0" * (MAX_UPLOAD_MB * 2**20 + 1))
    context, page = signed_in_page(browser, live.url, live.token("dana@example.com"))
    with context:
        page.goto("/upload")
        page.set_input_files("[data-file-input]", str(too_big))
        expect(page.locator(".upload.failed")).to_contain_text(
            f"Too large: huge.mp4 is 1.0 MB, and this server accepts files up to {MAX_UPLOAD_MB} MB"
        )

        def maintenance(route: Route) -> None:
            message = "reelwatch is down for maintenance until 14:00 UTC"
            route.fulfill(
                status=503,
                headers={"Retry-After": "600"},
                json={"error": {"code": "maintenance", "message": message}},
            )

        page.route("**/api/v1/videos", maintenance)
        small = samples.make_video(tmp_path / "small.mp4")
        page.set_input_files("[data-file-input]", str(small))
        expect(page.locator(".upload.failed").filter(has_text="small.mp4")).to_contain_text(
            "Not accepting uploads right now (maintenance or overload): reelwatch is down "
            "for maintenance until 14:00 UTC. Try again in 600 s."
        )


def test_admin_dashboard_draws_charts_and_the_workflow(
    live: LiveInstance, browser: Browser
) -> None:
    insert_load_history(live, minutes=120)
    insert_alert_history(live)
    context, page = signed_in_page(browser, live.url, live.token("root@example.com", admin=True))
    try:
        show_dashboard_and_workflow(page)
    finally:
        context.close()
        with live.db.write() as session:  # the instance is shared: end the fake emergency
            session.execute(delete(AlertState).where(AlertState.rule == "queue_stalled"))


def show_dashboard_and_workflow(page: Page) -> None:
    page.goto("/admin")
    for chart in ("queue", "throughput", "failures", "resources"):
        drawn = page.locator(f"[data-chart={chart}]")
        expect(drawn).to_have_attribute("data-points", re.compile(r"^1[0-9]{2}$"))
        expect(drawn.locator("canvas")).to_be_visible()
    expect(page.locator("table.workers tbody tr").first).to_be_visible()
    overview = page.locator("#overview")
    expect(overview).to_contain_text("live workers")
    expect(overview.locator(".alert")).to_contain_text("queue_stalled firing (critical)")
    expect(overview.locator(".alert")).to_contain_text("silenced until")
    expect(page.locator(".history").last).to_contain_text("database critical")

    page.goto("/admin/workflow")
    graph = page.locator("figure.graph svg")
    for step in ("probe", "first", "ladder", "thumbnail", "finalize"):
        expect(graph).to_contain_text(step)

    page.goto("/videos")
    expect(page.get_by_role("heading", name="All videos")).to_be_visible()


def test_pages_read_without_javascript(  # phone width: test_web_screens.py
    live: LiveInstance, browser: Browser, clip: Path
) -> None:
    client = live.client("fran@example.com")
    video = wait_for_outcome(client, upload(client, clip, title="no script")["id"])
    token = live.token("fran@example.com")
    context, page = signed_in_page(browser, live.url, token, javascript=False)
    with context:
        page.goto(f"/videos/{video['id']}")
        expect(page.locator("#summary [data-role=status]")).to_have_text("ready")
        expect(page.locator("#timeline")).to_contain_text("Upload received and stored")
        expect(page.locator("#timeline")).to_contain_text("Ready to watch")
        expect(page.locator("#graph table.tasks")).to_contain_text("finalize")
        page.goto("/videos")
        expect(page.locator(".card").filter(has_text="no script")).to_contain_text("ready")
