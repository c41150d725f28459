"""What users and admins can do from the pages, in a real browser: rename, delete with a
confirmation, a title at upload, the upload's progress, cancel and failure reason, the
admin actions, and the timeline in plain words."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect
from sqlalchemy import select

from instance import LiveInstance, upload, wait_for_outcome, wait_until
from reelwatch.db.models import WorkerRecord
from web.support import form_token, signed_in_client, signed_in_page

pytestmark = pytest.mark.web

PROCESSING_S = 90_000  # ms: a two-second clip on two busy cores


def flash(page: Page) -> str:
    return page.locator(".flash").inner_text()


def test_rename_then_delete_after_a_confirmation(
    live: LiveInstance, browser: Browser, clip: Path
) -> None:
    client = live.client("rita@example.com")
    video = upload(client, clip, title="first name")
    context, page = signed_in_page(browser, live.url, live.token("rita@example.com"))
    with context:
        page.goto(f"/videos/{video['id']}")
        page.fill("#title", "  the <b>second</b>\nname ")
        page.get_by_role("button", name="Rename").click()
        expect(page.locator(".flash")).to_have_text(
            "Renamed to \u201cthe <b>second</b> name\u201d."
        )
        expect(page.locator("h1")).to_have_text("the <b>second</b> name")

        page.get_by_role("link", name="Delete…").click()
        question = "Delete \u201cthe <b>second</b> name\u201d and its files? This cannot be undone."
        expect(page.locator(".confirm")).to_contain_text(question)
        page.get_by_role("link", name="Cancel").click()  # nothing happens
        expect(page).to_have_url(re.compile(rf"/videos/{video['id']}$"))
        assert client.get(f"/api/v1/videos/{video['id']}").status_code == 200

        page.get_by_role("link", name="Delete…").click()
        page.get_by_role("button", name="Delete").click()
        expect(page).to_have_url(re.compile(r"/videos$"))
        expect(page.locator(".flash")).to_have_text(
            "Deleted \u201cthe <b>second</b> name\u201d and its files."
        )
        expect(page.locator(f"[data-video-id='{video['id']}']")).to_have_count(0)
    assert client.get(f"/api/v1/videos/{video['id']}").status_code == 404


def test_upload_with_a_title_shows_progress_steps_and_the_end(
    live: LiveInstance, browser: Browser, clip: Path
) -> None:
    context, page = signed_in_page(browser, live.url, live.token("uma@example.com"))
    with context:
        page.goto("/upload")
        page.fill("[data-title-input]", "our beach")
        page.set_input_files("[data-file-input]", str(clip))
        row = page.locator(".upload").filter(has_text=clip.name)
        expect(row.locator("[data-role=status]")).to_have_text("ready", timeout=PROCESSING_S)
        # The end state, however far the last progress figure the page saw was.
        expect(row.locator("progress[data-role=progress]")).to_have_js_property("value", 1)
        expect(row.locator("[data-role=step]")).to_have_text("Ready to watch.")
        row.get_by_role("link", name="Open").click()
        expect(page.locator("h1")).to_have_text("our beach")


def test_upload_progress_speed_time_left_and_cancel(
    live: LiveInstance, browser: Browser, tmp_path: Path
) -> None:
    big = tmp_path / "slow.mp4"
    big.write_bytes(b"\x01" * 900_000)  # under the 1 MB limit; sent at 100 KB/s
    client = live.client("vic@example.com")
    before = len(client.get("/api/v1/videos").json()["videos"])
    context, page = signed_in_page(browser, live.url, live.token("vic@example.com"))
    with context:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 100_000},
        )
        page.goto("/upload")
        page.set_input_files("[data-file-input]", str(big))
        row = page.locator(".upload").filter(has_text="slow.mp4")
        expect(row.locator(".message")).to_have_text(
            re.compile(r"Uploading… \d+ % · [\d.]+ [KM]B of [\d.]+ KB · [\d.]+ [KM]?B/s · .+ left"),
            timeout=20_000,
        )
        row.get_by_role("button", name="Cancel").click()
        expect(row.locator(".message")).to_have_text("Upload cancelled: the file was not saved.")
    assert len(client.get("/api/v1/videos").json()["videos"]) == before


def test_a_file_that_fails_shows_the_reason(live: LiveInstance, browser: Browser) -> None:
    context, page = signed_in_page(browser, live.url, live.token("wes@example.com"))
    with context:
        page.goto("/upload")
        notes: FilePayload = {
            "name": "notes.txt",
            "mimeType": "text/plain",
            "buffer": b"a shopping list\n",
        }
        page.set_input_files("[data-file-input]", files=[notes])
        row = page.locator(".upload").filter(has_text="notes.txt")
        expect(row.locator("[data-role=status]")).to_have_text("failed", timeout=PROCESSING_S)
        reason = row.locator("[data-role=reason]")
        expect(reason).to_contain_text("Failed: ")
        video_id = row.get_attribute("data-video-id")
        assert video_id
        message = live.client("wes@example.com").get(f"/api/v1/videos/{video_id}").json()
        expect(reason).to_contain_text(message["error"]["message"])


def test_admin_actions_each_say_what_happened(live: LiveInstance, browser: Browser) -> None:
    worker = live.add_worker()
    token = live.token("root@example.com", admin=True)
    context, page = signed_in_page(browser, live.url, token)
    with context:
        page.goto("/admin/actions")
        silence_and_unsilence(page)
        retry_refused_for_an_input_code(page)
        open_and_resolve_an_incident(page)
        schedule_and_cancel_maintenance(page)
        drain(page, live, worker.id)


def silence_and_unsilence(page: Page) -> None:
    form = page.get_by_role("form", name="Silence a rule")
    form.get_by_label("Rule or pattern").fill("check:web-test:*")
    form.get_by_label("For").fill("90m")
    form.get_by_label("Comment").fill("moving racks")
    form.get_by_role("button", name="Silence").click()
    expect(page.locator(".flash")).to_have_text("Silenced check:web-test:* for 90m.")
    silenced = page.locator("[data-silences] li").filter(has_text="check:web-test:*")
    expect(silenced).to_contain_text("moving racks")
    silenced.get_by_role("button", name="Unsilence check:web-test:*").click()
    expect(page.locator(".flash")).to_contain_text("ended: its alerts are sent again")
    expect(page.locator("[data-silences] li").filter(has_text="check:web-test:*")).to_have_count(0)


def retry_refused_for_an_input_code(page: Page) -> None:
    page.select_option("#retry-code", "input_invalid")
    page.locator("form[action='/admin/actions/retry']").get_by_role("button").click()
    expect(page.locator(".flash")).to_contain_text(
        "Not retried: videos failed with input_invalid are not retried: "
    )


def open_and_resolve_an_incident(page: Page) -> None:
    form = page.get_by_role("form", name="Open an incident")
    form.get_by_label("What users read").fill("Uploads are slow while we move a disk.")
    form.get_by_role("button", name="Open incident").click()
    expect(page.locator(".flash")).to_have_text(re.compile(r"^Incident \d+ open"))
    expect(page.locator("#banners")).to_contain_text("Uploads are slow while we move a disk.")
    number = re.search(r"Incident (\d+)", flash(page))
    assert number
    page.get_by_role("button", name=f"Resolve incident {number[1]}").click()
    expect(page.locator(".flash")).to_have_text(
        f"Incident {number[1]} resolved: its banner is gone."
    )
    expect(page.locator("#banners")).not_to_contain_text("move a disk")


def schedule_and_cancel_maintenance(page: Page) -> None:
    form = page.get_by_role("form", name="Schedule maintenance")
    form.get_by_label("Start").fill("+1d")
    form.get_by_label("End").fill("+26h")
    form.get_by_label("What users read").fill("Database upgrade.")
    form.get_by_role("button", name="Schedule maintenance").click()
    expect(page.locator(".flash")).to_have_text(re.compile(r"^Maintenance \d+ scheduled, "))
    expect(page.locator("#banners")).to_contain_text("Planned maintenance")
    number = re.search(r"Maintenance (\d+)", flash(page))
    assert number
    page.get_by_role("button", name=f"Cancel maintenance {number[1]}").click()
    expect(page.locator(".flash")).to_have_text(
        f"Maintenance {number[1]} cancelled; 0 held uploads released."
    )
    expect(page.locator("#banners")).not_to_contain_text("Database upgrade.")
    # A refused window says why.
    form.get_by_label("Start").fill("+2h")
    form.get_by_label("End").fill("+1h")
    form.get_by_label("What users read").fill("Backwards.")
    form.get_by_role("button", name="Schedule maintenance").click()
    expect(page.locator(".flash")).to_have_text(
        "No maintenance scheduled: a maintenance window must end after it starts."
    )


def drain(page: Page, live: LiveInstance, worker_id: str) -> None:
    page.reload()
    page.get_by_role("button", name=f"Drain {worker_id}").click()
    expect(page.locator(".flash")).to_contain_text(f"Draining {worker_id}")

    def stopped() -> bool:
        with live.db.read() as session:
            state = session.scalar(select(WorkerRecord.state).where(WorkerRecord.id == worker_id))
        return state == "stopped"

    wait_until(stopped, timeout=30)
    page.reload()
    expect(page.locator(f"[data-worker='{worker_id}']")).to_have_count(0)


def test_a_user_gets_403_on_the_admin_actions(live: LiveInstance, browser: Browser) -> None:
    token = live.token("yan@example.com")
    context, page = signed_in_page(browser, live.url, token)
    with context:
        response = page.goto("/admin/actions")
        assert response and response.status == 403
        expect(page.locator("main")).to_contain_text("This page is for admins.")
    with signed_in_client(live.url, token) as user:
        csrf = form_token(user.get("/upload").text)
        for path, fields in [
            ("/admin/actions/incidents", {"message": "fake", "uploads": "automatic"}),
            ("/admin/actions/silences", {"rule": "x", "for": "1h"}),
            ("/admin/actions/retry", {"code": "timeout"}),
        ]:
            answer: httpx.Response = user.post(path, data={**fields, "csrf_token": csrf})
            assert answer.status_code == 403, path
            assert "This page is for admins." in answer.text


def test_the_timeline_in_plain_words_and_the_detail_for_admins(
    live: LiveInstance, browser: Browser, clip: Path
) -> None:
    client = live.client("zoe@example.com")
    video = wait_for_outcome(client, upload(client, clip, title="words")["id"])
    assert video["status"] == "ready"
    context, page = signed_in_page(browser, live.url, live.token("zoe@example.com"))
    with context:
        page.goto(f"/videos/{video['id']}")
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("Upload received and stored")
        expect(timeline).to_contain_text(re.compile(r"Checked the file: \d+\u00d7\d+, \d+ s"))
        expect(timeline).to_contain_text(re.compile(r"Made the first version to play: \d+p"))
        expect(timeline).to_contain_text("Playable: the first version can be watched")
        expect(timeline).to_contain_text("Made the other versions: none needed")
        expect(timeline).to_contain_text("Ready to watch")
        expect(timeline).to_contain_text("Nothing more to do")
        text = timeline.inner_text()
        for internal in ("/", "{", "attempt", "probe", "transcode", "task_", "elapsed"):
            assert internal not in text, f"{internal!r} in the user's timeline"
        expect(timeline.locator("details")).to_have_count(0)
    admin = live.token("root@example.com", admin=True)
    context, page = signed_in_page(browser, live.url, admin)
    with context:
        page.goto(f"/videos/{video['id']}")
        detail = page.locator("#timeline details").filter(has_text="task probe").last
        expect(detail.locator("dl")).not_to_be_visible()
        detail.locator("summary").click()
        expect(detail).to_contain_text("task_succeeded")
        expect(detail.locator("dl")).to_contain_text("duration_s")
