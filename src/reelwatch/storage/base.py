"""What every media store offers, whichever holds the bytes (local disk or a bucket).

A video's files live under one folder, ``videos/<id>/``: the ``original`` and its upload
manifest (``upload.json``) from the upload, then whatever the workers publish there
(renditions, the thumbnail, HLS playlists and segments in subfolders). Workers never
write to the store directly: they work in ``store.workspace(id)``, a local folder that
holds the original (on local disk it *is* the video's folder), and ``store.publish`` the
files they made. Every file appears whole or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

ORIGINAL = "original"
MANIFEST = "upload.json"
HLS_FOLDER = "hls"  # a video's HLS variants, one subfolder each
# A relative path under a video's folder: plain names, "/" between them, none hidden
# (temporary files start with a dot) and none "..": what the workers name, nothing more.
_RELATIVE = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){0,3}"
)
_VIDEO_ID = re.compile(r"[A-Za-z0-9]{1,64}")


class UploadTooLarge(Exception):
    """The stream passed the size limit; nothing was kept."""


class StorageError(OSError):
    """The store could not be reached or refused an operation; the message says which."""


@dataclass(frozen=True)
class StoredFile:
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class StoredObject:
    """A file in a video's folder: its path relative to the folder, size and last write."""

    relative: str
    size_bytes: int
    modified: datetime  # naive UTC


@dataclass(frozen=True)
class VideoFolder:
    """What a video's folder holds, as listed (``modified``: its newest write)."""

    video_id: str
    files: tuple[StoredObject, ...]
    modified: datetime
    where: str  # for people: a path, or s3://bucket/key

    def file(self, relative: str) -> StoredObject | None:
        return next((f for f in self.files if f.relative == relative), None)

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def has_manifest(self) -> bool:
        """An original with its upload manifest: a row may have been committed for it."""
        return self.file(ORIGINAL) is not None and self.file(MANIFEST) is not None


@dataclass(frozen=True)
class Debris:
    """Something an interrupted write left (a temporary file, an unfinished multipart
    upload), with its age; ``reelwatch gc`` removes it once old enough."""

    where: str
    size_bytes: int
    modified: datetime
    token: str  # what the store needs to remove it
    grace: timedelta = timedelta(hours=1)  # younger, it may be a write in progress


class Incoming(Protocol):
    """An upload being received: size-limited and hashed as it streams."""

    size_bytes: int
    video_id: str  # the id the video gets if the upload is kept

    def write(self, chunk: bytes, *, limit_bytes: int) -> None: ...
    def wants_flush(self) -> bool: ...
    def flush(self) -> None: ...  # blocking I/O: the API calls it off its event loop
    def finish(self) -> StoredFile: ...
    def discard(self) -> None: ...


class MediaStore(Protocol):
    """The media store the API, the workers and the operator commands use."""

    description: str  # for people: the folder, or s3://bucket/prefix

    def ensure_layout(self) -> None: ...
    def open_incoming(self) -> Incoming: ...
    def keep_original(self, incoming: Incoming, video_id: str, manifest: bytes) -> None: ...
    def delete_video(self, video_id: str) -> None: ...

    def workspace(self, video_id: str) -> AbstractContextManager[Path]: ...
    def publish(self, video_id: str, folder: Path, relatives: list[str]) -> None: ...
    def release(self, video_id: str) -> None: ...
    def tidy_scratch(self) -> None: ...
    def temporary_folder(self) -> Path: ...  # local, for a worker's throw-away files

    def sizes(self, video_id: str, relatives: list[str]) -> dict[str, int]: ...
    def read_bytes(self, video_id: str, relative: str) -> bytes: ...
    def sha256(self, video_id: str, relative: str) -> str | None: ...
    def local_file(self, video_id: str, relative: str) -> Path | None: ...

    def video_folders(self) -> list[VideoFolder]: ...
    def video_folder(self, video_id: str) -> VideoFolder | None: ...
    def debris(self) -> list[Debris]: ...
    def remove_debris(self, item: Debris) -> None: ...
    def remove_abandoned_uploads(self) -> object: ...

    def export_videos(self, destination: Path) -> None: ...
    def import_videos(self, source: Path) -> None: ...

    def describe_problem(self) -> str | None: ...
    def check_writable(self) -> None: ...
    def disk_path(self) -> Path | None: ...


def checked_video_id(video_id: str) -> str:
    """``video_id`` if it can name a folder or a key; ids are generated, but a path
    piece is never trusted."""
    if not _VIDEO_ID.fullmatch(video_id):
        raise ValueError(f"invalid video id {video_id!r}")
    return video_id


def checked_relative(relative: str) -> str:
    """``relative`` if it is a path a worker may publish under a video's folder."""
    if not _RELATIVE.fullmatch(relative) or ".." in relative.split("/"):
        raise ValueError(f"invalid file name {relative!r}")
    return relative


def rendition_file(name: str) -> str:
    return checked_relative(f"{name}.mp4")


THUMBNAIL = "thumbnail.jpg"


def walk_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of every regular file under ``folder``, sorted."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path.relative_to(folder).as_posix(), path
