"""The video page's player in Chromium: HLS through hls.js, playable while the rest of
the ladder is made, and the rendition picker switching what is shown."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

import samples
from hls_check import hold_after_playable, hold_ladder
from instance import LiveInstance, free_port, upload
from reelwatch.config import load_settings
from web.support import signed_in_page

pytestmark = pytest.mark.web

PROCESSING_MS = 90_000


def live_instance(home: Path) -> LiveInstance:
    settings = load_settings(
        home=home,
        bind=f"127.0.0.1:{free_port()}",
        lease_seconds=5,
        retry_backoff_scale=0.0,
        renditions="144,240",
    )
    return LiveInstance(settings, workers=2).start()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[LiveInstance, threading.Event]]:
    live = live_instance(tmp_path / "home")
    release = hold_ladder(live)
    yield live, release
    release.set()
    live.stop()


def plays(page: Page) -> None:
    """Start the player (muted: no gesture needed) and see its clock advance."""
    page.evaluate("() => { const v = document.querySelector('video[data-player]');"
                  " v.muted = true; v.play(); }")  # fmt: skip
    start = page.wait_for_function(
        "() => { const v = document.querySelector('video[data-player]');"
        " return v.currentTime > 0.2 && v.currentTime; }",
        timeout=30_000,
    ).json_value()
    page.wait_for_function(
        f"() => document.querySelector('video[data-player]').currentTime > {start} + 0.5",
        timeout=30_000,
    )


def shows_height(page: Page, height: int) -> None:
    page.wait_for_function(
        f"() => document.querySelector('video[data-player]').videoHeight === {height}",
        timeout=30_000,
    )


@pytest.mark.parametrize(
    ("encoding", "first_height"),
    [
        (("-pix_fmt", "yuv444p"), 144),  # browsers cannot play it: the lowest rung first
        (("-g", "25"), 240),  # browser-ready: the source itself, copied, first
    ],
    ids=["encoded", "copied"],
)
def test_the_page_plays_hls_while_processing_and_switches_rendition(
    held: tuple[LiveInstance, threading.Event],
    browser: Browser,
    tmp_path: Path,
    encoding: tuple[str, ...],
    first_height: int,
) -> None:
    live, release = held
    source = samples.make_video(
        tmp_path / "walk.mp4", duration_s=9.0, width=426, height=240, extra_args=encoding
    )
    video = upload(live.client("pat@example.com"), source)
    context, page = signed_in_page(browser, live.url, live.token("pat@example.com"))
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    with context:
        page.goto(f"/videos/{video['id']}")
        # The lowest rung alone, while the video is still processing: it plays already.
        expect(page.locator("[data-role=playable]")).to_be_visible(timeout=PROCESSING_MS)
        expect(page.locator("#summary [data-role=status]")).to_have_text("processing")
        plays(page)
        shows_height(page, first_height)

        release.set()
        expect(page.locator("#summary [data-role=status]")).to_have_text(
            "ready", timeout=PROCESSING_MS
        )
        page.reload()
        picker = page.locator("[data-quality]")
        expect(picker).to_be_visible()
        expect(picker.locator("option")).to_have_text(["Auto", "144p", "240p"])
        plays(page)
        picker.select_option(label="240p")
        shows_height(page, 240)
        picker.select_option(label="144p")
        shows_height(page, 144)
        plays(page)
    assert not blocked, blocked


def test_the_page_plays_the_first_rendition_while_it_is_still_being_encoded(
    browser: Browser, tmp_path: Path
) -> None:
    """Its encode held once its first segments are out: the page plays that EVENT
    playlist from its start, with no MP4 to fall back on yet."""
    live = live_instance(tmp_path / "home")
    ladder = hold_ladder(live)  # the other rendition too: the first is all there is
    release = hold_after_playable(live)
    try:
        source = samples.make_video(
            tmp_path / "walk.mp4",
            duration_s=9.0,
            width=426,
            height=240,
            extra_args=("-pix_fmt", "yuv444p"),
        )
        video = upload(live.client("pat@example.com"), source)
        context, page = signed_in_page(browser, live.url, live.token("pat@example.com"))
        with context:
            page.goto(f"/videos/{video['id']}")
            expect(page.locator("[data-role=playable]")).to_be_visible(timeout=PROCESSING_MS)
            source_url = page.locator("video[data-player]").get_attribute("src") or ""
            assert source_url.startswith("blob:")  # hls.js's Media Source, no MP4
            expect(page.locator("table.renditions")).to_have_count(0)
            plays(page)
            shows_height(page, 144)
            # From its start, not its live edge: what was played begins at 0.
            first_played = "() => document.querySelector('video[data-player]').played.start(0)"
            assert page.evaluate(first_played) < 0.5
            release.set()
            ladder.set()
            expect(page.locator("#summary [data-role=status]")).to_have_text(
                "ready", timeout=PROCESSING_MS
            )
    finally:
        release.set()
        ladder.set()
        live.stop()
