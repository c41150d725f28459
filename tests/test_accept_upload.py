"""Accepting an upload keeps no original that no row points to (found by the chaos suite,
whose invariant is that the media store holds no orphaned files)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from sqlalchemy import select

from reelwatch.accounts import create_user
from reelwatch.db.database import Database
from reelwatch.db.models import User, Video
from reelwatch.storage import MediaStore, local
from reelwatch.videos import service


def test_an_original_whose_move_fails_half_way_is_removed(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MediaStore(tmp_path / "media")
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
