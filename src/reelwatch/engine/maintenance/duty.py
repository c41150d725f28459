"""What the ``Maintainer`` runs: a periodic duty, one small unit per concern.

A duty has a name (for the logs), an interval, and a ``run(now)`` that does one bounded
round and returns how many rows it handled, so a round never holds a lock for long and
the next round picks up where it stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Duty(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    def run(self, now: datetime) -> int:
        """One bounded round; returns how many rows it rescued, released or deleted."""
        ...
