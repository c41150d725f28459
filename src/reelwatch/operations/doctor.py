"""``reelwatch doctor``: is this host ready to run reelwatch, and if not, what to do.

It runs the monitor's own component checks (database, storage, SMTP, ffmpeg) once, plus
what only matters at install time: the schema is current, ffprobe is there, the alert
targets parse, production has what it needs, stored uploads whose video row is missing
(``reelwatch recover``), and how much garbage ``gc`` would free.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import apprise

from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.migrate import is_known_revision, schema_revisions
from reelwatch.insights.checks import CRITICAL, OK, UNKNOWN, WARNING, CheckResult
from reelwatch.monitor import checks
from reelwatch.notify.alerts import parse_alert_urls
from reelwatch.operations.gc import find_garbage, find_unrecorded_uploads
from reelwatch.permissions import open_to_others
from reelwatch.storage import MediaStore, open_store


@dataclass(frozen=True)
class Finding:
    name: str
    result: CheckResult
    fix: str = ""


def examine(settings: Settings) -> list[Finding]:
    db = Database(settings.resolved_database_url, pool_size=1)
    store = open_store(settings)
    storage = Finding("storage", checks.check_storage(store), _storage_fix(settings))
    try:
        database = checks.check_database(db)
        findings = [Finding("database", database, "start it, or fix REELWATCH_DATABASE_URL")]
        if database.state == OK:
            schema = _schema(settings)
            findings.append(schema)
            # gc's tables exist, and its store answers
            if schema.result.state == OK and storage.result.state != CRITICAL:
                findings.append(_unrecorded_uploads(db, store, settings))
                findings.append(_garbage(db, store, settings))
    finally:
        db.dispose()
    return [
        *findings,
        storage,
        Finding("smtp", checks.check_mail(settings), "fix REELWATCH_SMTP_URL"),
        Finding("ffmpeg", checks.check_transcoder(settings), "apt-get install ffmpeg"),
        *([] if settings.simulate else [_ffprobe()]),
        _alert_targets(settings),
        _home(settings),
        _production(settings),
    ]


def _storage_fix(settings: Settings) -> str:
    if settings.bucket is None:
        return "make REELWATCH_HOME/media writable"
    return (
        "check AWS_ENDPOINT_URL, the keys, that the bucket exists and the policy lets "
        "the keys put, get, list and delete under the prefix (docs/scale-out.md)"
    )


def _schema(settings: Settings) -> Finding:
    current, head = schema_revisions(settings.resolved_database_url)
    if current == head:
        return Finding("schema", CheckResult(OK, f"at revision {head}"))
    if current is not None and not is_known_revision(current):
        later = CheckResult(WARNING, f"at revision {current}, a later release's (this one: {head})")
        return Finding("schema", later, "a rolled-back release: switch forward when fixed")
    result = CheckResult(WARNING, f"at revision {current or 'none'}, the code expects {head}")
    return Finding("schema", result, "run `reelwatch db upgrade` (up and server do it on start)")


def _unrecorded_uploads(db: Database, store: MediaStore, settings: Settings) -> Finding:
    kept = find_unrecorded_uploads(
        db, store, now=utcnow(), orphan_retention_days=settings.orphan_retention_days
    )
    if not kept:
        return Finding("uploads", CheckResult(OK, "every stored upload has its video row"))
    detail = (
        f"{len(kept)} stored uploads have no video row (lost by the database?); gc deletes "
        f"them {settings.orphan_retention_days} days after their upload"
    )
    fix = "`reelwatch recover` re-creates them (`--dry-run` lists them)"
    return Finding("uploads", CheckResult(WARNING, detail), fix)


def _garbage(db: Database, store: MediaStore, settings: Settings) -> Finding:
    garbage = find_garbage(
        db,
        store,
        now=utcnow(),
        retention_days=settings.retention_days,
        orphan_retention_days=settings.orphan_retention_days,
    )
    if not garbage:
        return Finding("garbage", CheckResult(OK, "nothing to collect"))
    size_mb = sum(item.size_bytes for item in garbage) / 1e6
    detail = f"{len(garbage)} items, {size_mb:.1f} MB no video needs"
    return Finding("garbage", CheckResult(WARNING, detail), "run `reelwatch gc`")


def _ffprobe() -> Finding:
    found = shutil.which("ffprobe")
    if found:
        return Finding("ffprobe", CheckResult(OK, found))
    return Finding("ffprobe", CheckResult(CRITICAL, "not found"), "apt-get install ffmpeg")


def _alert_targets(settings: Settings) -> Finding:
    urls = parse_alert_urls(settings.alert_urls)
    if not urls:
        return Finding("alerts", CheckResult(UNKNOWN, "no REELWATCH_ALERT_URLS: admins get mail"))
    invalid = [url.split("://")[0] for url in urls if not apprise.Apprise().add(url)]
    if invalid:
        detail = f"not Apprise URLs: {', '.join(s + '://…' for s in invalid)}"
        return Finding("alerts", CheckResult(CRITICAL, detail), "fix REELWATCH_ALERT_URLS")
    return Finding("alerts", CheckResult(OK, f"{len(urls)} target(s)"))


def _production(settings: Settings) -> Finding:
    if settings.env != "production":
        return Finding("environment", CheckResult(OK, f"{settings.env} (not production)"))
    problems, fixes = list(settings.startup_warnings()), []
    if problems:
        fixes.append("unset REELWATCH_API_DOCS")
    if settings.resolved_database_url.startswith("sqlite"):
        problems.append("production on SQLite: one machine only")
        fixes.append("use PostgreSQL to run several machines")
    if problems:
        return Finding("environment", CheckResult(WARNING, "; ".join(problems)), "; ".join(fixes))
    return Finding("environment", CheckResult(OK, "production"))


def _home(settings: Settings) -> Finding:
    exposure = open_to_others(settings.home)
    if exposure:
        return Finding("home", CheckResult(WARNING, exposure), "make it the service user's only")
    return Finding("home", CheckResult(OK, "readable by the service's user only"))
