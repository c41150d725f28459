"""The S3 endpoint of the storage tests: one moto server for the session, a bucket each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3server import MotoServer


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def s3(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The server, with this process's AWS variables pointing at it."""
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server


@pytest.fixture
def bucket(s3: MotoServer) -> str:
    return s3.new_bucket()
