"""``GET /api/v1/videos/{id}``, the status read clients poll: answered by
``reelwatch.api.status_reads`` when it succeeds, with the JSON the ORM view gives, and by
the route for everything else, as before; the token's user is remembered for at most
``TOKEN_CACHE_SECONDS``; SQLite reads made on the event loop never wait for a lock."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from instance import LiveInstance, free_port, wait_until
from pg import PostgresCluster
from reelwatch.accounts import create_user, hash_token, rotate_token
from reelwatch.api.tokens import TOKEN_CACHE_SECONDS, Bearer, TokenCache
from reelwatch.config import load_settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import Rendition, User, Video
from reelwatch.videos import service


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def instance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveInstance]:
    """On SQLite the read is made on the event loop; on PostgreSQL in the thread pool, on
    an autocommit connection."""
    home = tmp_path_factory.mktemp("status") / "home"
    url = None
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    settings = load_settings(home=home, bind=f"127.0.0.1:{free_port()}", database_url=url)
    live = LiveInstance(settings, workers=0).start()  # nothing is processed: no media needed
    yield live
    live.stop()


def new_video(instance: LiveInstance, email: str) -> str:
    """A video of ``email``'s with two renditions, stored out of order."""
    response = instance.client(email).post(
        "/api/v1/videos", files={"file": ("clip.mp4", b"not looked at")}
    )
    assert response.status_code == 201, response.text
    video_id: str = response.json()["id"]
    with instance.db.write() as session:
        session.add(Rendition(video_id=video_id, name="720p", width=1280, height=720, size_bytes=9))
        session.add(Rendition(video_id=video_id, name="360p", width=640, height=360, size_bytes=4))
        video = session.get(Video, video_id)
        assert video is not None
        video.status, video.has_thumbnail = "ready", True
    return video_id


def orm_view(instance: LiveInstance, email: str, video_id: str) -> dict[str, Any]:
    """The video as the ORM path (``service.get_video``) shows it to ``email``."""
    with instance.db.read() as session:
        user = session.query(User).filter_by(email=email).one()
        video = service.get_video(session, user, video_id)
        return service.video_as_dict(video, instance.settings.resolved_public_url)


def test_a_status_read_is_the_orm_view_with_every_header(instance: LiveInstance) -> None:
    video_id = new_video(instance, "owner@example.com")
    for email, admin in (("owner@example.com", False), ("chief@example.com", True)):
        answer = instance.client(email, admin=admin).get(f"/api/v1/videos/{video_id}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == orm_view(instance, email, video_id)
        assert [r["name"] for r in answer.json()["renditions"]] == ["360p", "720p"]
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert len(answer.headers["x-request-id"]) == 32


def test_what_is_not_a_successful_read_is_answered_by_the_route(instance: LiveInstance) -> None:
    video_id = new_video(instance, "keeper@example.com")
    path = f"/api/v1/videos/{video_id}"
    stranger = instance.client("stranger@example.com").get(path)
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"
    owner = instance.client("keeper@example.com")
    assert owner.get("/api/v1/videos/" + "a" * 201).status_code == 422  # over MAX_ID_LENGTH
    assert owner.head(path).status_code == 405
    for headers in ({"Authorization": "Bearer rw_unknown"}, {"Authorization": "Basic eDp5"}):
        unknown = owner.get(path, headers=headers)
        assert unknown.status_code == 401
        assert unknown.headers["www-authenticate"] == "Bearer"
        assert unknown.json()["error"]["code"] == "unauthorized"
    owner.headers.pop("Authorization")
    assert owner.get(path).status_code == 401


def test_a_replaced_token_stops_working_within_the_cache_bound(instance: LiveInstance) -> None:
    video_id = new_video(instance, "rotor@example.com")
    path = f"/api/v1/videos/{video_id}"
    old = instance.client("rotor@example.com")
    assert old.get(path).status_code == 200  # now remembered
    with instance.db.write() as session:
        new_token = rotate_token(session, "rotor@example.com")
    replaced = time.monotonic()
    new = instance.client("rotor@example.com")
    new.headers["Authorization"] = f"Bearer {new_token}"
    assert new.get(path).status_code == 200  # a new token works at once
    wait_until(lambda: old.get(path).status_code == 401, timeout=TOKEN_CACHE_SECONDS + 5)
    assert time.monotonic() - replaced <= TOKEN_CACHE_SECONDS + 1


def test_an_unknown_token_is_not_remembered(instance: LiveInstance) -> None:
    video_id = new_video(instance, "late@example.com")
    path = f"/api/v1/videos/{video_id}"
    client = instance.client("late@example.com")
    client.headers["Authorization"] = "Bearer rw_not_yet_issued"
    assert client.get(path).status_code == 401
    with instance.db.write() as session:
        user = session.query(User).filter_by(email="late@example.com").one()
        user.token_hash = hash_token("rw_not_yet_issued")
    assert client.get(path).status_code == 200


def test_a_read_on_the_event_loop_never_waits_for_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.write() as session:
            session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
        db.engine.dispose()  # its idle connections would keep the lock below from anyone
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("PRAGMA locking_mode=EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        locker.execute("INSERT INTO t VALUES (1)")
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"), db.read_without_waiting() as c:
            c.exec_driver_sql("SELECT count(*) FROM t").all()
        assert time.monotonic() - started < 1  # the read pool's busy timeout is 30 s
        locker.execute("COMMIT")
        locker.close()
        with db.read_without_waiting() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    finally:
        db.dispose()


def test_requests_that_miss_together_share_one_lookup(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    upgrade_database(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    lookups: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM users" in statement:
            lookups.append(statement)

    try:
        with db.write() as session:
            token = create_user(session, "many@example.com").token
        cache = TokenCache()
        event.listen(db.engine, "before_cursor_execute", seen)

        async def together() -> list[Bearer | None]:
            return await asyncio.gather(*(cache.bearer(db, token) for _ in range(20)))

        bearers = asyncio.run(together())
        assert len(lookups) == 1
        assert all(b is not None and b.id == bearers[0].id for b in bearers)  # type: ignore[union-attr]
    finally:
        db.dispose()
