"""A live reelwatch for the web tests (uvicorn, workers, mail dispatcher, mail sink) and
Debian's Chromium driven by Playwright; no browser is downloaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

import samples
from instance import LiveInstance
from reelwatch.notify.sink import MailSink
from web.support import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, web_settings


@pytest.fixture(scope="package")
def web_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web") / "home"


@pytest.fixture(scope="package")
def mail_sink(web_home: Path) -> Iterator[MailSink]:
    """The built-in sink, storing where the mailbox page reads ($REELWATCH_HOME/mail)."""
    sink = MailSink(web_home / "mail")
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="package")
def live(web_home: Path, mail_sink: MailSink) -> Iterator[LiveInstance]:
    instance = LiveInstance(
        web_settings(web_home, mail_sink.port), workers=2, dispatchers=1
    ).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="package")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-second test picture with sound: small, quick to process, and playable."""
    folder = tmp_path_factory.mktemp("web-media")
    return samples.make_video(folder / "beach day.mp4", duration_s=2.0)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh --test installs it")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], None]:
    """Saves the page to docs/screenshots/NAME.png under --update-screenshots."""
    update = bool(request.config.getoption("--update-screenshots"))

    def take(page: Page, name: str) -> None:
        if update:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return take
