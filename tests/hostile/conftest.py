"""One live reelwatch per database for the hostile-input tests: the API only, no
workers, so every row and file counted is the requests' doing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from instance import LiveInstance, free_port
from pg import PostgresCluster
from reelwatch.config import load_settings

UPLOAD_LIMIT_MB = 2


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveInstance]:
    home = tmp_path_factory.mktemp(f"hostile-{request.param}") / "home"
    database_url = None
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        database_url = cluster.create_database()
    settings = load_settings(
        home=home,
        database_url=database_url,
        bind=f"127.0.0.1:{free_port()}",
        max_upload_mb=UPLOAD_LIMIT_MB,
        # Uploads are admitted without a live worker (no queue-wait refusal).
        admission_max_wait_seconds=0,
    )
    instance = LiveInstance(settings, workers=0).start()
    yield instance
    instance.stop()
