"""A media store on a local (or shared, mounted) file system.

Files appear only whole: uploads stream into a temporary file in the store, are
fsync'ed, checksummed and renamed into place, and the folder is fsync'ed too, so a
video that got its 201 survives a crash or power loss. Beside each original lies its
upload manifest (``upload.json``: who uploaded what), written the same way before the
video's row is committed, so an original whose row a database failover lost can be
recorded again (``reelwatch recover``). The partial upload of a server that died
mid-upload is removed when a server starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MANIFEST = "upload.json"


class UploadTooLarge(Exception):
    """The stream passed the size limit; nothing was kept."""


@dataclass(frozen=True)
class StoredFile:
    path: Path
    size_bytes: int
    sha256: str


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.videos = root / "videos"
        self.incoming = root / "incoming"

    def ensure_layout(self) -> None:
        """Create the folders and remove the uploads of servers that died mid-upload
        (servers call this when they start)."""
        self._make_folders()
        self.remove_abandoned_uploads()

    def _make_folders(self) -> None:
        self.videos.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)

    def remove_abandoned_uploads(self) -> list[Path]:
        """Remove partial uploads that no process is writing any more.

        Each writer holds an exclusive ``flock`` on its file until it finishes, and the
        kernel drops it when the writer dies, even by SIGKILL, so an unlocked file is
        debris; other servers' uploads in progress stay locked, hence untouched. An
        empty file just created may not be locked yet, so it is left for next time.
        """
        removed = []
        for path in self.incoming.glob("*.part"):
            try:
                stat = path.stat()
                just_created = stat.st_size == 0 and time.time() - stat.st_mtime < 1.0
                if not just_created and not _locked(path):
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # finished or removed meanwhile
                continue
        return removed

    def video_dir(self, video_id: str) -> Path:
        if not video_id.isalnum():  # ids are generated, but never trust a path piece
            raise ValueError(f"invalid video id {video_id!r}")
        return self.videos / video_id

    def original_path(self, video_id: str) -> Path:
        return self.video_dir(video_id) / "original"

    def manifest_path(self, video_id: str) -> Path:
        return self.video_dir(video_id) / MANIFEST

    def rendition_path(self, video_id: str, name: str) -> Path:
        return self.video_dir(video_id) / f"{name}.mp4"

    def hls_dir(self, video_id: str) -> Path:
        """The video's HLS output: master.m3u8 and one folder per variant."""
        return self.video_dir(video_id) / "hls"

    def thumbnail_path(self, video_id: str) -> Path:
        return self.video_dir(video_id) / "thumbnail.jpg"

    def open_incoming(self) -> IncomingFile:
        """A temporary file to stream an upload into before it has an id."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        return IncomingFile(self.incoming / f"{uuid.uuid4().hex}.part")

    def keep_original(self, incoming: IncomingFile, video_id: str, manifest: bytes) -> Path:
        """Move a finished upload into the video's folder with its manifest, durably.

        The manifest goes first, whole (temporary file, fsync, rename): a folder that
        holds an original holds its manifest too, unless it predates manifests. One
        sync of the folder then makes both renames durable."""
        folder = self.video_dir(video_id)
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
        with temporary.open("xb") as handle:
            handle.write(manifest)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.manifest_path(video_id))
        destination = self.original_path(video_id)
        incoming.path.replace(destination)
        fsync_path(folder)
        fsync_path(self.videos)
        return destination

    def delete_video(self, video_id: str) -> None:
        shutil.rmtree(self.video_dir(video_id), ignore_errors=True)

    def describe_problem(self) -> str | None:
        """None when the store works, else what is wrong (a worker's preflight)."""
        try:
            self.check_writable()
        except OSError as exc:
            return f"media store {self.root} is not writable: {exc.strerror or exc}"
        return None

    def check_writable(self) -> None:
        """Raise OSError unless a file can be written, synced and removed."""
        self._make_folders()
        probe = self.incoming / f".ready-{uuid.uuid4().hex}"
        try:
            with probe.open("wb") as handle:
                handle.write(b"ok")
                os.fsync(handle.fileno())
        finally:
            # A full disk lets the file be created and then fails the write: the probe
            # is removed either way, or every check would leave one behind.
            probe.unlink(missing_ok=True)


class IncomingFile:
    """An upload being written: size-limited, hashed as it streams, fsync'ed on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size_bytes = 0
        self._hash = hashlib.sha256()
        self._handle: BinaryIO = path.open("xb")
        # Held until the file is closed or this process dies: what tells a starting
        # server that the file is not abandoned (remove_abandoned_uploads).
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def write(self, chunk: bytes, *, limit_bytes: int) -> None:
        self.size_bytes += len(chunk)
        if self.size_bytes > limit_bytes:
            self.discard()
            raise UploadTooLarge(f"upload exceeds {limit_bytes} bytes")
        self._hash.update(chunk)
        self._handle.write(chunk)

    def finish(self) -> StoredFile:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return StoredFile(self.path, self.size_bytes, self._hash.hexdigest())

    def discard(self) -> None:
        """Remove the partial file. Closing flushes what is still buffered, which fails
        on a full disk; the file must go all the same."""
        with contextlib.suppress(OSError):
            self._handle.close()
        self.path.unlink(missing_ok=True)


def _locked(path: Path) -> bool:
    """Whether another open file holds an exclusive ``flock`` on ``path``."""
    with path.open("rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False  # closing the handle releases the lock just taken


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (after a rename), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks (how uploads are checksummed)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
