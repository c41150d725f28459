"""Scale: status, list and timeline queries with a million videos and 20 million events.

    python -m bench.scale [--videos 1000000] [--events 20000000] [--quick]

Fills a freshly migrated database with bulk SQL (``generate_series`` on PostgreSQL, a
recursive CTE on SQLite; the secondary indexes of the two big tables are dropped during
the fill and rebuilt after it, then ANALYZE): ``--videos`` videos of 1 user in 1000 (95 %
ready with two renditions, 3 % failed, 2 % in progress) and ``--events`` checkpoint
events spread over them in time order. Then it times the service functions the API
calls, each in its own session like a request, on random videos:

- status: ``get_video`` for the owner, rendered with ``video_as_dict``
- timeline: ``video_events`` (20 events a video at full size)
- list: ``list_video_items`` (the API's list) first page and a deep page by cursor (key
  pagination), for a user, for an admin, for an admin filtering on ``failed`` or on an
  owner, and a user's first page filtering on ``failed``

The peer, in the same run: the same queries on a database a hundredth of the size, so
the ratio shows what the size costs. An OFFSET page of the admin list at the middle is
timed too, for contrast with pagination by key.
"""

# The fill builds SQL from integers and constants of this file, never from input.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bench import common
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import User, Video
from reelwatch.videos import service
from reelwatch.videos.status import VideoStatus

GOAL_P99_MS = 10.0
VIDEOS_PER_USER = 1000
BIG_TABLES = ("videos", "events")
EVENT_KINDS = (
    "workflow_started",
    "task_queued",
    "task_started",
    "task_succeeded",
    "task_queued",
    "task_queued",
    "task_queued",
    "task_started",
    "task_started",
    "task_progress",
    "task_progress",
    "task_succeeded",
    "task_started",
    "task_succeeded",
    "task_progress",
    "task_succeeded",
    "task_queued",
    "task_started",
    "task_succeeded",
    "workflow_succeeded",
)


# --- the fill ---------------------------------------------------------------------------


def status_sql(i: str) -> str:
    return (
        f"CASE WHEN {i} % 100 < 95 THEN 'ready' WHEN {i} % 100 < 98 THEN 'failed' "
        f"WHEN {i} % 100 = 98 THEN 'processing' ELSE 'queued' END"
    )


def kinds_sql(k: int) -> str:
    return f"'{EVENT_KINDS[k % len(EVENT_KINDS)]}'"


def fill_postgresql(url: str, videos: int, events: int) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    users = max(2, videos // VIDEOS_PER_USER)
    with psycopg.connect(dsn, autocommit=True) as sql:
        sql.execute("SET maintenance_work_mem = '512MB'")
        sql.execute("SET synchronous_commit = off")
        indexes = [
            (name, definition)
            for table in BIG_TABLES
            for name, definition in sql.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
                "AND indexname NOT LIKE '%%pkey'",
                (table,),
            ).fetchall()
        ]
        for name, _ in indexes:
            sql.execute(f'DROP INDEX "{name}"')
        sql.execute(
            "INSERT INTO users (id, email, is_admin, token_hash, created_at) "
            "SELECT u, 'user' || u || '@example.com', u = 1, md5('token' || u), now() "
            f"FROM generate_series(1, {users}) u"
        )
        sql.execute(
            "INSERT INTO videos (id, user_id, title, filename, size_bytes, sha256, status, "
            "progress, duration_s, width, height, attempts, error_code, error_message, "
            "error_recoverable, has_thumbnail, created_at, updated_at) "
            f"SELECT md5('video' || i), i % {users} + 1, 'clip ' || i, 'clip-' || i || '.mp4', "
            f"10000000 + i, md5('sha' || i) || md5('256' || i), {status_sql('i')}, "
            "1.0, 20.0, 1280, 720, 1, "
            "CASE WHEN i % 100 BETWEEN 95 AND 97 THEN 'input_invalid' END, "
            "CASE WHEN i % 100 BETWEEN 95 AND 97 THEN 'the file is damaged' END, "
            "CASE WHEN i % 100 BETWEEN 95 AND 97 THEN false END, i % 100 < 95, "
            "timestamp '2024-01-01' + i * interval '1 second', "
            "timestamp '2024-01-01' + i * interval '1 second' "
            f"FROM generate_series(0, {videos - 1}) i"
        )
        sql.execute(
            "INSERT INTO renditions (video_id, name, width, height, size_bytes) "
            "SELECT v.id, r.name, r.width, r.height, 5000000 FROM videos v CROSS JOIN "
            "(VALUES ('480p', 854, 480), ('720p', 1280, 720)) AS r(name, width, height) "
            "WHERE v.status = 'ready'"
        )
        for k in range(max(1, events // videos)):
            sql.execute(
                "INSERT INTO events (at, kind, subject_id, task, attempt, worker, data) "
                f"SELECT created_at + interval '{k} seconds', {kinds_sql(k)}, id, "
                "'transcode_720p', 1, 'bench-worker', '{}'::json FROM videos"
            )
        for _, definition in indexes:
            sql.execute(definition)
        sql.execute("ANALYZE")


def fill_sqlite(url: str, videos: int, events: int) -> None:
    path = url.removeprefix("sqlite:///")
    users = max(2, videos // VIDEOS_PER_USER)
    sql = sqlite3.connect(path, isolation_level=None)
    try:
        sql.execute("PRAGMA synchronous=OFF")
        sql.execute("PRAGMA cache_size=-500000")  # 500 MB for the index builds
        indexes = [
            (name, definition)
            for table in BIG_TABLES
            for name, definition in sql.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (table,),
            ).fetchall()
        ]
        sql.execute("BEGIN")
        for name, _ in indexes:
            sql.execute(f'DROP INDEX "{name}"')
        series = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        stamp = "datetime('2024-01-01', '+' || i || ' seconds') || '.000000'"
        sql.execute(
            "INSERT INTO users (id, email, is_admin, token_hash, created_at) "
            + series.replace("SELECT 0", "SELECT 1")
            + "SELECT i, 'user' || i || '@example.com', i = 1, hex(randomblob(32)), "
            "datetime('now') FROM n",
            (users,),
        )
        sql.execute(
            "INSERT INTO videos (id, user_id, title, filename, size_bytes, sha256, status, "
            "progress, duration_s, width, height, attempts, error_code, error_message, "
            "error_recoverable, has_thumbnail, created_at, updated_at) "
            + series
            + f"SELECT lower(hex(randomblob(16))), i % {users} + 1, 'clip ' || i, "
            f"'clip-' || i || '.mp4', 10000000 + i, lower(hex(randomblob(32))), "
            f"{status_sql('i')}, 1.0, 20.0, 1280, 720, 1, "
            "CASE WHEN i % 100 BETWEEN 95 AND 97 THEN 'input_invalid' END, "
            "CASE WHEN i % 100 BETWEEN 95 AND 97 THEN 'the file is damaged' END, "
            "CASE WHEN i % 100 BETWEEN 95 AND 97 THEN 0 END, i % 100 < 95, "
            f"{stamp}, {stamp} FROM n",
            (videos - 1,),
        )
        sql.execute(
            "INSERT INTO renditions (video_id, name, width, height, size_bytes) "
            "SELECT v.id, r.name, r.width, r.height, 5000000 FROM videos v CROSS JOIN "
            "(SELECT '480p' AS name, 854 AS width, 480 AS height "
            "UNION ALL SELECT '720p', 1280, 720) AS r WHERE v.status = 'ready'"
        )
        for k in range(max(1, events // videos)):
            sql.execute(
                "INSERT INTO events (at, kind, subject_id, task, attempt, worker, data) "
                f"SELECT substr(datetime(created_at, '+{k} seconds'), 1, 19) || '.000000', "
                f"{kinds_sql(k)}, id, 'transcode_720p', 1, 'bench-worker', '{{}}' FROM videos"
            )
        for _, definition in indexes:
            sql.execute(definition)
        sql.execute("COMMIT")
        sql.execute("ANALYZE")
    finally:
        sql.close()


# --- the queries ------------------------------------------------------------------------


def sample_videos(db: Database, count: int) -> list[tuple[str, int, Any]]:
    """Random (video id, owner id, created_at), spread over the whole table."""
    with db.read() as session:
        first, last = session.execute(
            select(func.min(Video.created_at), func.max(Video.created_at))
        ).one()
        span = (last - first).total_seconds()
        rows = []
        for _ in range(count):
            moment = first + timedelta(seconds=random.uniform(0, span))
            row = session.execute(
                select(Video.id, Video.user_id, Video.created_at)
                .where(Video.created_at >= moment)
                .order_by(Video.created_at, Video.id)
                .limit(1)
            ).one()
            rows.append((row[0], row[1], row[2]))
        return rows


def time_queries(db: Database, samples: int) -> dict[str, common.Latency]:
    picked = sample_videos(db, min(samples, 200))
    with db.read() as session:
        admin = session.scalar(select(User).where(User.is_admin))
        session.expunge_all()
    assert admin is not None

    def owner(session: Session, user_id: int) -> User:
        return session.get_one(User, user_id)  # as the API's token lookup would

    def cursor_of(created: Any, video_id: str) -> str:
        return f"{created.isoformat()}_{video_id}"

    def status(session: Session, video_id: str, user_id: int, created: Any) -> None:
        video = service.get_video(session, owner(session, user_id), video_id)
        service.video_as_dict(video, "http://bench")

    def timeline(session: Session, video_id: str, user_id: int, created: Any) -> None:
        events = service.video_events(session, owner(session, user_id), video_id)
        [service.event_as_dict(event) for event in events]

    def user_first(session: Session, video_id: str, user_id: int, created: Any) -> None:
        service.list_video_items(session, owner(session, user_id))

    def user_deep(session: Session, video_id: str, user_id: int, created: Any) -> None:
        cursor = cursor_of(created, video_id)
        service.list_video_items(session, owner(session, user_id), cursor=cursor)

    def user_failed(session: Session, video_id: str, user_id: int, created: Any) -> None:
        service.list_video_items(session, owner(session, user_id), status=VideoStatus.FAILED)

    def admin_deep(session: Session, video_id: str, user_id: int, created: Any) -> None:
        service.list_video_items(session, admin, cursor=cursor_of(created, video_id))

    def owner_deep(session: Session, video_id: str, user_id: int, created: Any) -> None:
        email = f"user{user_id}@example.com"
        cursor = cursor_of(created, video_id)
        service.list_video_items(session, admin, owner_email=email, cursor=cursor)

    def failed_first(session: Session, video_id: str, user_id: int, created: Any) -> None:
        service.list_video_items(session, admin, status=VideoStatus.FAILED)

    def failed_deep(session: Session, video_id: str, user_id: int, created: Any) -> None:
        cursor = cursor_of(created, video_id)
        service.list_video_items(session, admin, status=VideoStatus.FAILED, cursor=cursor)

    queries: dict[str, Callable[[Session, str, int, Any], None]] = {
        "status (get_video)": status,
        "timeline (video_events)": timeline,
        "list, user, first page": user_first,
        "list, user, deep page by cursor": user_deep,
        "list, user, failed, first page": user_failed,
        "list, admin, deep page by cursor": admin_deep,
        "list, admin, by owner, deep page": owner_deep,
        "list, admin, failed, first page": failed_first,
        "list, admin, failed, deep page": failed_deep,
    }
    results = {}
    for label, query in queries.items():
        milliseconds = []
        for index in range(samples):
            video_id, user_id, created = picked[index % len(picked)]
            started = time.perf_counter()
            with db.read() as session:
                query(session, video_id, user_id, created)
            milliseconds.append((time.perf_counter() - started) * 1000)
        results[label] = common.Latency.of(milliseconds[len(milliseconds) // 10 :])  # warm
    return results


def offset_page_ms(db: Database, videos: int) -> float:
    """The admin list's middle page with OFFSET, for contrast (median of 5)."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        with db.read() as session:
            session.execute(
                text("SELECT id FROM videos ORDER BY created_at DESC, id DESC LIMIT 51 OFFSET :o"),
                {"o": videos // 2},
            ).all()
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)[2]


def run(kind: str, folder: Path, cluster: Any, videos: int, events: int, samples: int) -> None:
    results: dict[str, dict[str, common.Latency]] = {}
    for label, size in (("small", max(1000, videos // 100)), ("full", videos)):
        event_count = events * size // videos
        url = common.database_url(kind, folder / label, cluster)
        (folder / label).mkdir(parents=True, exist_ok=True)
        upgrade_database(url)
        fill = fill_sqlite if kind == "sqlite" else fill_postgresql
        _, seconds = common.timed(lambda: fill(url, size, event_count))  # noqa: B023
        common.line(
            f"{kind}: {size:,} videos, {event_count:,} events", f"filled in {seconds:.0f} s"
        )
        db = Database(url)
        try:
            results[label] = time_queries(db, samples)
            offset_ms = offset_page_ms(db, size)
        finally:
            db.dispose()
    for label, full in results["full"].items():
        small = results["small"][label]
        common.line(label, f"{full}   x{full.p99 / small.p99:4.1f} vs 1/100 size")
    common.line("list, admin, middle page by OFFSET (contrast)", f"{offset_ms:7.2f} ms")
    worst = max(latency.p99 for latency in results["full"].values())
    common.verdict(f"{kind}: every query p99 under {GOAL_P99_MS:g} ms", worst < GOAL_P99_MS)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--samples", type=int, default=1000, help="calls per query")
    parser.add_argument("--quick", action="store_true", help="100,000 videos, 2,000,000 events")
    common.add_database_option(parser)
    args = parser.parse_args()
    videos, events = (100_000, 2_000_000) if args.quick else (args.videos, args.events)
    samples = 300 if args.quick else args.samples

    for kind in common.chosen_databases(args.database):
        common.heading(
            f"scale on {kind}: {videos:,} videos, {events:,} events, p50/p99 of "
            f"{samples} calls each"
        )
        with common.scratch(f"scale-{kind}") as folder, common.postgres_if(kind) as cluster:
            run(kind, folder, cluster, videos, events, samples)


if __name__ == "__main__":
    main()
