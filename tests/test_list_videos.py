"""The video list: pages by cursor, who sees what, filters, and the API's items."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelwatch.accounts import create_user
from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Rendition, User, Video
from reelwatch.videos import service
from reelwatch.videos.status import VideoStatus
from reelwatch.web import create_app

START = datetime(2026, 3, 1, 12, 0, 0, 250000)
Lister = Callable[..., service.Page[Any]]
LISTERS = {"orm": service.list_videos, "items": service.list_video_items}


def add_video(
    db: Database,
    user_id: int,
    number: int,
    *,
    created: datetime,
    status: str = VideoStatus.READY,
    heights: tuple[int, ...] = (),
) -> str:
    video_id = f"{number:032x}"
    failed = status == VideoStatus.FAILED
    with db.write() as session:
        session.add(
            Video(
                id=video_id,
                user_id=user_id,
                title=f"clip {number}",
                filename=f"clip-{number}.mp4",
                size_bytes=1000 + number,
                sha256=f"{number:064x}",
                status=status,
                progress=1.0 if status == VideoStatus.READY else 0.25,
                duration_s=12.5 if status == VideoStatus.READY else None,
                width=1280 if heights else None,
                height=720 if heights else None,
                attempts=2 if failed else 1,
                error_code="input_invalid" if failed else None,
                error_message="the file is damaged" if failed else None,
                error_recoverable=False if failed else None,
                next_retry_at=created + timedelta(minutes=5) if failed else None,
                has_thumbnail=bool(heights),
                created_at=created,
                updated_at=created + timedelta(seconds=30),
                renditions=[
                    Rendition(name=f"{h}p", width=h * 16 // 9, height=h, size_bytes=h * 1000)
                    for h in heights
                ],
            )
        )
    return video_id


@pytest.fixture
def library(db: Database) -> dict[str, Any]:
    """Alice's 9 videos (three sharing one instant, so the id breaks the tie), Bob's 3,
    and an admin; renditions stored tallest first to check their order."""
    with db.write() as session:
        users = {
            name: create_user(session, f"{name}@example.com", is_admin=name == "root").id
            for name in ("alice", "bob", "root")
        }
    statuses = [VideoStatus.READY, VideoStatus.FAILED, VideoStatus.PROCESSING]
    videos: dict[str, list[tuple[datetime, str, str]]] = {"alice": [], "bob": []}
    for number in range(12):
        owner = "bob" if number % 4 == 3 else "alice"
        created = START + timedelta(seconds=0 if number in (4, 5, 6) else number)
        status = statuses[number % 3]
        heights = (720, 480) if status == VideoStatus.READY and number != 9 else ()
        video_id = add_video(
            db, users[owner], number, created=created, status=status, heights=heights
        )
        videos[owner].append((created, video_id, status))
    return {"users": users, "videos": videos}


def user(db: Database, user_id: int) -> User:
    with db.read() as session:
        found = session.get_one(User, user_id)
        session.expunge(found)
        return found


def newest_first(videos: list[tuple[datetime, str, str]]) -> list[str]:
    return [video_id for _, video_id, _ in sorted(videos, reverse=True)]


def walk(db: Database, lister: Lister, who: User, limit: int, **filters: Any) -> list[str]:
    """Every page from the first, following the cursors; the ids in order."""
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        with db.read() as session:
            page = lister(session, who, limit=limit, cursor=cursor, **filters)
        assert len(page.videos) <= limit
        seen += [video.id for video in page.videos]
        if page.next_cursor is None:
            return seen
        assert len(page.videos) == limit
        cursor = page.next_cursor
    raise AssertionError("the cursors never reached the last page")


@pytest.mark.parametrize("lister", LISTERS.values(), ids=LISTERS.keys())
@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_pages_by_cursor_give_every_video_once_newest_first(
    db: Database, library: dict[str, Any], lister: Lister, limit: int
) -> None:
    alice, root = user(db, library["users"]["alice"]), user(db, library["users"]["root"])
    mine = library["videos"]["alice"]
    everyone = mine + library["videos"]["bob"]
    assert walk(db, lister, alice, limit) == newest_first(mine)
    assert walk(db, lister, root, limit) == newest_first(everyone)


@pytest.mark.parametrize("lister", LISTERS.values(), ids=LISTERS.keys())
def test_filters_on_owner_and_status(db: Database, library: dict[str, Any], lister: Lister) -> None:
    ids, videos = library["users"], library["videos"]
    alice, bob, root = (user(db, ids[name]) for name in ("alice", "bob", "root"))

    def having(owner: str, status: str) -> list[str]:
        return newest_first([v for v in videos[owner] if v[2] == status])

    failed = VideoStatus.FAILED
    assert walk(db, lister, bob, 2) == newest_first(videos["bob"])
    assert walk(db, lister, alice, 2, status=failed) == having("alice", failed)
    assert walk(db, lister, root, 2, owner_email="bob@example.com") == newest_first(videos["bob"])
    by_both = walk(db, lister, root, 1, owner_email="alice@example.com", status=failed)
    assert by_both == having("alice", failed)
    assert walk(db, lister, root, 2, owner_email="nobody@example.com") == []
    everyone_failed = newest_first([v for vs in videos.values() for v in vs if v[2] == failed])
    assert walk(db, lister, root, 2, status=failed) == everyone_failed
    # Only admins filter on an owner; a user's own list ignores it.
    assert walk(db, lister, bob, 50, owner_email="alice@example.com") == walk(db, lister, bob, 50)


def test_items_are_shown_as_the_video_itself(db: Database, library: dict[str, Any]) -> None:
    root = user(db, library["users"]["root"])
    with db.read() as session:
        items = service.list_video_items(session, root, limit=50).videos
        orm = service.list_videos(session, root, limit=50).videos
        assert len(items) == len(orm) == 12
        for item, video in zip(items, orm, strict=True):
            shown = service.video_as_dict(item, "http://x")
            assert shown == service.video_as_dict(video, "http://x")
            alone = service.get_video(session, root, item.id)
            assert shown == service.video_as_dict(alone, "http://x")
    heights = {len(item.renditions): [r.height for r in item.renditions] for item in items}
    assert heights == {0: [], 2: [480, 720]}


@pytest.fixture
def api(settings: Settings, library: dict[str, Any]) -> Iterator[TestClient]:
    upgrade_database(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        yield client


def api_pages(client: TestClient, token: str, **params: Any) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/videos", params=query, headers=headers).json()
        items += body["videos"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_api_list_items_match_the_video_resource(
    api: TestClient, db: Database, library: dict[str, Any]
) -> None:
    with db.write() as session:
        token = create_user(session, "carol@example.com", is_admin=True).token
    headers = {"Authorization": f"Bearer {token}"}
    listed = api_pages(api, token, limit=5)
    assert [v["id"] for v in listed] == newest_first(
        library["videos"]["alice"] + library["videos"]["bob"]
    )
    for item in listed:
        assert item == api.get(f"/api/v1/videos/{item['id']}", headers=headers).json()
    bobs = api_pages(api, token, user="bob@example.com", limit=2)
    assert [v["id"] for v in bobs] == newest_first(library["videos"]["bob"])
    failed = api_pages(api, token, status="failed")
    assert failed and all(v["status"] == "failed" and v["error"] for v in failed)
    # A cursor the API never handed out is the caller's mistake, told as such.
    broken = api.get("/api/v1/videos", params={"cursor": "yesterday_x"}, headers=headers)
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "invalid_request"


def test_an_id_prefix_keeps_the_videos_whose_id_starts_so(
    db: Database, library: dict[str, Any]
) -> None:
    """What ``reelwatch events 3fa2`` asks for: a range of the primary key, within what
    the caller may see, on SQLite and PostgreSQL alike."""
    alice, root = (user(db, library["users"][name]) for name in ("alice", "root"))
    with db.read() as session:

        def ids(who: User, prefix: str) -> list[str]:
            page = service.list_video_items(session, who, id_prefix=prefix, limit=50)
            return [video.id for video in page.videos]

        assert ids(root, "0" * 31 + "a") == [f"{10:032x}"]
        assert ids(alice, "0" * 31 + "3") == []  # Bob's
        assert ids(root, "0" * 31 + "3") == [f"{3:032x}"]
        assert sorted(ids(alice, "0" * 30)) == sorted(v for _, v, _ in library["videos"]["alice"])
        assert ids(root, "1") == []
