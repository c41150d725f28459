"""The public status page and the notice banners, in the browser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

from playwright.sync_api import Browser, Page, expect

from instance import LiveInstance
from reelwatch.database import utcnow
from reelwatch.insights.checks import CRITICAL, OK, CheckResult, record_check
from reelwatch.notices.service import close_notice, schedule_maintenance, sync_auto_incidents
from web.support import DESKTOP, PHONE, signed_in_page


def test_an_automatic_incident_shows_a_banner_everywhere_and_clears_by_itself(
    live: LiveInstance, browser: Browser, screenshot: Callable[[Page, str], None]
) -> None:
    now = utcnow()
    two_days_ago = datetime.combine(now.date() - timedelta(days=2), time())
    history = [(-24, OK), (6, CRITICAL), (9, OK)]  # three hours down, two days ago
    with live.db.write() as session:
        for hours, state in history:
            at = two_days_ago + timedelta(hours=hours)
            record_check(session, "storage", CheckResult(state, state), at)
        sync_auto_incidents(session, ["failure_ratio_high"], now)
        upcoming = schedule_maintenance(
            session,
            starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=1, hours=2),
            message="Moving to a bigger disk.",
            uploads="automatic",
            by="test",
            now=now,
        )
    anonymous = browser.new_context(base_url=live.url, java_script_enabled=False, viewport=PHONE)
    try:
        page = anonymous.new_page()
        page.goto("/status")
        expect(page.locator("[data-status]")).to_have_attribute("data-status", "degraded")
        expect(page.locator(".banner-warning")).to_contain_text("failing more than usual")
        expect(page.locator(".banner-info")).to_contain_text("Moving to a bigger disk.")
        storage = page.locator(".component", has_text="Media storage")
        expect(storage).to_contain_text("% up over 90 days")
        expect(storage.locator(".day-partial, .day-down")).to_have_count(1)
        page.fill("#email", "Waiting@Example.com")
        page.get_by_role("button", name="Tell me once").click()
        expect(page.locator(".flash")).to_contain_text("We will e-mail waiting@example.com")
        screenshot(page, "status")

        context, signed_in = signed_in_page(browser, live.url, live.token("alice@example.com"))
        signed_in.set_viewport_size(DESKTOP)
        signed_in.goto("/videos")
        expect(signed_in.locator(".banner-warning")).to_contain_text("failing more than usual")
        with live.db.write() as session:
            sync_auto_incidents(session, [], utcnow())  # the alert cleared
        signed_in.goto("/videos")
        expect(signed_in.locator(".banner-warning")).to_have_count(0)
        context.close()
        page.goto("/status")
        expect(page.locator("[data-status]")).to_have_attribute("data-status", "operational")
        expect(page.locator(".incidents")).to_contain_text("failing more than usual")
        expect(page.locator(".subscribe")).to_have_count(0)
    finally:
        anonymous.close()
        with live.db.write() as session:
            close_notice(session, upcoming.id, utcnow())
