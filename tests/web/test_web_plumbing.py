"""What every page stands on: errors in the reader's format, /docs offline, the phone
menu and its tap targets, compression and cache lifetimes of static files."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from instance import LiveInstance, upload, wait_for_outcome
from reelwatch.web.assets import IMMUTABLE, SHORT_LIFETIME, fingerprint, static_url
from web.support import PHONE, signed_in_client, signed_in_page

pytestmark = pytest.mark.web

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
TAP_PX = 43.5  # 44 px, less a rounding of fractional layout


def is_json_error(response: httpx.Response, status: int) -> bool:
    body = response.json()
    return response.status_code == status and set(body["error"]) == {"code", "message"}


def test_errors_are_pages_for_browsers_and_json_for_everyone_else(live: LiveInstance) -> None:
    html = {"Accept": BROWSER_ACCEPT}
    with httpx.Client(base_url=live.url) as client:
        page = client.get("/no/such/page", headers=html)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "There is no page at this address." in page.text
        assert 'href="/login"' in page.text and 'href="/"' in page.text
        for accept in ("*/*", "application/json", "text/html;q=0, */*"):
            assert is_json_error(client.get("/no/such/page", headers={"Accept": accept}), 404)
        for path in ("/api/v1/nope", "/metrics/x", "/healthz/x"):
            assert is_json_error(client.get(path, headers=html), 404), path
        assert is_json_error(client.post("/healthz", headers=html), 405)
        wrong_method = client.delete("/login", headers=html)
        assert wrong_method.status_code == 405 and "<h1>" in wrong_method.text
        assert "GET" in wrong_method.headers["allow"]
    with signed_in_client(live.url, live.token("errors@example.com")) as client:
        bad_id = client.get("/videos/" + "x" * 300, headers=html)
        assert bad_id.status_code == 422 and "<h1>Not valid</h1>" in bad_id.text
        assert 'href="/videos"' in bad_id.text and 'href="/login"' not in bad_id.text
        assert is_json_error(client.get("/videos/" + "x" * 300), 422)
        assert is_json_error(client.get("/api/v1/videos/" + "x" * 300, headers=html), 422)


def test_a_browser_lost_on_the_site_gets_a_page_with_a_way_back(
    live: LiveInstance, browser: Browser
) -> None:
    context = browser.new_context(base_url=live.url)
    with context:
        page = context.new_page()
        response = page.goto("/nowhere/at/all")
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        page.get_by_role("link", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/login"))
        response = page.goto("/api/v1/nope")
        assert response is not None and response.status == 404
        assert response.json()["error"]["code"] == "not_found"


def test_docs_render_from_this_site_alone(live: LiveInstance, browser: Browser) -> None:
    context = browser.new_context(base_url=live.url)
    with context:
        page = context.new_page()
        requested: list[str] = []
        refused: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: refused.append(message.text))
        page.goto("/docs")
        operation = page.locator(".opblock-get").filter(has_text="/api/v1/videos").first
        expect(operation).to_be_visible()
        expect(operation.locator(".opblock-summary-method")).to_have_text("GET")
        hosts = {urlsplit(url).hostname for url in requested if not url.startswith("data:")}
        assert hosts == {"127.0.0.1"}, requested
        assert not [text for text in refused if "Content Security Policy" in text], refused
        assert page.locator("link[rel=icon]").get_attribute("href") == static_url("favicon.svg")
    with httpx.Client(base_url=live.url) as client:
        icon = client.get("/favicon.ico", follow_redirects=True)
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
        assert client.get("/redoc").status_code == 404


def tap_target_misses(page: Page, selector: str) -> list[str]:
    """The visible elements under ``selector`` smaller than 44 x 44 px."""
    misses = []
    for element in page.locator(selector).all():
        box = element.bounding_box()
        if element.is_visible() and box and min(box["width"], box["height"]) < TAP_PX:
            misses.append(f"{element.evaluate('e => e.outerHTML')[:80]}: {box}")
    return misses


def test_on_a_phone_the_menu_folds_away_and_everything_is_big_enough_to_tap(
    live: LiveInstance, browser: Browser
) -> None:
    targets = "header a, header button, header summary, main form :is(a, button, input, select)"
    signed_out = browser.new_context(base_url=live.url, viewport=PHONE, is_mobile=True)
    with signed_out:
        page = signed_out.new_page()
        page.goto("/login")
        assert tap_target_misses(page, targets) == []
        page.goto("/nowhere")
        assert tap_target_misses(page, ".ways-back a") == []
    admin = live.token("phone.admin@example.com", admin=True)
    context, page = signed_in_page(browser, live.url, admin, phone=True)
    with context:
        page.goto("/videos")
        header = page.locator("header.topbar").bounding_box()
        assert header and header["height"] < 0.15 * PHONE["height"], header
        menu = page.locator("details.menu-compact")
        dashboard = menu.get_by_role("link", name="Dashboard")
        expect(dashboard).to_be_hidden()
        assert tap_target_misses(page, targets + ", .filters a") == []
        menu.locator("summary").click()
        for name in ("Upload", "Videos", "Dashboard", "Workflow"):
            expect(menu.get_by_role("link", name=name, exact=True)).to_be_visible()
        expect(menu.get_by_role("button", name="Sign out")).to_be_visible()
        assert tap_target_misses(page, targets) == []
        dashboard.click()
        expect(page).to_have_url(re.compile(r"/admin$"))


def test_text_is_compressed_media_and_event_streams_are_not(live: LiveInstance, clip: Path) -> None:
    client = live.client("gzip@example.com")
    video = wait_for_outcome(client, upload(client, clip, title="gzip")["id"])
    assert video["status"] == "ready"
    gzip = {"Accept-Encoding": "gzip"}
    with signed_in_client(live.url, live.token("gzip@example.com")) as browser:
        page = browser.get("/videos", headers=gzip)
        assert page.headers.get("content-encoding") == "gzip" and "gzip" in page.text
        for path in ("/openapi.json", static_url("app.css")):
            assert browser.get(path, headers=gzip).headers.get("content-encoding") == "gzip"
        assert "content-encoding" not in browser.get("/api/v1/videos").headers  # not asked
        base = f"/api/v1/videos/{video['id']}"
        rendition = video["renditions"][0]["name"]
        for path in (f"{base}/renditions/{rendition}", f"{base}/thumbnail"):
            media = browser.get(path, headers=gzip)
            assert media.status_code == 200 and "content-encoding" not in media.headers, path
        with browser.stream("GET", "/stream/videos", headers=gzip) as stream:
            assert stream.status_code == 200
            assert "content-encoding" not in stream.headers
            seen = ""
            for chunk in stream.iter_text():  # arrives event by event, not at the end
                seen += chunk
                if video["id"] in seen:
                    break
            assert "event: video" in seen


def test_static_urls_carry_a_fingerprint_and_keep_for_a_year(live: LiveInstance) -> None:
    with httpx.Client(base_url=live.url) as client:
        page = client.get("/login").text
        css = re.search(r'href="(/static/app\.css\?v=[0-9a-f]{12})"', page)
        assert css, "the stylesheet's URL has no fingerprint"
        assert re.search(r'src="/static/app\.js\?v=[0-9a-f]{12}"', page)
        assert client.get(css.group(1)).headers["cache-control"] == IMMUTABLE
        for stale in ("/static/app.css", "/static/app.css?v=0123456789ab"):
            assert client.get(stale).headers["cache-control"] == SHORT_LIFETIME, stale
        assert client.get("/static/nothing.css").status_code == 404


def test_the_fingerprint_follows_the_content(tmp_path: Path) -> None:
    style = tmp_path / "a.css"
    style.write_text("body { color: red }")
    first = fingerprint(style)
    assert first == fingerprint(style) and len(first) == 12
    style.write_text("body { color: blue; }")
    assert fingerprint(style) not in ("", first)
    assert fingerprint(tmp_path / "missing.css") == ""
