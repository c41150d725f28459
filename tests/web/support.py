"""Helpers for the web tests: the instance's settings, Debian's Chromium through
Playwright, and signing in from a browser or an HTTP client."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from instance import LiveInstance, free_port
from reelwatch.config import Settings, load_settings
from reelwatch.database import utcnow
from reelwatch.db.models import AlertState, CheckTransition, LoadSample, Silence

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)
MAX_UPLOAD_MB = 1  # small, so that "too large" is quick to show


def web_settings(home: Path, smtp_port: int) -> Settings:
    return load_settings(
        home=home,
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=5,
        retry_backoff_scale=0.0,
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        max_upload_mb=MAX_UPLOAD_MB,
    )


def signed_in_page(
    browser: Browser, base_url: str, token: str, *, javascript: bool = True, phone: bool = False
) -> tuple[BrowserContext, Page]:
    """A fresh browser context signed in with ``token`` through the sign-in form."""
    context = browser.new_context(
        base_url=base_url,
        java_script_enabled=javascript,
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
    )
    page = context.new_page()
    page.goto("/login")
    page.fill("#token", token)
    page.get_by_role("button", name="Sign in with token").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    return context, page


def fits_width(page: Page) -> bool:
    """Nothing wider than the viewport: no sideways scrolling on a phone."""
    return bool(
        page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    )


POKING_OUT = """() => [...document.querySelectorAll("body *")]
  .filter((e) => e.checkVisibility({ visibilityProperty: true }))
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .filter((e) => { // inside a box that scrolls or clips, it is meant to
    for (let p = e.parentElement; p; p = p.parentElement)
      if (getComputedStyle(p).overflowX !== "visible") return false;
    return true; })
  .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.outerHTML.slice(0, 60)}`)"""


def poking_out(page: Page) -> list[str]:
    """The visible elements reaching past the viewport's right edge, outside any box
    that scrolls: what a scrollWidth within a pixel of the viewport can still hide."""
    return list(page.evaluate(POKING_OUT))


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@contextmanager
def signed_in_client(base_url: str, token: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a session cookie, signed in like a browser would."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        login = client.get("/login")
        response = client.post(
            "/login", data={"csrf_token": form_token(login.text), "token": token}
        )
        assert response.status_code == 303, response.text
        yield client


def insert_load_history(live: LiveInstance, minutes: int) -> None:
    """A morning's worth of samples, as the monitor would have written them."""
    now = utcnow().replace(second=0, microsecond=0)
    with live.db.write() as session:
        for age in range(minutes, 0, -1):
            wave = math.sin(age / 12)
            session.merge(
                LoadSample(
                    at=now - timedelta(minutes=age),
                    waiting_tasks=max(0, round(6 + 6 * wave)),
                    oldest_wait_s=max(0.0, 40 + 40 * wave),
                    tasks_done_per_minute=8 + 3 * math.cos(age / 9),
                    failure_ratio=0.05 if age % 30 else 0.25,
                    live_workers=2,
                    cpu_percent=55 + 30 * wave,
                    memory_percent=48 + 5 * math.cos(age / 20),
                    disk_free_percent=71 - age / 60,
                )
            )


def insert_alert_history(live: LiveInstance) -> None:
    """A firing alert an admin silenced, and a check that was down for a while."""
    now = utcnow()
    with live.db.write() as session:
        value = "the oldest task has waited 14 min and nothing finished in 5 min"
        session.merge(AlertState(rule="queue_stalled", state="firing", since=now, value=value))
        session.add(
            Silence(
                rule="queue_stalled",
                starts_at=now,
                ends_at=now + timedelta(hours=2),
                created_by="root@example.com",
                comment="moving the workers to a new host",
            )
        )
        for minutes, state in ((50, "critical"), (45, "ok")):
            at = now - timedelta(minutes=minutes)
            session.add(CheckTransition(name="database", state=state, at=at, detail=""))
