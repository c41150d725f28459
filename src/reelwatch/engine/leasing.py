"""Leased rows: one implementation of leasing for every table that is a queue.

A row waits until it is due, is leased to one owner for one attempt until its lease
expires, and is changed by its owner only through a fence on (id, owner, attempt) while
it is still leased: an owner whose lease ran out and was taken over changes nothing.
The engine's tasks are leased rows (``engine.rows.TASK_LEASES``), and so is the
application's outbox (``notify.outbox``).

``LeasedRows`` names the columns and states; its statements take their values as bound
parameters (``now``, ``owner``, ``lease_expires_at``, ``limit``), so a caller builds
them once and runs them for every claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    inspect,
    or_,
    select,
    update,
)

NOW: BindParameter[Any] = bindparam("now")
OWNER: BindParameter[Any] = bindparam("owner")
LEASE_EXPIRES_AT: BindParameter[Any] = bindparam("lease_expires_at")
LIMIT: BindParameter[Any] = bindparam("limit")


@dataclass(frozen=True)
class LeasedRows:
    """``target``, a table or a mapped class (its statements then return ORM objects),
    and which of its columns hold the state, the owner, the attempt, when a waiting row
    becomes due and when a lease expires."""

    target: Any
    waiting: str
    leased: str
    owner: str
    attempt: str
    due_at: str
    state: str = "state"
    lease_expires_at: str = "lease_expires_at"
    id: str = "id"

    def column(self, name: str) -> Any:
        return inspect(self.target).columns[name]

    def due(self, *, or_expired: bool = False) -> ColumnElement[bool]:
        """Waiting and due at ``now``; ``or_expired``: also leased with a lease that ran
        out (the owner died), for a queue whose claim takes those over itself."""
        waiting = and_(self.column(self.state) == self.waiting, self.column(self.due_at) <= NOW)
        return or_(waiting, self.expired()) if or_expired else waiting

    def expired(self) -> ColumnElement[bool]:
        """Leased, with a lease that ran out before ``now``."""
        return and_(
            self.column(self.state) == self.leased, self.column(self.lease_expires_at) < NOW
        )

    def any_due(self, *where: ColumnElement[bool], or_expired: bool = False) -> Select[Any]:
        """Whether a claim would find a row: a read, to spare SQLite's write lock."""
        return select(exists().where(self.due(or_expired=or_expired), *where))

    def claim(
        self,
        *where: ColumnElement[bool],
        order_by: Iterable[Any] = (),
        returning: Iterable[Any] = (),
        values: Mapping[str, Any] | None = None,
        or_expired: bool = False,
        skip_locked: bool = True,
    ) -> Update:
        """UPDATE … RETURNING leasing up to ``limit`` due rows to ``owner`` for their next
        attempt, until ``lease_expires_at``. ``skip_locked``: concurrent claims pass
        over each other's rows (PostgreSQL; SQLite has one writer anyway)."""
        ids = self.column(self.id)
        due = select(ids).where(self.due(or_expired=or_expired), *where)
        due = due.order_by(*(tuple(order_by) or (ids,))).limit(LIMIT)
        if skip_locked:
            due = due.with_for_update(skip_locked=True)
        lease = {
            self.state: self.leased,
            self.attempt: self.column(self.attempt) + 1,
            self.lease_expires_at: LEASE_EXPIRES_AT,
            self.owner: OWNER,
        }
        return (
            update(self.target)
            .where(ids.in_(due.scalar_subquery()))
            .values({**lease, **(values or {})})
            .returning(*(tuple(returning) or (self.target,)))
        )

    def fence(self, row_id: int, owner: str | None, attempt: int) -> ColumnElement[bool]:
        """True while ``owner`` still holds the row for ``attempt``."""
        return and_(
            self.column(self.id) == row_id,
            self.column(self.state) == self.leased,
            self.column(self.owner) == owner,
            self.column(self.attempt) == attempt,
        )

    def fenced_update(self, row_id: int, owner: str | None, attempt: int) -> Update:
        """UPDATE of one row that changes nothing once ``owner`` lost it."""
        return update(self.target).where(self.fence(row_id, owner, attempt))

    def held_by(self, owner: str) -> ColumnElement[bool]:
        """The rows ``owner`` holds, whether or not their lease ran out."""
        return and_(self.column(self.state) == self.leased, self.column(self.owner) == owner)

    def release(self, owner: str) -> Update:
        """Make the rows a dead ``owner`` held due again at ``now``, without waiting for
        their leases to run out (the attempt it began stays counted)."""
        return (
            update(self.target)
            .where(self.held_by(owner))
            .values({self.state: self.waiting, self.due_at: NOW, self.lease_expires_at: None})
        )
