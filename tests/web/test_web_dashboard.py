"""The admin dashboard's charts: the chosen window, units on every axis, and times in the
viewer's locale (a British browser reads 24-hour times)."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Browser, Page, expect

from instance import LiveInstance
from web.support import DESKTOP, insert_load_history

TWENTY_FOUR_HOUR = re.compile(r"^[0-2][0-9]:[0-5][0-9]$")


def attribute(page: Page, chart: str, name: str) -> str:
    return page.locator(f"[data-chart={chart}]").get_attribute(name) or ""


def chart_window_s(page: Page, chart: str) -> float:
    start, end = attribute(page, chart, "data-x-range").split()
    return float(end) - float(start)


def test_charts_honour_the_window_label_their_axes_and_read_24_hour_in_en_gb(
    live: LiveInstance, browser: Browser
) -> None:
    insert_load_history(live, minutes=30)  # half an hour of samples: less than any window
    context = browser.new_context(
        base_url=live.url, viewport=DESKTOP, locale="en-GB", timezone_id="Europe/London"
    )
    try:
        page = context.new_page()
        page.goto("/login")
        page.fill("#token", live.token("root@example.com", admin=True))
        page.get_by_role("button", name="Sign in with token").click()
        expect(page).not_to_have_url(re.compile(r"/login"))
        for hours in (24, 6):
            page.goto(f"/admin?hours={hours}")
            queue = page.locator("[data-chart=queue]")
            expect(queue).to_have_attribute("data-points", re.compile(r"^[1-9][0-9]*$"))
            expect(queue).to_have_attribute("data-x-range", re.compile(r"^\d+ \d+$"))
            assert abs(chart_window_s(page, "queue") - hours * 3600) < 120
        ticks = json.loads(attribute(page, "queue", "data-x-ticks"))
        assert ticks and all(TWENTY_FOUR_HOUR.match(tick) for tick in ticks), ticks
        axes = {
            chart: json.loads(
                page.locator(f"[data-chart={chart}]").get_attribute("data-axes") or ""
            )
            for chart in ("queue", "throughput", "failures", "resources")
        }
        assert axes["queue"] == ["time (Europe/London)", "waiting tasks", "oldest wait (s)"]
        assert axes["throughput"][1:] == ["tasks done (/min)"]
        assert axes["failures"][1:] == ["share (%)"] == axes["resources"][1:]
        overview = page.locator("#overview")
        expect(overview.locator("[data-cause=service]")).to_contain_text("service failures (1 h)")
        expect(overview.locator("[data-cause=input]")).to_contain_text("input failures (1 h)")
    finally:
        context.close()
