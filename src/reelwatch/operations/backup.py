"""``reelwatch backup DEST`` and ``reelwatch restore SRC``: the database and the media,
consistent, and checked on the way back.

The database is copied first (SQLite's online backup API, or ``pg_dump``), then the
media: every file a backed-up row points at existed before the copy started, and files
are never changed once written, so the copy is consistent; an upload that arrived in
between only adds a folder with no row, which ``reelwatch gc`` removes. A manifest says
what was saved. ``restore`` puts both back into an empty home (or over one with
``--force``), migrates the schema, and checks every original against the checksum its
row recorded at upload.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from reelwatch import __version__
from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.migrate import schema_revisions, upgrade_database
from reelwatch.db.models import Video
from reelwatch.processes import postgres_tool
from reelwatch.storage import ORIGINAL, open_store

MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
POSTGRES_FILE = "database.pgdump"
DUMP_TIMEOUT_S = 6 * 3600


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Verification:
    videos: int
    missing: list[str]  # video ids whose original is not there
    corrupted: list[str]  # whose original does not match its upload checksum

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupted


def backup(settings: Settings, destination: Path) -> dict[str, Any]:
    """Write a backup into the new folder ``destination``; returns its manifest."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: back up into a new folder")
    destination.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    database_file = _dump(url, destination)
    revision, _ = schema_revisions(url)
    media = destination / "media"
    open_store(settings).export_videos(media / "videos")
    manifest = {
        "created_at": utcnow().isoformat() + "Z",
        "reelwatch": __version__,
        "database": database_file,
        "schema_revision": revision,
        "videos": _count_videos(url),
        "media_bytes": sum(p.stat().st_size for p in media.rglob("*") if p.is_file()),
        "media_from": open_store(settings).description,
    }
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(settings: Settings, source: Path, *, force: bool) -> Verification:
    manifest = _read_manifest(source)
    url = settings.resolved_database_url
    settings.home.mkdir(parents=True, exist_ok=True)
    _refuse_to_overwrite(url, force=force)
    _load(url, source / manifest["database"])
    upgrade_database(url)  # a backup of an older version gets today's schema
    open_store(settings).import_videos(source / "media" / "videos")
    return verify(settings)


def verify(settings: Settings) -> Verification:
    """Every video's original is there and matches the checksum taken at upload."""
    store = open_store(settings)
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        with db.read() as session:
            videos = session.execute(select(Video.id, Video.sha256)).all()
    finally:
        db.dispose()
    missing, corrupted = [], []
    for video_id, checksum in videos:
        found = store.sha256(video_id, ORIGINAL)
        if found is None:
            missing.append(video_id)
        elif found != checksum:
            corrupted.append(video_id)
    return Verification(len(videos), missing, corrupted)


def _dump(url: str, destination: Path) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        source = sqlite3.connect(parsed.database or "")
        target = sqlite3.connect(destination / SQLITE_FILE)
        try:
            source.backup(target)  # a consistent copy, while the service runs
        finally:
            target.close()
            source.close()
        return SQLITE_FILE
    _run_pg("pg_dump", "--format=custom", "--file", str(destination / POSTGRES_FILE), _libpq(url))
    return POSTGRES_FILE


def _load(url: str, dump: Path) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if dump.name != SQLITE_FILE:
            raise BackupError("this backup is of PostgreSQL; configure REELWATCH_DATABASE_URL")
        target = Path(parsed.database or "")
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            leftover = target.with_name(target.name + suffix)
            leftover.unlink(missing_ok=True)
        shutil.copyfile(dump, target)
        return
    if dump.name != POSTGRES_FILE:
        raise BackupError("this backup is of SQLite; unset REELWATCH_DATABASE_URL to restore it")
    _run_pg(
        "pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", _libpq(url), str(dump)
    )


def _refuse_to_overwrite(url: str, *, force: bool) -> None:
    if force:
        return
    current, _ = schema_revisions(url)
    if current is not None and _count_videos(url):
        raise BackupError(
            "the configured database already has videos; restore into an empty one, "
            "or pass --force to replace it"
        )


def _read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a reelwatch backup ({MANIFEST}: {exc})") from None
    return manifest


def _count_videos(url: str) -> int:
    db = Database(url, pool_size=1)
    try:
        with db.read() as session:
            return len(session.scalars(select(Video.id)).all())
    finally:
        db.dispose()


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as libpq reads it (no ``+psycopg`` driver part)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run_pg(tool: str, *args: str) -> None:
    try:
        program = postgres_tool(tool)
    except FileNotFoundError as exc:
        raise BackupError(str(exc)) from None
    try:
        subprocess.run([program, *args], check=True, capture_output=True, timeout=DUMP_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        raise BackupError(f"{tool} failed: {exc.stderr.decode(errors='replace').strip()}") from None
