"""``PATCH /api/v1/videos/{id}``: the owner (or an admin) renames a video; the title is
cleaned as at upload; another user gets 404; a cookie call needs the CSRF token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from instance import LiveInstance, free_port
from reelwatch.config import load_settings
from reelwatch.db.models import Video
from web.support import form_token, signed_in_client


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveInstance]:
    home = tmp_path_factory.mktemp("rename") / "home"
    settings = load_settings(home=home, bind=f"127.0.0.1:{free_port()}")
    live = LiveInstance(settings, workers=0).start()  # nothing is processed: no media needed
    yield live
    live.stop()


def new_video(instance: LiveInstance, email: str) -> dict[str, Any]:
    response = instance.client(email).post(
        "/api/v1/videos", files={"file": ("clip.mp4", b"not looked at")}, data={"title": "old"}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def stored_title(instance: LiveInstance, video_id: str) -> str | None:
    with instance.db.read() as session:
        return session.scalar(select(Video.title).where(Video.id == video_id))


def test_the_owner_renames_and_the_title_is_one_clean_line(instance: LiveInstance) -> None:
    video = new_video(instance, "owner@example.com")
    owner = instance.client("owner@example.com")
    path = f"/api/v1/videos/{video['id']}"
    renamed = owner.patch(path, json={"title": " summer\r\nBcc: x@evil.example\u202e "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "summer Bcc: x@evil.example"
    assert owner.get(path).json()["title"] == "summer Bcc: x@evil.example"
    # Empty: the file name again, as at upload.
    assert owner.patch(path, json={"title": "  "}).json()["title"] == "clip.mp4"
    admin = instance.client("boss@example.com", admin=True)
    assert admin.patch(path, json={"title": "by the admin"}).status_code == 200
    assert stored_title(instance, video["id"]) == "by the admin"


def test_another_user_gets_404_and_bad_titles_get_422(instance: LiveInstance) -> None:
    video = new_video(instance, "keeper@example.com")
    path = f"/api/v1/videos/{video['id']}"
    stranger = instance.client("stranger@example.com").patch(path, json={"title": "mine now"})
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"
    owner = instance.client("keeper@example.com")
    for body, says in [
        ({"title": "x" * 201}, "title: at most 200 characters, this one has 201"),
        ({"title": "a\x00b"}, "NUL"),
        ({"title": 5}, "title"),
        ({}, "title"),
    ]:
        answer = owner.patch(path, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid_request"
        assert says in answer.json()["error"]["message"], answer.text
    assert owner.patch("/api/v1/videos/" + "0" * 32, json={"title": "t"}).status_code == 404
    assert stored_title(instance, video["id"]) == "old", "nothing refused was stored"


def test_a_cookie_call_needs_the_csrf_header(instance: LiveInstance) -> None:
    video = new_video(instance, "cookie@example.com")
    path = f"/api/v1/videos/{video['id']}"
    with signed_in_client(instance.url, instance.token("cookie@example.com")) as browser:
        refused = browser.patch(path, json={"title": "forged"})
        assert refused.status_code == 403
        assert "X-CSRF-Token" in refused.json()["error"]["message"]
        token = form_token(browser.get("/upload").text)
        sent = browser.patch(path, json={"title": "from the page"}, headers={"X-CSRF-Token": token})
        assert sent.status_code == 200, sent.text
    assert stored_title(instance, video["id"]) == "from the page"


def test_the_rename_form_tells_what_happened(instance: LiveInstance) -> None:
    video = new_video(instance, "former@example.com")
    with signed_in_client(instance.url, instance.token("former@example.com")) as browser:
        page = browser.get(f"/videos/{video['id']}").text
        token = form_token(page)
        form = f"/videos/{video['id']}/title"
        long = browser.post(form, data={"csrf_token": token, "title": "y" * 300})
        assert long.status_code == 303
        assert (
            "Not renamed: title: at most 200 characters"
            in browser.get(long.headers["location"]).text
        )
        nul = browser.post(form, data={"csrf_token": token, "title": "a\x00"})
        assert nul.status_code == 400
        forged = browser.post(form, data={"csrf_token": "wrong", "title": "forged"})
        assert forged.status_code == 403
    assert stored_title(instance, video["id"]) == "old"
