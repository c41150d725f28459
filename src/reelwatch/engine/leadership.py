"""Leader election through a lease row: one process holds a singleton duty at a time.

The holder renews its lease every round; when it dies, the lease runs out and the next
candidate to ask takes over. Works on SQLite and PostgreSQL alike (a locked row read).
Each duty has its own lease name: the monitor's, the engine's maintenance.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from reelwatch.database import Database, retry_on_conflict, utcnow
from reelwatch.engine.schema import Leadership


@retry_on_conflict
def hold_lease(db: Database, name: str, holder: str, *, ttl_s: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False while another holds it."""
    now = utcnow()
    with db.write() as session:
        lease = session.scalars(
            select(Leadership).where(Leadership.name == name).with_for_update()
        ).one_or_none()
        if lease is None:
            session.add(
                Leadership(name=name, holder=holder, expires_at=now + timedelta(seconds=ttl_s))
            )
            return True
        if lease.holder != holder and lease.expires_at > now:
            return False
        lease.holder, lease.expires_at = holder, now + timedelta(seconds=ttl_s)
        return True


@retry_on_conflict
def release_lease(db: Database, name: str, holder: str) -> None:
    """Give the lease up at a clean shutdown, so a successor need not wait it out."""
    with db.write() as session:
        lease = session.get(Leadership, name)
        if lease is not None and lease.holder == holder:
            lease.expires_at = utcnow()


def lease_holder(db: Database, name: str) -> str | None:
    """Who holds the lease ``name`` now (None: nobody, or it ran out)."""
    with db.read() as session:
        lease = session.get(Leadership, name)
        if lease is None or lease.expires_at <= utcnow():
            return None
        return lease.holder
