"""Failover detection: a new timeline alerts once; a restart, a second look or a new
monitor does not."""

from __future__ import annotations

from sqlalchemy import select

from pg import PostgresCluster
from reelwatch.database import Database, utcnow
from reelwatch.db.migrate import upgrade_database
from reelwatch.db.models import CheckState, OutboxMessage
from reelwatch.insights.checks import record_check
from reelwatch.monitor.failover import TIMELINE_CHECK, check_timeline


def look(db: Database) -> str:
    """One monitor round's part: check the timeline and record it."""
    with db.write() as session:
        now = utcnow()
        result = check_timeline(session, now, "test")
        record_check(session, TIMELINE_CHECK, result, now)
        return result.detail


def failover_alerts(db: Database) -> list[str]:
    with db.read() as session:
        query = select(OutboxMessage.body_text).where(
            OutboxMessage.key.like("alert:database_failover:%")
        )
        return list(session.scalars(query))


def test_a_new_timeline_alerts_once_and_a_restart_does_not(pg_cluster: PostgresCluster) -> None:
    url = pg_cluster.create_database()
    upgrade_database(url)
    db = Database(url)
    try:
        assert look(db) == "the primary writes timeline 1"
        pg_cluster.restart()
        look(db)
        assert failover_alerts(db) == [], "a restart keeps the timeline: no failover"
        with db.write() as session:  # what a monitor saw before a promotion to timeline 1
            session.get_one(CheckState, TIMELINE_CHECK).value = 7
        assert "since a failover" in look(db)
        [alert] = failover_alerts(db)
        assert "timeline 1, it wrote timeline 7" in alert and "without a standby" in alert
        look(db)  # the next round, or a monitor that restarted or took over
        assert len(failover_alerts(db)) == 1
    finally:
        db.dispose()
