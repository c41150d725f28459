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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from reelwatch.storage.base import (
    HLS_FOLDER,
    MANIFEST,
    ORIGINAL,
    THUMBNAIL,
    Debris,
    Incoming,
    StoredFile,
    StoredObject,
    UploadTooLarge,
    VideoFolder,
    checked_relative,
    checked_video_id,
    rendition_file,
    walk_files,
)

__all__ = ["MANIFEST", "IncomingFile", "LocalStore", "StoredFile", "UploadTooLarge", "sha256_of"]
# What a process that died mid-write leaves: ``written_atomically``'s temporaries, the
# ping's output, the writability probe's file.
TEMPORARY_PATTERNS = (".*.tmp", ".ping-*", ".ready-*")
# In a variant folder: ffmpeg's temporary segments and playlists, and reelwatch's own.
VARIANT_TEMPORARY = "*.tmp"


class LocalStore:
    """Zero-copy: a video's folder is its workers' workspace, so publishing is a no-op
    (every file in it was written whole, by a rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.videos = root / "videos"
        self.incoming = root / "incoming"
        self.description = str(root)

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
                if not just_created and not is_locked(path):
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # finished or removed meanwhile
                continue
        return removed

    def video_dir(self, video_id: str) -> Path:
        return self.videos / checked_video_id(video_id)

    def original_path(self, video_id: str) -> Path:
        return self.video_dir(video_id) / ORIGINAL

    def manifest_path(self, video_id: str) -> Path:
        return self.video_dir(video_id) / MANIFEST

    def rendition_path(self, video_id: str, name: str) -> Path:
        return self.video_dir(video_id) / rendition_file(name)

    def hls_dir(self, video_id: str) -> Path:
        """The video's HLS variants, one folder each (the master playlist is the API's)."""
        return self.video_dir(video_id) / HLS_FOLDER

    def thumbnail_path(self, video_id: str) -> Path:
        return self.video_dir(video_id) / THUMBNAIL

    def file_path(self, video_id: str, relative: str) -> Path:
        return self.video_dir(video_id) / checked_relative(relative)

    # The workers' side: the folder itself, nothing to copy or publish.
    @contextlib.contextmanager
    def workspace(self, video_id: str) -> Iterator[Path]:
        yield self.video_dir(video_id)

    def publish(self, video_id: str, folder: Path, relatives: list[str]) -> None:
        for relative in relatives:  # written in place; only their names are checked
            checked_relative(relative)

    def release(self, video_id: str) -> None:
        """Nothing to release: the workspace is the store."""

    def tidy_scratch(self) -> None:
        """No scratch copies on local disk."""

    def temporary_folder(self) -> Path:
        self.incoming.mkdir(parents=True, exist_ok=True)
        return self.incoming

    def sizes(self, video_id: str, relatives: list[str]) -> dict[str, int]:
        found = {}
        for relative in relatives:
            path = self.file_path(video_id, relative)
            if path.is_file():
                found[relative] = path.stat().st_size
        return found

    def read_bytes(self, video_id: str, relative: str) -> bytes:
        return self.file_path(video_id, relative).read_bytes()

    def sha256(self, video_id: str, relative: str) -> str | None:
        path = self.file_path(video_id, relative)
        return sha256_of(path) if path.is_file() else None

    def local_file(self, video_id: str, relative: str) -> Path | None:
        path = self.file_path(video_id, relative)
        return path if path.is_file() else None

    def disk_path(self) -> Path | None:
        return self.root

    # Listings, for gc, recover and doctor.
    def video_folders(self) -> list[VideoFolder]:
        folders = sorted(self.videos.iterdir()) if self.videos.is_dir() else []
        listed = (self.video_folder(f.name) for f in folders if f.is_dir() and f.name.isalnum())
        return [folder for folder in listed if folder is not None]

    def video_folder(self, video_id: str) -> VideoFolder | None:
        folder = self.video_dir(video_id)
        try:
            files = tuple(
                StoredObject(relative, path.stat().st_size, _modified(path))
                for relative, path in walk_files(folder)
                if not relative.rsplit("/", 1)[-1].startswith(".")
            )
            # The folder's own time: it changes when a file is added or renamed into it.
            return VideoFolder(video_id, files, _modified(folder), str(folder))
        except FileNotFoundError:
            return None

    def debris(self) -> list[Debris]:
        """Temporary files of interrupted writes: uploads, renditions, and the files of
        HLS variants that a transcode killed mid-run was writing (kept only until its
        retry starts the variant afresh, or for good if none does)."""
        found = []
        for folder, patterns in self._temporary_places():
            for pattern in patterns:
                for path in folder.glob(pattern):
                    with contextlib.suppress(FileNotFoundError):
                        size = _size(path)
                        found.append(Debris(str(path), size, _modified(path), str(path)))
        return found

    def _temporary_places(self) -> list[tuple[Path, tuple[str, ...]]]:
        videos = [p for p in self.videos.glob("*") if p.is_dir()]
        hls = [p / HLS_FOLDER for p in videos if (p / HLS_FOLDER).is_dir()]
        variants = [p for folder in hls for p in folder.iterdir() if p.is_dir()]
        places = [(folder, TEMPORARY_PATTERNS) for folder in [self.incoming, *videos, *hls]]
        return places + [(variant, (VARIANT_TEMPORARY,)) for variant in variants]

    def remove_debris(self, item: Debris) -> None:
        path = Path(item.token)
        named = [
            (folder, pattern)
            for folder, patterns in self._temporary_places()
            for pattern in patterns
        ]
        if not any(path.parent == folder and path.match(pattern) for folder, pattern in named):
            return  # only what debris() finds: a token is never trusted further
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    # Backup and restore: the ``videos`` folder as it is.
    def export_videos(self, destination: Path) -> None:
        if self.videos.is_dir():
            shutil.copytree(self.videos, destination, dirs_exist_ok=True)

    def import_videos(self, source: Path) -> None:
        if self.videos.exists():
            shutil.rmtree(self.videos)
        if source.is_dir():
            shutil.copytree(source, self.videos)

    def open_incoming(self) -> IncomingFile:
        """A temporary file to stream an upload into before it has an id."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        return IncomingFile(self.incoming / f"{uuid.uuid4().hex}.part")

    def keep_original(self, incoming: Incoming, video_id: str, manifest: bytes) -> None:
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
        if not isinstance(incoming, IncomingFile):
            raise TypeError("a local store keeps only its own uploads")
        incoming.path.replace(self.original_path(video_id))
        fsync_path(folder)
        fsync_path(self.videos)

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
        self.video_id = uuid.uuid4().hex  # the id the video gets if the upload is kept
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

    def wants_flush(self) -> bool:
        return False  # written as it comes (buffered by the file object)

    def flush(self) -> None:
        """Nothing held back: see ``wants_flush``."""

    def finish(self) -> StoredFile:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return StoredFile(self.size_bytes, self._hash.hexdigest())

    def discard(self) -> None:
        """Remove the partial file. Closing flushes what is still buffered, which fails
        on a full disk; the file must go all the same."""
        with contextlib.suppress(OSError):
            self._handle.close()
        self.path.unlink(missing_ok=True)


def is_locked(path: Path) -> bool:
    """Whether another open file holds an exclusive ``flock`` on ``path``."""
    with path.open("rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False  # closing the handle releases the lock just taken


def _size(path: Path) -> int:
    """A file's size, or a folder's: the sum of its files'."""
    if path.is_dir():
        return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())
    return path.stat().st_size


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)


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
