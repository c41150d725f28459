"""What happened during a run, with timestamps: the faults injected and what was seen."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class Fault:
    """One injected fault; ``duration_s`` is None for instant ones (a SIGKILL)."""

    kind: str
    at_s: float  # seconds since the run started
    wall: datetime  # UTC
    detail: str
    duration_s: float | None = None


@dataclass(frozen=True)
class Note:
    """Something the harness observed that is not a fault it injected (``up`` exiting)."""

    at_s: float
    text: str


class Journal:
    """Thread-safe record of faults and notes, relative to one start instant."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.started_wall = datetime.now(UTC)
        self.faults: list[Fault] = []
        self.notes: list[Note] = []
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fault(self, kind: str, detail: str) -> Fault:
        """Record a fault as it starts; an outage sets ``duration_s`` when it ends."""
        record = Fault(kind, round(self.elapsed(), 1), datetime.now(UTC), detail)
        with self._lock:
            self.faults.append(record)
        return record

    def note(self, text: str) -> None:
        with self._lock:
            self.notes.append(Note(round(self.elapsed(), 1), text))


class Outage:
    """Times an outage: ``with Outage(journal, kind, detail): ...`` records its length."""

    def __init__(self, journal: Journal, kind: str, detail: str) -> None:
        self.journal, self.kind, self.detail = journal, kind, detail
        self.record: Fault | None = None
        self._began = 0.0

    def __enter__(self) -> Fault:
        self._began = time.monotonic()
        self.record = self.journal.fault(self.kind, self.detail)
        return self.record

    def __exit__(self, *_exc: object) -> None:
        assert self.record is not None
        self.record.duration_s = round(time.monotonic() - self._began, 1)
