"""Admission reads the queue wait the monitor recorded (one row), not the load's aggregates;
with the figure missing or stale it computes the estimate itself, as before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from reelwatch.accounts import rotate_token
from reelwatch.config import Settings, load_settings
from reelwatch.database import Database, utcnow
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import CheckState
from reelwatch.insights.queue_wait import QUEUE_WAIT_CHECK, record_queue_wait
from reelwatch.monitor.service import Monitor
from reelwatch.web import create_app

# Tables only the load and capacity aggregates read on an upload's path.
AGGREGATED = ("worker_records", "renditions", "outbox")


@pytest.fixture
def strict(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        admission_max_wait_seconds=60,
        admission_policy="refuse",
        monitor_interval_seconds=5,
    )


@pytest.fixture
def db(strict: Settings) -> Iterator[Database]:
    upgrade_database(strict.resolved_database_url)
    database = Database(strict.resolved_database_url)
    yield database
    database.dispose()


def recorded(db: Database, wait_s: float, at: datetime) -> None:
    with db.write() as session:
        record_queue_wait(session, wait_s, at)


def post_upload(settings: Settings, db: Database, sample: Path) -> tuple[Any, list[str]]:
    """POST one upload; returns the response and the SELECTs its request ran."""
    with db.write() as session:
        token = rotate_token(session, "uploader@example.com")
    selects: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    with TestClient(create_app(settings)) as client:
        event.listen(Engine, "before_cursor_execute", seen)
        try:
            with sample.open("rb") as handle:
                response = client.post(
                    "/api/v1/videos",
                    files={"file": ("a.mp4", handle)},
                    headers={"Authorization": f"Bearer {token}"},
                )
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
    return response, selects


def aggregates(selects: list[str]) -> list[str]:
    return [s for s in selects if any(f"FROM {table}" in s for table in AGGREGATED)]


def test_a_fresh_figure_decides_and_the_aggregates_do_not_run(
    strict: Settings, db: Database, good_samples: dict[str, Path]
) -> None:
    recorded(db, 7200, utcnow())  # the monitor saw a two-hour queue a moment ago
    response, selects = post_upload(strict, db, good_samples["h264"])
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "overloaded"
    assert "would wait about 2 hours" in response.json()["error"]["message"]
    assert aggregates(selects) == []
    assert sum("FROM checks" in s for s in selects) == 1  # the figure, read by its key


@pytest.mark.parametrize("age", [None, timedelta(seconds=16)], ids=["missing", "stale"])
def test_without_a_fresh_figure_the_upload_computes_it(
    strict: Settings, db: Database, good_samples: dict[str, Path], age: timedelta | None
) -> None:
    if age is not None:  # older than three 5 s monitor rounds: the monitor is away
        recorded(db, 7200, utcnow() - age)
    response, selects = post_upload(strict, db, good_samples["h264"])
    # Computed now: no live worker, so the wait has no bound and nothing is refused.
    assert response.status_code == 201, response.text
    assert aggregates(selects) != []


def test_the_elected_monitor_records_the_figure_every_round(strict: Settings, db: Database) -> None:
    monitor = Monitor(db, strict, name="m1", interval_s=5)
    monitor.run_round()
    with db.read() as session:
        first = session.get(CheckState, QUEUE_WAIT_CHECK)
        assert first is not None and first.value is None  # no live worker: no bound
        checked = first.checked_at
    monitor.run_round()
    with db.read() as session:
        again = session.get(CheckState, QUEUE_WAIT_CHECK)
        assert again is not None and again.checked_at > checked
