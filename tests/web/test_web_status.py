"""The public status page and the notice banners, in the browser."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import httpx
from playwright.sync_api import Browser, expect
from sqlalchemy import delete

from instance import LiveInstance
from reelwatch.database import utcnow
from reelwatch.db.models import AlertState, CheckTransition
from reelwatch.insights.checks import CRITICAL, OK, CheckResult, record_check
from reelwatch.notices.service import (
    add_update,
    close_notice,
    open_incident,
    schedule_maintenance,
    sync_auto_incidents,
)
from web.support import DESKTOP, PHONE, signed_in_page


def test_an_automatic_incident_shows_a_banner_everywhere_and_clears_by_itself(
    live: LiveInstance, browser: Browser
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
        expect(storage).to_contain_text("% up over the 4 days with data (of 90)")
        expect(storage.locator(".day-partial, .day-down")).to_have_count(1)
        page.fill("#email", "Waiting@Example.com")
        page.get_by_role("button", name="Tell me once").click()
        expect(page.locator(".flash")).to_contain_text("We will e-mail waiting@example.com")

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


def test_days_without_data_an_incident_on_one_component_and_its_updates(
    live: LiveInstance, browser: Browser
) -> None:
    now = utcnow()
    watched_from = datetime.combine(now.date() - timedelta(days=2), time(12))
    with live.db.write() as session:  # e-mail watched for the last 3 days only
        session.add(CheckTransition(name="smtp", state=OK, at=watched_from, detail="ok"))
        incident = open_incident(
            session,
            message="Thumbnails are slow to appear.",
            by="test",
            now=now - timedelta(minutes=30),
            components="storage",
        )
        add_update(session, incident.id, message="Found: a full disk.", by="t", now=now)
        add_update(
            session,
            incident.id,
            message="Investigating.",
            by="t",
            now=now - timedelta(minutes=20),
        )
    anonymous = browser.new_context(base_url=live.url, java_script_enabled=False)
    try:
        page = anonymous.new_page()
        page.goto("/status")
        refresh = page.locator('meta[http-equiv="refresh"]')
        expect(refresh).to_have_attribute("content", "60")
        expect(page.locator("[data-status]")).to_have_attribute("data-status", "degraded")
        notice = page.locator(f'[data-notice="{incident.id}"]')
        expect(notice).to_contain_text("Affects: Media storage")
        updates = notice.locator(".incident-updates li")
        expect(updates).to_have_text([re.compile("Found: a full disk"), re.compile("Investigat")])
        storage = page.locator('.component[data-component="Media storage"]')
        expect(storage).to_have_class(re.compile("component-affected"))
        expect(storage.locator(".state-incident")).to_have_text("incident")
        expect(page.locator(".component-affected")).to_have_count(1)  # only storage
        email = page.locator('.component[data-component="E-mail"]')
        expect(email).to_contain_text("% up over the 3 days with data (of 90)")
        expect(email.locator(".day-none")).to_have_count(87)
        expect(email.locator(".day-none").first).to_have_attribute(
            "title", re.compile(": no data$")
        )
        public = httpx.get(f"{live.url}/api/v1/status").json()
        [shown] = [n for n in public["notices"] if n["id"] == incident.id]
        assert shown["components"] == ["storage"]
        assert [u["message"] for u in shown["updates"]] == ["Found: a full disk.", "Investigating."]
    finally:
        anonymous.close()
        with live.db.write() as session:
            close_notice(session, incident.id, utcnow())


def test_an_emergency_takes_the_processing_row_down_with_the_headline(live: LiveInstance) -> None:
    now = utcnow()
    with live.db.write() as session:  # the ping passed before the workers went
        record_check(session, "ping_ffmpeg", CheckResult(OK, "encoded in 0.4 s"), now)
        session.merge(AlertState(rule="no_live_worker", state="firing", since=now, value="0"))
    try:
        page = httpx.get(f"{live.url}/status").text
        assert 'data-status="down"' in page
        row = page.split('data-component="Video processing"')[1].split("</li>")[0]
        assert "state-critical" in row and "no worker is running: videos wait" in row
    finally:
        with live.db.write() as session:
            session.execute(delete(AlertState).where(AlertState.rule == "no_live_worker"))
