"""Titles and addresses sent to the API become one clean line or a 422, before they can
reach an e-mail header."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from instance import LiveInstance, free_port
from reelwatch.config import load_settings
from reelwatch.db.models import StatusSubscription, Video


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[LiveInstance]:
    settings = load_settings(home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}")
    live = LiveInstance(settings, workers=0).start()  # nothing is processed: no media needed
    yield live
    live.stop()


def post_video(instance: LiveInstance, title: str, filename: str = "clip.mp4") -> dict[str, object]:
    response = instance.client().post(
        "/api/v1/videos", files={"file": (filename, b"not looked at")}, data={"title": title}
    )
    return {"http": response.status_code, **response.json()}


def test_a_title_with_line_breaks_is_stored_as_one_line(instance: LiveInstance) -> None:
    video = post_video(instance, "holiday\r\nBcc: spy@evil.example\x00\u2028\u202e  end\t")
    assert video["http"] == 201
    assert video["title"] == "holiday Bcc: spy@evil.example end"
    with instance.db.read() as session:
        assert session.scalar(select(Video.title)) == "holiday Bcc: spy@evil.example end"


def test_a_blank_title_is_the_file_name_and_a_long_one_is_refused(instance: LiveInstance) -> None:
    assert post_video(instance, " \r\n\t")["title"] == "clip.mp4"
    refused = post_video(instance, "x" * 201)
    assert refused["http"] == 422
    assert refused["error"] == {
        "code": "invalid_request",
        "message": "title: at most 200 characters, this one has 201",
    }
    assert post_video(instance, "x" * 200)["http"] == 201, "the bound itself is fine"
    with instance.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Video)) == 2
    store = instance.settings.media_root
    assert len(list((store / "videos").iterdir())) == 2, "the refused upload left no file"
    assert list((store / "incoming").iterdir()) == []


@pytest.mark.parametrize(
    "email",
    ["a@example.com, b@example.com", "a@example.com\r\nBcc: c@evil.example", "A <a@example.com>"],
)
def test_the_status_subscription_takes_exactly_one_address(
    instance: LiveInstance, email: str
) -> None:
    response = instance.client().post("/api/v1/status/subscribe", json={"email": email})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "one e-mail address" in response.json()["error"]["message"]
    with instance.db.read() as session:
        assert session.scalar(select(func.count()).select_from(StatusSubscription)) == 0
