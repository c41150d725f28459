"""Every page at desktop and phone size, signed in as who may see it, with real content
on it (a ready video, a failed one, a firing alert, an open incident): its main content
shows, nothing scrolls sideways on a phone, and ``--update-screenshots`` saves
docs/screenshots/NAME.png and NAME-phone.png."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Locator,
    Page,
    Request,
    expect,
)
from sqlalchemy import delete

from instance import LiveInstance, upload, wait_for_outcome, wait_until
from reelwatch.database import utcnow
from reelwatch.db.models import AlertState
from reelwatch.notices.service import close_notice, open_incident
from web.support import (
    DESKTOP,
    PHONE,
    fits_width,
    insert_alert_history,
    insert_load_history,
    poking_out,
    signed_in_client,
    signed_in_page,
)

pytestmark = pytest.mark.web

Screenshot = Callable[[Page, str], None]
USER = "sam@example.com"
ADMIN = "screens.admin@example.com"
SIZES = {"desktop": False, "phone": True}


@dataclass(frozen=True)
class Scene:
    ready_id: str
    failed_id: str
    mail_path: str


@dataclass(frozen=True)
class Screen:
    name: str  # the screenshot's file name
    path: str  # formatted with the scene's fields
    who: str | None  # USER, ADMIN or signed out
    shows: str  # a selector for the page's main content


SCREENS = [
    Screen("sign-in", "/login", None, "form:has(#token)"),
    Screen("videos", "/videos", USER, ".card:has-text('beach day') img"),
    Screen("video", "/videos/{ready_id}", USER, "video[data-player]"),
    Screen("video-failed", "/videos/{failed_id}", USER, ".failure"),
    Screen("delete", "/videos/{ready_id}/delete", USER, ".confirm"),
    Screen("mailbox", "/mail", USER, "table.mail-list"),
    Screen("mail", "{mail_path}", USER, ".mail-text"),
    Screen("dashboard", "/admin", ADMIN, "#overview .alert"),
    Screen("workflow", "/admin/workflow", ADMIN, "figure.graph svg"),
    Screen("actions", "/admin/actions", ADMIN, "form[aria-label='Silence a rule']"),
    Screen("status", "/status", None, ".component[data-component='Media storage']"),
    Screen("not-found", "/no/such/page", USER, ".ways-back"),
    Screen("docs", "/docs", None, ".opblock-get"),
]


@pytest.fixture(scope="module")
def scene(
    live: LiveInstance, clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    """A ready video with its e-mail, a failed one, a firing alert and an open incident."""
    client = live.client(USER)
    noise = tmp_path_factory.mktemp("screens") / "noise.mp4"
    noise.write_bytes(random.Random(7).randbytes(65536))
    ready = upload(client, clip, title="beach day")
    failed = upload(client, noise, title="holiday noise")
    assert wait_for_outcome(client, ready["id"])["status"] == "ready"
    assert wait_for_outcome(client, failed["id"])["status"] == "failed"
    insert_load_history(live, minutes=120)
    insert_alert_history(live)
    with live.db.write() as session:
        incident = open_incident(
            session,
            message="Thumbnails are slow to appear while a disk is replaced.",
            by="test",
            now=utcnow(),
            components="storage",
        )
    with signed_in_client(live.url, live.token(USER)) as browser_like:

        def ready_mail() -> str | None:
            found = re.search(
                r'href="(/mail/[^"]+)">Your video is ready', browser_like.get("/mail").text
            )
            return found[1] if found else None

        mail_path: str = wait_until(ready_mail, timeout=30)
    live.token(ADMIN, admin=True)
    yield Scene(ready["id"], failed["id"], mail_path)
    with live.db.write() as session:  # the instance is shared: leave it calm
        close_notice(session, incident.id, utcnow())
        session.execute(delete(AlertState).where(AlertState.rule == "queue_stalled"))


def open_page(
    browser: Browser, live: LiveInstance, who: str | None, phone: bool
) -> tuple[BrowserContext, Page]:
    if who:
        return signed_in_page(browser, live.url, live.token(who), phone=phone)
    context = browser.new_context(
        base_url=live.url,
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
    )
    return context, context.new_page()


def shot_name(name: str, phone: bool) -> str:
    return f"{name}-phone" if phone else name


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS, ids=[s.name for s in SCREENS])
def test_each_page_shows_its_content_and_fits(
    live: LiveInstance,
    browser: Browser,
    scene: Scene,
    screen: Screen,
    size: str,
    screenshot: Screenshot,
) -> None:
    phone = SIZES[size]
    context, page = open_page(browser, live, screen.who, phone)
    with context:
        page.goto(screen.path.format(**vars(scene)))
        expect(page.locator(screen.shows).first).to_be_visible()
        if screen.who:
            expect(page).not_to_have_url(re.compile(r"/login"))
        assert fits_width(page), f"{screen.path} scrolls sideways at {size} width"
        assert poking_out(page) == [], screen.path
        screenshot(page, shot_name(screen.name, phone))


@pytest.mark.parametrize("size", SIZES)
def test_upload_page_shows_a_failure_a_cancel_and_progress(
    live: LiveInstance,
    browser: Browser,
    scene: Scene,
    tmp_path: Path,
    size: str,
    screenshot: Screenshot,
) -> None:
    phone = SIZES[size]
    context, page = signed_in_page(browser, live.url, live.token(USER), phone=phone)
    with context:
        page.goto("/upload")
        notes: FilePayload = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"a list\n"}
        page.set_input_files("[data-file-input]", files=[notes])
        failed = page.locator(".upload").filter(has_text="notes.txt")
        expect(failed.locator("[data-role=reason]")).to_contain_text("Failed: ", timeout=60_000)

        slow_network(context, page)
        cancelled = send_slowly(page, tmp_path / "first try.mp4")
        cancelled.get_by_role("button", name="Cancel").click()
        expect(cancelled.locator(".message")).to_have_text(
            "Upload cancelled: the file was not saved."
        )
        sending = send_slowly(page, tmp_path / "garden party.mp4")
        assert fits_width(page), f"/upload scrolls sideways at {size} width"
        assert poking_out(page) == []
        screenshot(page, shot_name("upload", phone))
        sending.get_by_role("button", name="Cancel").click()


def slow_network(context: BrowserContext, page: Page) -> None:
    """Uploads at 100 KB/s: long enough to see the progress and press Cancel."""
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {
        "offline": False,
        "latency": 0,
        "downloadThroughput": -1,
        "uploadThroughput": 100_000,
    }
    cdp.send("Network.emulateNetworkConditions", conditions)


def send_slowly(page: Page, path: Path) -> Locator:
    path.write_bytes(b"\x01" * 900_000)  # under the 1 MB limit: 9 s at 100 KB/s
    page.set_input_files("[data-file-input]", str(path))
    row = page.locator(".upload").filter(has_text=path.name)
    expect(row.locator(".message")).to_have_text(
        re.compile(r"Uploading… [1-9]\d* % · .+ left"), timeout=20_000
    )
    return row


# --- the pages as the API's mock-up: docs/web.md lists the API calls each page makes ---

WEB_DOC = Path(__file__).resolve().parents[2] / "docs" / "web.md"
CALL = re.compile(r"`((?:GET|POST|PATCH|PUT|DELETE) /[^`]*)`")
PAGE_OF_SCREEN = {
    "sign-in": "/login",
    "videos": "/videos",
    "video": "/videos/{id}",
    "video-failed": "/videos/{id}",
    "delete": "/videos/{id}/delete",
    "mailbox": "/mail",
    "mail": "/mail/{id}",
    "dashboard": "/admin",
    "workflow": "/admin/workflow",
    "actions": "/admin/actions",
    "status": "/status",
    "docs": "/docs",
}
# What a page loads once open: its players' metadata, its charts' data.
SETTLED = """() =>
  [...document.querySelectorAll("video[data-player]")].every((v) => v.readyState >= 1) &&
  [...document.querySelectorAll("[data-chart]")].every((c) => c.dataset.points)"""


def documented_calls() -> dict[str, tuple[set[str], set[str]]]:
    """docs/web.md's table: page -> (what the browser calls, the same data's calls)."""
    section = WEB_DOC.read_text().split("## The pages as the API's mock-up")[1]
    table = section.split("\n## ")[0]
    rows = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| `/")]
    return {
        page: (set(CALL.findall(browser_calls)), set(CALL.findall(same_data)))
        for pages, browser_calls, same_data in rows
        for page in re.findall(r"`(/[^`]*)`", pages)
    }


def call_template(method: str, url: str) -> str | None:
    """``GET /api/v1/videos/{id}/thumbnail`` for a request of the API, None for others."""
    path = urlsplit(url).path
    if not (path.startswith("/api/") or path == "/openapi.json"):
        return None
    path = re.sub(r"/[0-9a-f]{32}(?=/|$)", "/{id}", path)
    path = re.sub(r"/hls/.+$", "/hls/{path}", path)  # the master, playlists, segments
    return f"{method} {re.sub(r'/renditions/[^/]+$', '/renditions/{name}', path)}"


def record_api_calls(page: Page) -> Callable[[], set[str]]:
    """Starts recording the page's requests; the returned function gives the API calls
    made by the document now open (a request of the page before it has another Referer)."""
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))

    def calls() -> set[str]:
        here = urlsplit(page.url).path
        made = set()
        for request in requests:
            referer = urlsplit(request.header_value("referer") or "").path
            if referer == here and (call := call_template(request.method, request.url)):
                made.add(call)
        return made

    return calls


def test_the_pages_make_the_documented_api_calls(
    live: LiveInstance, browser: Browser, scene: Scene
) -> None:
    documented = documented_calls()
    seen: dict[str, set[str]] = {page: set() for page in documented}
    for screen in SCREENS:
        if screen.name not in PAGE_OF_SCREEN:
            continue
        context, page = open_page(browser, live, screen.who, phone=False)
        with context:
            calls = record_api_calls(page)
            page.goto(screen.path.format(**vars(scene)))
            expect(page.locator(screen.shows).first).to_be_visible()
            page.wait_for_function(SETTLED)
            seen[PAGE_OF_SCREEN[screen.name]] |= calls()
    context, page = signed_in_page(browser, live.url, live.token(USER))
    with context:
        page.goto("/upload")
        calls = record_api_calls(page)
        notes: FilePayload = {"name": "list.txt", "mimeType": "text/plain", "buffer": b"milk\n"}
        page.set_input_files("[data-file-input]", files=[notes])
        row = page.locator(".upload").filter(has_text="list.txt")
        expect(row.locator("[data-role=reason]")).to_contain_text("Failed: ", timeout=60_000)
        seen["/upload"] |= calls()
    assert seen == {page: browser_calls for page, (browser_calls, _) in documented.items()}

    operations = {
        f"{method.upper()} {re.sub(r'{[^}]+}', '{}', path)}"
        for path, item in live.client().get("/openapi.json").json()["paths"].items()
        for method in item
    } | {"GET /openapi.json"}
    same_data = {call for _, calls_of_page in documented.values() for call in calls_of_page}
    unknown = {call for call in same_data if re.sub(r"{[^}]+}", "{}", call) not in operations}
    assert unknown == set()
