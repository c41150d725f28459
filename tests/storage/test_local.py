"""The media store leaves nothing temporary behind: not on a full disk, not after a server
died mid-upload (found by the chaos suite, whose invariant that is)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelwatch.storage import LocalStore
from small_disk import fill, small_disk


@pytest.fixture
def full_store(tmp_path: Path) -> Iterator[LocalStore]:
    """A store on a 64 KiB tmpfs filled to the last byte (root only; skipped elsewhere)."""
    with small_disk(tmp_path / "small-disk", 64) as mount_point:
        store = LocalStore(mount_point / "media")
        store.ensure_layout()
        fill(mount_point)
        yield store


def test_the_writability_check_leaves_no_probe_file_when_the_disk_is_full(
    full_store: LocalStore,
) -> None:
    assert "No space left on device" in (full_store.describe_problem() or "")
    assert list(full_store.incoming.iterdir()) == []


def test_the_writability_check_removes_its_probe_when_fsync_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "media")

    def no_space(_descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    assert store.describe_problem() is not None
    assert list(store.incoming.iterdir()) == []


def test_a_discarded_upload_is_removed_even_when_its_buffer_cannot_be_flushed(
    full_store: LocalStore,
) -> None:
    incoming = full_store.open_incoming()
    incoming.write(b"x" * 3000, limit_bytes=10**6)  # buffered, not yet on the disk
    with pytest.raises(OSError, match="No space left"):
        incoming.finish()
    incoming.discard()
    assert list(full_store.incoming.iterdir()) == []


def test_the_partial_upload_of_a_killed_server_is_removed_when_a_server_starts(
    tmp_path: Path,
) -> None:
    """Found by the chaos suite: `up` SIGKILLed mid-upload left incoming/*.part for ever."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITE_THEN_HANG, str(tmp_path / "media")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    partial = Path(writer.stdout.readline().strip())
    writer.kill()
    writer.wait()
    assert partial.stat().st_size == 3000
    LocalStore(tmp_path / "media").ensure_layout()
    assert not partial.exists()


WRITE_THEN_HANG = """
import sys, time
from pathlib import Path
from reelwatch.storage import LocalStore
incoming = LocalStore(Path(sys.argv[1])).open_incoming()
incoming.write(b"x" * 3000, limit_bytes=10**6)
incoming._handle.flush()
print(incoming.path, flush=True)
time.sleep(60)
"""


def test_uploads_still_being_written_are_left_alone(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "media")
    store.ensure_layout()
    in_progress = store.open_incoming()
    in_progress.write(b"y" * 3000, limit_bytes=10**6)
    LocalStore(tmp_path / "media").ensure_layout()  # another server starting
    assert in_progress.path.exists()
    assert in_progress.finish().size_bytes == 3000
