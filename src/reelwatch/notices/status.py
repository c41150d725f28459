"""The service's state as users see it: operational, degraded, maintenance or down.

``maintenance`` while a window is active; ``down`` while an emergency alert fires
(nothing can be processed); ``degraded`` while an incident is open, tasks wait with no
live worker, or a component check alerts; ``operational`` otherwise. The monitor reads
it every round and mails the "tell me when it is back" subscribers once it is
operational again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelwatch.db.models import AlertState, Notice, NoticeUpdate, StatusSubscription
from reelwatch.inputs import parse_address
from reelwatch.insights.capacity import Capacity, estimate_capacity
from reelwatch.insights.load import Load, read_load
from reelwatch.notices.service import MAINTENANCE, active_notices, upcoming_notices, updates_of
from reelwatch.notify import messages, outbox

OPERATIONAL, DEGRADED, MAINTENANCE_STATUS, DOWN = "operational", "degraded", "maintenance", "down"
EMERGENCIES = ("no_live_worker", "queue_stalled")


@dataclass(frozen=True)
class ServiceStatus:
    status: str
    active: list[Notice]
    upcoming: list[Notice]
    load: Load
    capacity: Capacity
    # The active notices' updates, newest first, by notice id.
    updates: dict[int, list[NoticeUpdate]] = field(default_factory=dict)
    # The emergency alert rules firing (what makes it ``down``).
    emergencies: frozenset[str] = frozenset()


def read_status(session: Session, *, lease_s: float, now: datetime) -> ServiceStatus:
    load = read_load(session, lease_s=lease_s)
    active = active_notices(session, now)
    firing = set(session.scalars(select(AlertState.rule).where(AlertState.state == "firing")))
    if any(notice.kind == MAINTENANCE for notice in active):
        status = MAINTENANCE_STATUS
    elif firing & set(EMERGENCIES):
        status = DOWN
    elif active or (load.waiting_tasks and not load.live_workers) or _component_down(firing):
        status = DEGRADED
    else:
        status = OPERATIONAL
    return ServiceStatus(
        status=status,
        active=active,
        upcoming=upcoming_notices(session, now),
        load=load,
        capacity=estimate_capacity(session, live_workers=load.live_workers),
        updates=updates_of(session, active),
        emergencies=frozenset(firing & set(EMERGENCIES)),
    )


def subscribe(session: Session, email: str, now: datetime) -> StatusSubscription:
    """One "it is back" e-mail for ``email`` (exactly one address, else ``InvalidInput``);
    subscribing twice while waiting is once."""
    email = parse_address(email)
    waiting = session.scalar(
        select(StatusSubscription).where(
            StatusSubscription.email == email, StatusSubscription.notified_at.is_(None)
        )
    )
    if waiting is not None:
        return waiting
    subscription = StatusSubscription(email=email, created_at=now)
    session.add(subscription)
    session.flush()
    return subscription


def tell_subscribers_it_is_back(session: Session, *, public_url: str, now: datetime) -> int:
    """Queue the "back" e-mail of every waiting subscription; call when operational."""
    waiting = session.scalars(
        select(StatusSubscription).where(StatusSubscription.notified_at.is_(None))
    ).all()
    for subscription in waiting:
        outbox.enqueue(session, messages.back_email(subscription, public_url=public_url))
        subscription.notified_at = now
    return len(waiting)


def _component_down(firing: set[str]) -> bool:
    # The probes and the storage are what users feel; a node's disk filling is not yet.
    felt = ("check:e2e_probe", "check:ping_ffmpeg", "check:storage", "check:database")
    return any(rule in firing for rule in felt)
