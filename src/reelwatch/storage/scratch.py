"""A worker's local copies of the originals it processes, when the media live in a bucket.

Each process keeps its copies in its own folder under ``REELWATCH_HOME/scratch``, locked
(``flock``) while the process lives, so a starting process removes the folders of dead
ones, even SIGKILLed, and leaves the live ones alone. Within a process, the tasks of one
video (probe, transcode, thumbnail, finalize: often on the same worker, one after the
other) share one download of its original; a video's copy goes when its last task is
done (``release``) or when no task has used it for ``IDLE_S`` (``evict_idle``, between
tasks), so nothing of a video stays on local disk once it is processed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from reelwatch.storage.base import ORIGINAL, checked_video_id
from reelwatch.storage.local import is_locked

IDLE_S = 30.0
LOCK = ".lock"


@dataclass
class _Copy:
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    fetching: threading.Lock = field(default_factory=threading.Lock)
    released: bool = False


class Scratch:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._mine: Path | None = None
        self._lock_handle: BinaryIO | None = None
        self._copies: dict[str, _Copy] = {}
        self._guard = threading.Lock()

    def remove_dead_processes(self) -> None:
        """Remove the folders of processes that died (their lock is free)."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder == self._mine or not folder.is_dir():
                continue
            lock = folder / LOCK
            try:  # ".lock" appears already locked (see _process_folder): free, it is dead
                if is_locked(lock) if lock.exists() else _just_made(folder):
                    continue
            except FileNotFoundError:  # removed meanwhile
                continue
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def folder(self, video_id: str, fetch: Callable[[Path], None]) -> Iterator[Path]:
        """The video's local folder, holding ``original`` (fetched with ``fetch`` on first
        use); in use until the block ends."""
        folder = self._process_folder() / checked_video_id(video_id)
        with self._guard:
            copy = self._copies.setdefault(video_id, _Copy())
            copy.users += 1
            copy.released = False
        try:
            with copy.fetching:  # one download even when two tasks start together
                folder.mkdir(exist_ok=True)
                if not (folder / ORIGINAL).is_file():
                    temporary = folder / f".{ORIGINAL}.{uuid.uuid4().hex[:8]}.tmp"
                    try:
                        fetch(temporary)
                        temporary.replace(folder / ORIGINAL)
                    finally:
                        temporary.unlink(missing_ok=True)
            yield folder
        finally:
            with self._guard:
                copy.users -= 1
                copy.last_used = time.monotonic()
                gone = copy.released and copy.users == 0
                if gone:
                    del self._copies[video_id]
            if gone:
                shutil.rmtree(folder, ignore_errors=True)

    def release(self, video_id: str) -> None:
        """The video is done: remove its copy now, or when its last user is done."""
        with self._guard:
            copy = self._copies.get(video_id)
            if copy is not None and copy.users:
                copy.released = True
                return
            self._copies.pop(video_id, None)
        if self._mine is not None:
            shutil.rmtree(self._mine / checked_video_id(video_id), ignore_errors=True)

    def evict_idle(self, idle_s: float = IDLE_S) -> list[str]:
        """Remove the copies no task has used for ``idle_s``; returns their video ids."""
        now = time.monotonic()
        with self._guard:
            idle = [
                video_id
                for video_id, copy in self._copies.items()
                if copy.users == 0 and now - copy.last_used >= idle_s
            ]
            for video_id in idle:
                del self._copies[video_id]
        for video_id in idle:
            if self._mine is not None:
                shutil.rmtree(self._mine / video_id, ignore_errors=True)
        return idle

    def _process_folder(self) -> Path:
        with self._guard:
            if self._mine is None or self._lock_handle is None or self._pid != os.getpid():
                self.root.mkdir(parents=True, exist_ok=True)
                mine = self.root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
                mine.mkdir()
                # Locked under another name, then renamed: the lock is the file's, so
                # ".lock" is never seen unlocked while this process lives.
                handle = (mine / f"{LOCK}.new").open("wb")
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                (mine / f"{LOCK}.new").rename(mine / LOCK)
                weakref.finalize(self, handle.close)  # the lock lasts as long as this
                self._mine, self._lock_handle, self._pid = mine, handle, os.getpid()
                self._copies.clear()
            return self._mine

    _pid: int = 0


def _just_made(folder: Path) -> bool:
    return time.time() - folder.stat().st_mtime < 60
