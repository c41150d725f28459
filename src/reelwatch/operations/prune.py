"""The application's pruning duties, run by the engine's ``Maintainer`` beside the
engine's own: the end-to-end probe's leftover videos, and the outbox's delivered
messages of videos that are gone.

``maintenance_duties`` is the whole list a process runs as a maintenance candidate.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select

from reelwatch.config import Settings
from reelwatch.database import Database, retry_on_conflict
from reelwatch.db.models import OutboxMessage, User, Video
from reelwatch.engine.maintenance import Duty, engine_duties
from reelwatch.notify import outbox
from reelwatch.notify.dispatcher import ALERT_GROUP_INTERVAL_S
from reelwatch.storage import MediaStore, open_store
from reelwatch.videos import service

log = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 30.0
PROBE_VIDEOS_PER_ROUND = 20
OUTBOX_INTERVAL_S = 3600.0  # the scan reads every delivered message: hourly is enough
OUTBOX_BATCH_SIZE = 1000


def maintenance_duties(db: Database, settings: Settings) -> list[Duty]:
    """Everything the elected maintainer runs, with the configured retention."""
    retention = settings.prune_retention
    duties = engine_duties(db, backoff_scale=settings.retry_backoff_scale, retention=retention)
    if retention is None:
        return duties
    store = open_store(settings)
    return [
        *duties,
        ProbeVideoPruner(db, store, settings.probe_email, retention),
        OutboxPruner(db, retention),
    ]


@dataclass(frozen=True)
class ProbeVideoPruner:
    """Deletes the end-to-end probe's videos uploaded more than ``retention`` ago, rows
    then files, as a user's delete does. The probe deletes its video itself; this
    catches those it could not (the server was down, the monitor was killed).

    Options: ``retention``, ``interval_s`` (30 s), ``limit`` (20 videos per round).
    Reports how many videos it deleted."""

    db: Database
    store: MediaStore
    probe_email: str
    retention: timedelta
    interval_s: float = PRUNE_INTERVAL_S
    limit: int = PROBE_VIDEOS_PER_ROUND
    name: str = "probe video pruner"

    def run(self, now: datetime) -> int:
        with self.db.read() as session:
            probe = session.scalars(select(User).where(User.email == self.probe_email)).first()
            if probe is None:
                return 0
            old = select(Video.id).where(
                Video.user_id == probe.id, Video.created_at < now - self.retention
            )
            video_ids = list(session.scalars(old.limit(self.limit)))
        for video_id in video_ids:
            with suppress(service.VideoNotFound):  # deleted meanwhile, by the probe itself
                service.delete_video(self.db, self.store, probe, video_id)
        if video_ids:
            log.info("deleted %d leftover probe videos", len(video_ids))
        return len(video_ids)


@dataclass(frozen=True)
class OutboxPruner:
    """Deletes delivered (sent or rejected) messages older than ``retention`` whose
    video is gone. A message of a live video is kept: its key is what stops a second
    outcome e-mail for the same run, for the video's whole life. Messages without a
    video (maintenance notices, "it is back") are kept too: their keys guard notices and
    subscriptions that still exist. The cutoff is never younger than the alert digest's
    interval, which reads the group's last delivery.

    Options: ``retention``, ``interval_s`` (1 h), ``batch_size`` (1,000 rows per round).
    Reports how many messages it deleted."""

    db: Database
    retention: timedelta
    interval_s: float = OUTBOX_INTERVAL_S
    batch_size: int = OUTBOX_BATCH_SIZE
    name: str = "outbox pruner"

    @retry_on_conflict
    def run(self, now: datetime) -> int:
        cutoff = now - max(self.retention, timedelta(seconds=ALERT_GROUP_INTERVAL_S))
        video_alive = exists().where(Video.id == OutboxMessage.video_id)
        prunable = select(OutboxMessage.id).where(
            OutboxMessage.state.in_((outbox.SENT, outbox.REJECTED, outbox.SUPPRESSED)),
            OutboxMessage.next_attempt_at < cutoff,  # the due index narrows the scan
            OutboxMessage.video_id.is_not(None),
            ~video_alive,
        )
        batch = prunable.limit(self.batch_size).scalar_subquery()
        with self.db.write() as session:
            deleted = session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(batch)))
            return int(deleted.rowcount)  # type: ignore[attr-defined]
