"""The engine's periodic duties, in one place: each a small unit in its own file
(``rescuer``, ``pruner``), run by the elected ``Maintainer``.

``engine_duties`` lists the engine's own; the application adds its duties beside them
(``operations.prune``) and every process that runs the engine runs a ``Maintainer``.
"""

from __future__ import annotations

from datetime import timedelta

from reelwatch.database import Database
from reelwatch.engine.maintenance.duty import Duty
from reelwatch.engine.maintenance.maintainer import (
    MAINTENANCE_LEASE,
    MAINTENANCE_LEASE_S,
    Maintainer,
)
from reelwatch.engine.maintenance.pruner import Pruner
from reelwatch.engine.maintenance.rescuer import (
    RESCUE_INTERVAL_S,
    LeaseRescuer,
    expire_stale_leases,
    find_expired_leases,
)

__all__ = [
    "MAINTENANCE_LEASE",
    "MAINTENANCE_LEASE_S",
    "RESCUE_INTERVAL_S",
    "Duty",
    "LeaseRescuer",
    "Maintainer",
    "Pruner",
    "engine_duties",
    "expire_stale_leases",
    "find_expired_leases",
    "maintenance_lease_s",
]


def engine_duties(
    db: Database, *, backoff_scale: float = 1.0, retention: timedelta | None = timedelta(hours=24)
) -> list[Duty]:
    """The engine's own duties: rescue expired leases, prune finished engine rows."""
    return [LeaseRescuer(db, backoff_scale), Pruner(db, retention)]


def maintenance_lease_s(task_lease_s: float) -> float:
    """The maintenance lease for a given task lease: half of it (at most
    ``MAINTENANCE_LEASE_S``), so a dead leader is replaced, and its own task rescued,
    within the task's lease plus one rescue interval, as when every worker rescued."""
    return min(MAINTENANCE_LEASE_S, task_lease_s / 2)
