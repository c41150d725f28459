"""The engine's leasing on a table of its own (as the outbox and the task queue use it):
one owner per row, expired leases taken over, stale owners fenced out, a dead owner's
rows released. Time is passed in (the ``now`` parameter), so nothing sleeps."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select

from reelwatch.database import Database, retry_on_conflict, utcnow
from reelwatch.engine.leasing import LeasedRows

JOBS = Table(
    "leased_jobs",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("holder", String(64)),
    Column("tries", Integer, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("lease_expires_at", DateTime),
    Column("note", String(64)),
)
LEASES = LeasedRows(
    JOBS, waiting="waiting", leased="leased", owner="holder", attempt="tries", due_at="due_at"
)
CLAIM = LEASES.claim()
CLAIM_OR_EXPIRED = LEASES.claim(or_expired=True)


@pytest.fixture
def jobs(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    JOBS.metadata.create_all(database.engine)
    yield database
    database.dispose()


def add_jobs(db: Database, count: int, *, due_at: datetime) -> None:
    rows = [{"state": "waiting", "tries": 0, "due_at": due_at} for _ in range(count)]
    with db.write() as session:
        session.execute(insert(JOBS), rows)


@retry_on_conflict
def claim(
    db: Database, owner: str, now: datetime, *, limit: int = 10, statement: Any = CLAIM
) -> list[Any]:
    params = {
        "now": now,
        "owner": owner,
        "lease_expires_at": now + timedelta(seconds=60),
        "limit": limit,
    }
    with db.write() as session:
        return list(session.execute(statement, params))


def test_two_owners_never_lease_the_same_row(jobs: Database) -> None:
    now = utcnow()
    add_jobs(jobs, 60, due_at=now)
    add_jobs(jobs, 5, due_at=now + timedelta(hours=1))  # not due: never leased
    leased: dict[str, list[int]] = {f"owner-{n}": [] for n in range(4)}

    def drain(owner: str) -> None:
        while batch := claim(jobs, owner, now, limit=3):
            leased[owner] += [row.id for row in batch]

    threads = [threading.Thread(target=drain, args=(owner,)) for owner in leased]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ids = Counter(row_id for owned in leased.values() for row_id in owned)
    assert len(ids) == 60 and set(ids.values()) == {1}, "each due row leased exactly once"
    with jobs.read() as session:
        holders = {row.id: row.holder for row in session.execute(select(JOBS))}
        assert all(holders[row_id] == owner for owner, rows in leased.items() for row_id in rows)
        assert session.scalar(select(JOBS.c.tries).where(JOBS.c.id == 1)) == 1


def test_an_expired_lease_is_leased_again_only_when_asked(jobs: Database) -> None:
    now = utcnow()
    add_jobs(jobs, 1, due_at=now)
    [first] = claim(jobs, "dead", now)
    assert claim(jobs, "other", now, statement=CLAIM_OR_EXPIRED) == [], "the lease holds"
    later = now + timedelta(seconds=61)  # past the 60 s lease
    assert claim(jobs, "other", later) == [], "a plain claim leaves that to a rescuer"
    [again] = claim(jobs, "other", later, statement=CLAIM_OR_EXPIRED)
    assert (again.id, again.holder, again.tries) == (first.id, "other", 2)


def test_a_stale_owner_changes_nothing(jobs: Database) -> None:
    now = utcnow()
    add_jobs(jobs, 1, due_at=now)
    [stale] = claim(jobs, "dead", now)
    [fresh] = claim(jobs, "other", now + timedelta(seconds=61), statement=CLAIM_OR_EXPIRED)
    with jobs.write() as session:
        late = session.execute(
            LEASES.fenced_update(stale.id, stale.holder, stale.tries).values(note="stale")
        )
        current = session.execute(
            LEASES.fenced_update(fresh.id, fresh.holder, fresh.tries).values(note="fresh")
        )
    assert (late.rowcount, current.rowcount) == (0, 1)  # type: ignore[attr-defined]
    with jobs.read() as session:
        assert session.scalar(select(JOBS.c.note)) == "fresh"


def test_a_dead_owners_rows_are_released_and_no_one_elses(jobs: Database) -> None:
    now = utcnow()
    add_jobs(jobs, 4, due_at=now)
    claim(jobs, "dead", now, limit=3)
    [kept] = claim(jobs, "alive", now)
    later = now + timedelta(seconds=1)
    with jobs.write() as session:
        released = session.execute(LEASES.release("dead"), {"now": later})
    assert released.rowcount == 3  # type: ignore[attr-defined]
    leased_again = claim(jobs, "alive", later)
    assert sorted(row.tries for row in leased_again) == [2, 2, 2], "their attempt counted"
    assert kept.id not in {row.id for row in leased_again}
