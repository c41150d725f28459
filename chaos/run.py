"""One chaos run: set up a real instance, upload under faults, drain, check, report."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from chaos import faults
from chaos.instance import UpInstance
from chaos.invariants import (
    TERMINAL,
    Observed,
    OutboxRow,
    Video,
    check_all,
    retransmissions,
    time_inversions,
    unrecorded_originals,
)
from chaos.journal import Journal
from chaos.media import Sample, make_samples
from chaos.postgres import PostgresServer
from chaos.report import Report, summarize_log_errors
from chaos.smtp import RecordingSmtp
from chaos.uploader import Plan, Uploader, UploadLog, User, plan_uploads
from reelwatch.database import Database
from reelwatch.db.models import OutboxMessage

USERS = ("ana@example.com", "bo@example.com", "chen@example.com")
RENDITIONS = (120, 240)
UPLOADS_PER_MINUTE = 20
# Uploads keep being retried this long after the faults stop.
UPLOAD_GRACE_S = 60.0
DRAIN_NOTE_EVERY_S = 20.0
UNSENT = ("pending", "sending")  # "rejected" is final: the checker reports it


@dataclass(frozen=True)
class ChaosOptions:
    minutes: float = 5.0
    database: str = "sqlite"  # or "postgresql"
    seed: int = 0
    videos: int | None = None  # default: UPLOADS_PER_MINUTE per minute of faults
    workers: int = 2
    lease_seconds: float = 10.0
    drain_timeout_s: float = 240.0
    disk_mb: int = 96
    work_dir: Path | None = None
    keep: bool = False

    @property
    def upload_count(self) -> int:
        return self.videos or max(12, round(UPLOADS_PER_MINUTE * self.minutes))


def run_chaos(options: ChaosOptions) -> Report:
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="reelwatch-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    journal = Journal()
    report = Report(
        database=options.database,
        seed=options.seed,
        minutes=options.minutes,
        workers=options.workers,
        started=journal.started_wall,
        work_dir=work,
    )
    try:
        with ExitStack() as cleanup:
            ChaosRun(options, work, journal, report, cleanup).run()
    except Exception:  # the report says what broke; the work folder is kept to look at
        report.harness_errors.append(traceback.format_exc())
        report.faults = sorted(journal.faults, key=lambda f: f.at_s)
        report.notes = list(journal.notes)
    if report.ok and not options.keep and options.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        (work / "report.txt").write_text(report.render() + "\n")
        report.write_json(work / "report.json")
    return report


class ChaosRun:
    def __init__(
        self,
        options: ChaosOptions,
        work: Path,
        journal: Journal,
        report: Report,
        cleanup: ExitStack,
    ) -> None:
        self.options = options
        self.work = work
        self.journal = journal
        self.report = report
        self.cleanup = cleanup
        self.rng = random.Random(options.seed)
        self.home = work / "home"
        self.media_root = self.home / "media"
        self.smtp = RecordingSmtp()
        self.postgres: PostgresServer | None = None
        self.database_url = f"sqlite:///{self.home / 'reelwatch.db'}"
        self._db: Database | None = None

    def run(self) -> None:
        samples = make_samples(self.work / "samples")
        disk_problem = self._prepare_disk()
        self._start_smtp()
        self._start_database()
        up = UpInstance(self.home, self._settings(), self.journal)
        self.cleanup.callback(up.stop)
        users = self._create_users(up)
        up.start()
        self._phase("setup")
        injectors = self._injectors(up, disk_problem, samples, users)
        plans = plan_uploads(
            self.rng, samples, users, self.options.upload_count, self.options.minutes * 60 * 0.85
        )
        uploads = self._fault_phase(up, injectors, plans)
        self._phase("faults")
        up.wait_ready(120)
        self._drain(up)
        self._phase("drain")
        observed = self._observe(up, uploads, samples)
        up.stop()
        observed.leftover_processes = _wait_for_no_leftovers(up)
        self.report.results = check_all(observed)
        self._phase("check")
        self._fill_report(up, uploads, observed)

    # -- setup -------------------------------------------------------------------------

    def _prepare_disk(self) -> str | None:
        problem = faults.mount_small_filesystem(self.media_root, self.options.disk_mb)
        if problem is None:
            self.cleanup.callback(faults.unmount, self.media_root)
            self.cleanup.callback(self._keep_media_if_failed)  # runs before the unmount
        return problem

    def _keep_media_if_failed(self) -> None:
        """The tmpfs goes with the run: keep a copy of the store to look at a failure."""
        if not self.report.ok:
            shutil.copytree(
                self.media_root,
                self.work / "media-after-run",
                ignore=shutil.ignore_patterns(faults.FILLER_NAME),
                dirs_exist_ok=True,
            )

    def _start_smtp(self) -> None:
        self.smtp.start()
        self.cleanup.callback(self.smtp.stop)

    def _start_database(self) -> None:
        if self.options.database != "postgresql":
            return
        self.postgres = PostgresServer()
        self.cleanup.callback(self.postgres.destroy)
        self.postgres.start()
        self.database_url = self.postgres.create_database()

    def _settings(self) -> dict[str, str]:
        return {
            "REELWATCH_DATABASE_URL": self.database_url,
            "REELWATCH_SMTP_URL": self.smtp.url,
            "REELWATCH_WORKERS": str(self.options.workers),
            "REELWATCH_LEASE_SECONDS": str(self.options.lease_seconds),
            # Retries in seconds instead of minutes, so a short run sees them through.
            "REELWATCH_RETRY_BACKOFF_SCALE": "0.02",
            "REELWATCH_RENDITIONS": ",".join(str(rung) for rung in RENDITIONS),
            "REELWATCH_FFMPEG_THREADS": "1",
            "REELWATCH_MAX_UPLOAD_MB": "50",
            # The monitor's end-to-end probe uploads and deletes videos of its own, which
            # the checker could not tell from lost ones (tests/monitor covers the probe).
            "REELWATCH_PROBE_INTERVAL_SECONDS": "0",
        }

    def _create_users(self, up: UpInstance) -> list[User]:
        users = []
        for email in USERS:
            token = up.run_cli("users", "add", email).strip().splitlines()[-1]
            users.append(User(email, token))
        return users

    def _injectors(
        self, up: UpInstance, disk_problem: str | None, samples: list[Sample], users: list[User]
    ) -> list[faults.Injector]:
        long_video = next(s.path for s in samples if s.name == "long")
        injectors: list[faults.Injector] = [
            faults.KillWorker(up),
            faults.KillUp(up),
            faults.CrashMidUpload(up, long_video, users[0].token),
            faults.SmtpOutage(self.smtp),
        ]
        if self.postgres is not None:
            injectors.append(faults.PostgresRestart(self.postgres))
        else:
            injectors.append(faults.SqliteLock(self.home / "reelwatch.db"))
        if disk_problem is None:
            injectors.append(faults.DiskFull(self.media_root))
        else:
            self.report.not_injected["disk_full"] = disk_problem
            if _permissions_apply():
                injectors.append(faults.StoreUnwritable(self.media_root))
            else:
                self.report.not_injected["store_unwritable"] = "root ignores file permissions"
        return injectors

    # -- phases ------------------------------------------------------------------------

    def _fault_phase(
        self, up: UpInstance, injectors: list[faults.Injector], plans: list[Plan]
    ) -> UploadLog:
        faults_end = self.journal.elapsed() + self.options.minutes * 60
        scheduler = faults.FaultScheduler(injectors, self.rng, self.journal)
        uploader = Uploader(
            up.url,
            self.journal,
            plans,
            give_up_at_s=faults_end + UPLOAD_GRACE_S,
            seed=self.rng.getrandbits(32),
        )
        scheduler.start()
        uploader.start()
        try:
            time.sleep(max(0.0, faults_end - self.journal.elapsed()))  # the faults' time
        except BaseException:
            uploader.stop()
            raise
        finally:
            scheduler.stop()  # returns once every outage is repaired
        uploader.join()
        self.report.harness_errors += scheduler.errors
        return uploader.log

    def _drain(self, up: UpInstance) -> None:
        """Wait, with a deadline, until every video is terminal and every e-mail sent."""
        deadline = time.monotonic() + self.options.drain_timeout_s
        next_note = time.monotonic() + DRAIN_NOTE_EVERY_S
        waiting_for = "nothing yet"
        with _admin_client(up) as client:
            while time.monotonic() < deadline:
                waiting_for = self._still_waiting_for(client)
                if not waiting_for:
                    return
                if time.monotonic() > next_note:  # a slow drain says what it waits for
                    self.journal.note(f"draining, still waiting for {waiting_for}")
                    next_note += DRAIN_NOTE_EVERY_S
                time.sleep(1.0)
        timeout = self.options.drain_timeout_s
        self.journal.note(f"drain timed out after {timeout:.0f} s: {waiting_for}")

    def _still_waiting_for(self, client: httpx.Client) -> str:
        try:
            videos = list_videos(client)
        except httpx.HTTPError as exc:
            return f"the API ({exc})"
        busy = Counter(v["status"] for v in videos if v["status"] not in TERMINAL)
        if busy:
            return f"videos {dict(busy)}"
        unsent = [r for r in self._outbox() if r.channel == "email" and r.state in UNSENT]
        return f"e-mails {[(r.key, r.state, r.attempts) for r in unsent]}" if unsent else ""

    def _phase(self, name: str) -> None:
        so_far = sum(self.report.phases_s.values())
        self.report.phases_s[name] = round(self.journal.elapsed() - so_far, 1)

    # -- observation -------------------------------------------------------------------

    def _observe(self, up: UpInstance, uploads: UploadLog, samples: list[Sample]) -> Observed:
        with _admin_client(up) as client:
            videos = {v["id"]: v for v in list_videos(client)}
            owners = {
                video["id"]: email for email in USERS for video in list_videos(client, owner=email)
            }
            events = {
                video_id: client.get(f"/api/v1/videos/{video_id}/events").json()
                for video_id in videos
            }
        return Observed(
            videos=videos,
            owners=owners,
            events=events,
            accepted=list(uploads.accepted),
            refusals=list(uploads.refusals),
            given_up=list(uploads.abandoned),
            samples=samples,
            deliveries=self.smtp.deliveries(),
            outbox=self._outbox(),
            media_root=self.media_root,
            rendition_heights=RENDITIONS,
        )

    def _outbox(self) -> list[OutboxRow]:
        """The outbox table, read directly: what is still to be sent, and when it went."""
        if self._db is None:
            self._db = Database(self.database_url, pool_size=1)
            self.cleanup.callback(self._db.dispose)
        with self._db.read() as session:
            return [
                OutboxRow(
                    m.key,
                    m.channel,
                    m.recipient,
                    m.state,
                    m.attempts,
                    m.last_error,
                    m.created_at,
                    m.sent_at,
                )
                for m in session.scalars(select(OutboxMessage))
            ]

    def _fill_report(self, up: UpInstance, uploads: UploadLog, observed: Observed) -> None:
        report = self.report
        report.faults = sorted(self.journal.faults, key=lambda f: f.at_s)
        report.notes = list(self.journal.notes)
        report.figures = figures(up, uploads, observed)
        report.log_errors = summarize_log_errors(up.log)
        violating = set().union(*(r.video_ids for r in report.results))
        report.timelines = {v: observed.events.get(v, []) for v in sorted(violating)}


def figures(up: UpInstance, uploads: UploadLog, observed: Observed) -> dict[str, Any]:
    videos = list(observed.videos.values())
    acknowledged = {a.video_id for a in uploads.accepted}
    events = [e for timeline in observed.events.values() for e in timeline]
    failures = Counter(e["data"]["code"] for e in events if e["kind"] == "task_failed")
    mail = [d for d in observed.deliveries if d.accepted]
    return {
        "uploads accepted (201)": {
            "total": len(uploads.accepted),
            "good": sum(a.sample.good for a in uploads.accepted),
            "broken": sum(not a.sample.good for a in uploads.accepted),
        },
        "upload attempts refused": dict(uploads.refusal_reasons().most_common()),
        "uploads given up": len(uploads.abandoned),
        "videos accepted without a 201 reaching the client": len(
            set(observed.videos) - acknowledged
        ),
        "outcomes": dict(Counter(_outcome(v) for v in videos).most_common()),
        "task failures by code": dict(failures.most_common()),
        "engine recoveries": {
            kind: sum(e["kind"] == kind for e in events)
            for kind in ("retry_scheduled", "lease_expired", "task_released", "task_cancelled")
        },
        "e-mails accepted by SMTP": {
            "outcome": len({d.message_id for d in mail if ".outcome." in d.message_id}),
            "delay notices": len({d.message_id for d in mail if ".delayed@" in d.message_id}),
            "alerts and other": sum(not d.message_id.startswith("<email.video.") for d in mail),
            "same Message-ID re-sent": retransmissions(observed.deliveries),
            "refused during outages (451)": sum(not d.accepted for d in observed.deliveries),
        },
        "outcome e-mail delay after the outcome (s)": _mail_delays(observed),
        "timeline events earlier than the one before": _inversions(observed),
        "originals never recorded (crash before the commit; left to gc)": len(
            unrecorded_originals(observed)
        ),
        "reelwatch up starts": up.starts,
    }


def _mail_delays(observed: Observed) -> dict[str, float]:
    delays = sorted(
        (row.sent_at - row.created_at).total_seconds()
        for row in observed.outbox
        if row.sent_at and ":outcome:" in row.key
    )
    if not delays:
        return {}
    return {"median": round(delays[len(delays) // 2], 1), "max": round(delays[-1], 1)}


def _inversions(observed: Observed) -> dict[str, float]:
    gaps = [gap for events in observed.events.values() for gap in time_inversions(events)]
    return {"count": len(gaps), "worst (s)": round(max(gaps, default=0.0), 2)}


def _outcome(video: Video) -> str:
    if video["status"] == "failed" and video["error"]:
        return f"failed/{video['error']['code']}"
    return str(video["status"])


def list_videos(client: httpx.Client, owner: str | None = None) -> list[Video]:
    """Every video the admin sees (or one owner's), following the pagination cursor."""
    videos: list[Video] = []
    params: dict[str, str | int] = {"limit": 200}
    if owner:
        params["user"] = owner
    while True:
        response = client.get("/api/v1/videos", params=params)
        response.raise_for_status()
        page = response.json()
        videos += page["videos"]
        if not page["next_cursor"]:
            return videos
        params["cursor"] = page["next_cursor"]


def _admin_client(up: UpInstance) -> httpx.Client:
    return httpx.Client(
        base_url=up.url, timeout=30, headers={"Authorization": f"Bearer {up.admin_token()}"}
    )


def _wait_for_no_leftovers(up: UpInstance, timeout_s: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        leftovers = up.leftover_processes()
        if not leftovers or time.monotonic() > deadline:
            return leftovers
        time.sleep(0.2)


def _permissions_apply() -> bool:
    return os.geteuid() != 0
