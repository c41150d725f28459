"""Shared fixtures: databases of both kinds, settings in a temporary home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pg import PostgresCluster
from reelwatch.config import Settings, load_settings
from reelwatch.db.database import Database
from reelwatch.db.migrate import upgrade_database


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each engine test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reelwatch.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    upgrade_database(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        lease_seconds=3,
        retry_backoff_scale=0.0,
        ffmpeg_stall_seconds=30,
    )
