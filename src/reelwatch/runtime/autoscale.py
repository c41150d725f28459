"""``reelwatch worker --autoscale MIN,MAX``: grow and shrink the local worker processes
with the queue, like Celery's autoscaler but on what users feel, the wait.

Every ``CHECK_EVERY_S``: one more worker (up to MAX) while due tasks of this node's queues
have waited over ``GROW_AFTER_WAIT_S``; one fewer (down to MIN) once nothing has been
waiting for ``SHRINK_AFTER_IDLE_S``. A worker is retired by draining it: it finishes its
task first, so shrinking never costs an attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reelwatch.db.models import Task
from reelwatch.engine import states

CHECK_EVERY_S = 5.0
GROW_AFTER_WAIT_S = 10.0
SHRINK_AFTER_IDLE_S = 60.0


@dataclass(frozen=True)
class Pressure:
    waiting_tasks: int
    oldest_wait_s: float


def queue_pressure(session: Session, queues: tuple[str, ...], now: datetime) -> Pressure:
    due = (Task.state == states.QUEUED, Task.run_at <= now, Task.queue.in_(queues))
    waiting, oldest = session.execute(select(func.count(), func.min(Task.run_at)).where(*due)).one()
    return Pressure(int(waiting), (now - oldest).total_seconds() if oldest else 0.0)


@dataclass
class Autoscaler:
    minimum: int
    maximum: int
    _idle_since: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum or self.maximum < 1:
            raise ValueError("--autoscale wants MIN,MAX with 0 <= MIN <= MAX and MAX >= 1")

    def decide(self, pressure: Pressure, current: int, now: float) -> int:
        """+1 to start a worker, -1 to retire one, 0 to stay (``now``: monotonic)."""
        if pressure.waiting_tasks:
            self._idle_since = None
            if pressure.oldest_wait_s > GROW_AFTER_WAIT_S and current < self.maximum:
                return 1
            return 0
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since >= SHRINK_AFTER_IDLE_S and current > self.minimum:
            self._idle_since = now  # one step per idle period
            return -1
        return 0


def parse_bounds(text: str) -> tuple[int, int]:
    """``MIN,MAX`` as two integers."""
    try:
        low, high = (int(part) for part in text.split(","))
    except ValueError:
        raise ValueError("--autoscale wants MIN,MAX, e.g. 1,4") from None
    Autoscaler(low, high)  # validates
    return low, high
