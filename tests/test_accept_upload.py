"""Accepting an upload keeps no original that no row points to (found by the chaos suite,
whose invariant is that the media store holds no orphaned files)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from sqlalchemy import select

from instance import LiveInstance, free_port
from reelwatch.accounts import create_user
from reelwatch.config import load_settings
from reelwatch.database import Database
from reelwatch.db.models import User, Video
from reelwatch.storage import LocalStore, local
from reelwatch.videos import service
from small_disk import fill, small_disk


def test_an_original_whose_move_fails_half_way_is_removed(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "media")
    store.ensure_layout()
    with db.write() as session:
        create_user(session, "ana@example.com")
    with db.read() as session:
        user = session.scalars(select(User)).one()
    incoming = store.open_incoming()
    incoming.write(b"a video", limit_bytes=1024)

    def failing_sync(_path: Path) -> None:  # after the rename, as a failing disk would
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local, "fsync_path", failing_sync)
    with pytest.raises(OSError, match="Input/output error"):
        service.accept_upload(db, store, user, incoming, filename="v.mp4", title=None)
    assert list(store.videos.iterdir()) == []
    with db.read() as session:
        assert session.scalars(select(Video)).all() == []


def test_an_upload_to_a_full_disk_is_a_503_to_retry_and_leaves_nothing(
    tmp_path: Path, good_samples: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    with small_disk(home / "media", 1024) as media:
        settings = load_settings(home=home, bind=f"127.0.0.1:{free_port()}", workers=0)
        instance = LiveInstance(settings, workers=0).start()
        try:
            fill(media)
            with good_samples["1080p"].open("rb") as handle:
                response = instance.client().post(
                    "/api/v1/videos", files={"file": ("big.mp4", handle)}
                )
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "storage_unavailable"
            assert response.headers["Retry-After"] == "60"
            assert list((media / "incoming").glob("*.part")) == []
            assert list((media / "videos").iterdir()) == []
        finally:
            instance.stop()
