"""The invariant checker: what must be true once the faults stop and the queue drains.

It reads what a user and an operator can see: the public API (videos and their
timelines), the media store on disk, the mail the SMTP server received, and the outbox
table. Each invariant reports how many things it checked and, when violated, which
videos and why, so the report can show their timelines.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from chaos.media import Sample
from chaos.smtp import Delivery
from chaos.uploader import Accepted, Refusal
from reelwatch.storage.local import sha256_of

TERMINAL = frozenset({"ready", "failed"})
WORKFLOW_ENDS = frozenset({"workflow_succeeded", "workflow_failed"})
READY_SUBJECT = "Your video is ready"
FAILED_SUBJECT = "We could not process your video"
# Message-IDs derived from the outbox keys email:video:<id>:outcome:run<n> and :delayed.
_MAIL_ID = re.compile(r"<email\.video\.([0-9a-f]{32})\.(outcome\.run(\d+)|delayed)@reelwatch>")
_VIDEO_FILES = re.compile(r"original|upload\.json|\d+p\.mp4|thumbnail\.jpg|hls")
# What accepting an upload writes before its row: the manifest (under a temporary name
# first), then the original.
_UNRECORDED_FILES = re.compile(r"original|upload\.json|\.upload\.json\.[0-9a-f]+\.tmp")
_TEMPORARY = re.compile(r"(^\.)|(\.tmp$)|(\.part$)")

Video = dict[str, Any]
TimelineEvent = dict[str, Any]


@dataclass(frozen=True)
class OutboxRow:
    key: str
    channel: str
    recipient: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass
class Observed:
    """Everything the checks read, gathered once after the drain."""

    videos: dict[str, Video]
    owners: dict[str, str]  # video id -> owner e-mail
    events: dict[str, list[TimelineEvent]]
    accepted: list[Accepted]
    samples: list[Sample]
    deliveries: list[Delivery]
    outbox: list[OutboxRow]
    media_root: Path
    rendition_heights: tuple[int, ...]
    refusals: list[Refusal] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)  # samples never accepted in time
    leftover_processes: list[str] = field(default_factory=list)

    def sample_of(self, video: Video) -> Sample | None:
        return next((s for s in self.samples if s.sha256 == video["sha256"]), None)


@dataclass
class Result:
    name: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)
    video_ids: set[str] = field(default_factory=set)

    @property
    def held(self) -> bool:
        return not self.violations

    def violated(self, problem: str, video_id: str | None = None) -> None:
        self.violations.append(f"{video_id}: {problem}" if video_id else problem)
        if video_id:
            self.video_ids.add(video_id)


def check_all(observed: Observed) -> list[Result]:
    return [
        uploads_accepted_again(observed),
        refusals_are_explained(observed),
        accepted_videos_are_kept(observed),
        correct_terminal_states(observed),
        originals_intact(observed),
        one_outcome_email_per_video(observed),
        timelines_consistent(observed),
        no_temporary_files(observed),
        no_process_left_behind(observed),
    ]


# -- uploads ---------------------------------------------------------------------------


def uploads_accepted_again(observed: Observed) -> Result:
    result = Result("uploads are accepted again within a minute of the faults ending")
    result.checked = len(observed.accepted) + len(observed.given_up)
    for sample in observed.given_up:
        result.violated(f"an upload of {sample} was refused until the harness gave up")
    return result


def refusals_are_explained(observed: Observed) -> Result:
    result = Result("every refused upload got a JSON error (SPEC 4), never a stack trace")
    for refusal in observed.refusals:
        if refusal.status is None:
            continue  # no HTTP answer at all: the server was down
        result.checked += 1
        if not refusal.json_error:
            result.violated(f"t+{refusal.at_s}s {refusal.sample}: {refusal.status} without one")
    return result


# -- nothing accepted is lost ----------------------------------------------------------


def accepted_videos_are_kept(observed: Observed) -> Result:
    result = Result("every upload answered 201 is a video the API still knows")
    for accepted in observed.accepted:
        result.checked += 1
        video = observed.videos.get(accepted.video_id)
        if video is None:
            result.violated("answered 201 but unknown to the API", accepted.video_id)
        elif observed.owners.get(accepted.video_id) != accepted.user.email:
            problem = f"uploaded by {accepted.user.email} but listed under someone else"
            result.violated(problem, accepted.video_id)
    return result


# -- the right outcome -----------------------------------------------------------------


def correct_terminal_states(observed: Observed) -> Result:
    result = Result("every accepted video reached its correct terminal state")
    for video_id, video in observed.videos.items():
        result.checked += 1
        sample = observed.sample_of(video)
        if sample is None:
            result.violated("its content matches no uploaded sample", video_id)
            continue
        for problem in _outcome_problems(video, sample, observed):
            result.violated(problem, video_id)
    return result


def _outcome_problems(video: Video, sample: Sample, observed: Observed) -> list[str]:
    status = video["status"]
    if status not in TERMINAL:
        return [f"still {status} after the drain ({sample.name})"]
    if status != sample.expected_status:
        error = video["error"] or {}
        said = f"{error.get('code')}: {error.get('message')}"
        return [f"{status} ({said}), but {sample.name} must end {sample.expected_status}"]
    if status == "failed":
        error = video["error"] or {}
        if error.get("code") != sample.expected_code:
            return [f"failed with {error.get('code')}, expected {sample.expected_code}"]
        if error.get("recoverable"):
            return ["failed with an error marked recoverable"]
        return []
    return _ready_problems(video, observed)


def _ready_problems(video: Video, observed: Observed) -> list[str]:
    problems = []
    expected = expected_renditions(video["width"], video["height"], observed.rendition_heights)
    names = sorted(r["name"] for r in video["renditions"])
    if names != sorted(expected):
        problems.append(f"renditions {names}, expected {sorted(expected)}")
    folder = observed.media_root / "videos" / video["id"]
    for rendition in video["renditions"]:
        path = folder / f"{rendition['name']}.mp4"
        if not path.is_file() or path.stat().st_size != rendition["size_bytes"]:
            problems.append(f"rendition file {path.name} missing or not the recorded size")
    if not video["thumbnail_url"] or not (folder / "thumbnail.jpg").is_file():
        problems.append("no thumbnail")
    if video["progress"] != 1.0:
        problems.append(f"ready with progress {video['progress']}")
    return problems


def expected_renditions(width: int, height: int, rungs: Iterable[int]) -> list[str]:
    """The ladder's rungs that fit the source's short side; the lowest is always made."""
    ladder = sorted(rungs)
    kept = [rung for rung in ladder if min(width, height) >= rung]
    return [f"{rung}p" for rung in (kept or ladder[:1])]


# -- originals -------------------------------------------------------------------------


def originals_intact(observed: Observed) -> Result:
    result = Result("no original was lost or corrupted (SHA-256 of every stored original)")
    for video_id, video in observed.videos.items():
        result.checked += 1
        original = observed.media_root / "videos" / video_id / "original"
        sample = observed.sample_of(video)
        if not original.is_file():
            result.violated("the original is missing from the store", video_id)
        elif sha256_of(original) != video["sha256"]:
            result.violated("the stored original's SHA-256 differs from the upload's", video_id)
        elif sample is None or video["size_bytes"] != sample.size_bytes:
            result.violated("the recorded size differs from the uploaded file's", video_id)
    return result


# -- e-mail ----------------------------------------------------------------------------


def one_outcome_email_per_video(observed: Observed) -> Result:
    result = Result(
        "each user got exactly one outcome e-mail per video (and at most one delay notice)"
    )
    mail = _mail_by_video(observed.deliveries)
    for video_id, video in observed.videos.items():
        result.checked += 1
        owner = observed.owners.get(video_id, "?")
        for problem in _mail_problems(video, owner, mail.pop(video_id, [])):
            result.violated(problem, video_id)
    for video_id in mail:
        result.violated("e-mail about a video the API does not know", video_id)
    for row in observed.outbox:
        if row.channel == "email" and row.state != "sent":
            result.violated(f"outbox e-mail {row.key} is {row.state} ({row.last_error})")
        if row.state == "rejected":
            result.violated(f"outbox message {row.key} was rejected: {row.last_error}")
    return result


def _mail_by_video(deliveries: list[Delivery]) -> dict[str, list[Delivery]]:
    by_video: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        match = _MAIL_ID.fullmatch(delivery.message_id)
        if match and delivery.accepted:
            by_video[match.group(1)].append(delivery)
    return by_video


def _mail_problems(video: Video, owner: str, mails: list[Delivery]) -> list[str]:
    outcome = {m.message_id: m for m in mails if ".outcome." in m.message_id}
    delayed = {m.message_id for m in mails if ".delayed@" in m.message_id}
    problems = []
    if len(outcome) != 1:
        problems.append(f"{len(outcome)} distinct outcome e-mails, expected exactly one")
    subject = READY_SUBJECT if video["status"] == "ready" else FAILED_SUBJECT
    for mail in outcome.values():
        if not mail.subject.startswith(subject):
            problems.append(f"outcome e-mail {mail.subject!r} for a {video['status']} video")
        if mail.recipients != (owner,):
            problems.append(f"outcome e-mail went to {mail.recipients}, not the owner {owner}")
    if len(delayed) > 1:
        problems.append(f"{len(delayed)} distinct delay notices, expected at most one")
    return problems


def retransmissions(deliveries: list[Delivery]) -> int:
    """Accepted copies of a Message-ID beyond the first: the same e-mail sent again
    (a dispatcher died between the server's 250 and recording it), not a new e-mail."""
    counts = Counter(d.message_id for d in deliveries if d.accepted and d.message_id)
    return sum(count - 1 for count in counts.values())


# -- timelines -------------------------------------------------------------------------


def timelines_consistent(observed: Observed) -> Result:
    result = Result("the timeline of every video is consistent with its state")
    for video_id, video in observed.videos.items():
        result.checked += 1
        owner = observed.owners.get(video_id, "?")
        for problem in timeline_problems(video, observed.events.get(video_id, []), owner):
            result.violated(problem, video_id)
    return result


def timeline_problems(video: Video, events: list[TimelineEvent], owner: str) -> list[str]:
    if not events or events[0]["kind"] != "workflow_started":
        return ["the timeline does not begin with workflow_started"]
    problems = _origin_problems(video, events[0])
    problems += _terminal_problems(video, events)
    tasks = list(events[0]["data"].get("tasks", []))
    problems += TaskReplay(tasks).replay(events, video["status"])
    started = [e["attempt"] for e in events if e["kind"] == "task_started"]
    if started and video["attempts"] != max(started):
        problems.append(f"attempts is {video['attempts']}, the timeline's highest {max(started)}")
    problems += _notification_problems(video, events, owner)
    return problems


def _origin_problems(video: Video, first: TimelineEvent) -> list[str]:
    upload = first["data"].get("upload", {})
    if upload.get("sha256") != video["sha256"] or upload.get("size_bytes") != video["size_bytes"]:
        return ["workflow_started does not carry the upload's size and SHA-256"]
    return []


def _terminal_problems(video: Video, events: list[TimelineEvent]) -> list[str]:
    ends = [i for i, e in enumerate(events) if e["kind"] in WORKFLOW_ENDS]
    expected = {"ready": "workflow_succeeded", "failed": "workflow_failed"}.get(video["status"])
    kinds = [events[i]["kind"] for i in ends]
    if kinds != [expected]:
        return [f"terminal events {kinds} for a {video['status']} video"]
    end = events[ends[0]]
    later = [e["kind"] for e in events[ends[0] + 1 :] if e["kind"] != "notification_queued"]
    problems = [f"events after {end['kind']}: {later}"] if later else []
    error = video["error"] or {}
    if video["status"] == "failed" and end["data"].get("code") != error.get("code"):
        problems.append(f"workflow_failed says {end['data'].get('code')}, the video {error}")
    return problems


def _notification_problems(video: Video, events: list[TimelineEvent], owner: str) -> list[str]:
    subject = READY_SUBJECT if video["status"] == "ready" else FAILED_SUBJECT
    queued = [
        event
        for event in events
        if event["kind"] == "notification_queued"
        and event["data"].get("subject", "").startswith(subject)
    ]
    if len(queued) != 1 or queued[0]["data"].get("to") != owner:
        return [f"{len(queued)} outcome notifications queued on the timeline, expected one"]
    return []


def time_inversions(events: list[TimelineEvent]) -> list[float]:
    """Seconds by which an event's time is earlier than its predecessor's in timeline
    order (commit order): reported as a figure, not an invariant."""
    times = [datetime.fromisoformat(e["at"].removesuffix("Z")) for e in events]
    return [(a - b).total_seconds() for a, b in pairwise(times) if b < a]


class TaskReplay:
    """Replays the task events against the engine's state machine: every start was
    queued, after its dependencies succeeded, with the next attempt number; every
    attempt ends once; at the end no task is left unfinished."""

    def __init__(self, tasks: list[str]) -> None:
        self.tasks = tasks
        self.state = dict.fromkeys(tasks, "waiting")
        self.attempt = dict.fromkeys(tasks, 0)
        self.reuse_attempt = dict.fromkeys(tasks, False)
        self.problems: list[str] = []

    def replay(self, events: list[TimelineEvent], status: str) -> list[str]:
        for event in events:
            name = event["task"]
            if name is None:
                continue
            if name not in self.state:
                self.problems.append(f"event {event['kind']} for unknown task {name}")
                continue
            self._apply(event, name)
        self._check_end(status)
        return self.problems

    def dependencies(self, name: str) -> list[str]:
        if name == "probe":
            return []
        if name == "finalize":
            return [t for t in self.tasks if t != "finalize"]
        return ["probe"]

    def _apply(self, event: TimelineEvent, name: str) -> None:
        kind, state, attempt = event["kind"], self.state[name], event["attempt"]
        allowed = _TRANSITIONS.get(kind)
        if allowed is None:
            return
        sources, target = allowed
        if state not in sources:
            self.problems.append(f"{kind} of {name}#{attempt} while it was {state}")
        if kind == "task_started":
            self._check_start(name, attempt)
        elif kind not in ("task_queued", "task_cancelled") and attempt != self.attempt[name]:
            self.problems.append(f"{kind} of {name}#{attempt} during attempt {self.attempt[name]}")
        self.reuse_attempt[name] = kind == "task_released"
        if target is not None:
            self.state[name] = target

    def _check_start(self, name: str, attempt: int) -> None:
        expected = self.attempt[name] + (0 if self.reuse_attempt[name] else 1)
        if attempt != expected:
            self.problems.append(f"{name} started as attempt {attempt}, expected {expected}")
        waiting_for = [d for d in self.dependencies(name) if self.state[d] != "succeeded"]
        if waiting_for:
            self.problems.append(f"{name} started before {waiting_for} succeeded")
        self.attempt[name] = attempt

    def _check_end(self, status: str) -> None:
        finished = {"succeeded"} if status == "ready" else {"succeeded", "failed", "cancelled"}
        unfinished = {n: s for n, s in self.state.items() if s not in finished}
        if unfinished:
            self.problems.append(f"tasks left {unfinished} in a {status} video")
        if status == "failed" and "failed" not in self.state.values():
            self.problems.append("a failed video without a failed task")


# event kind -> (states it may happen in, state after it; None: unchanged)
_TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "task_queued": (frozenset({"waiting"}), "queued"),
    "task_started": (frozenset({"queued"}), "running"),
    "task_progress": (frozenset({"running"}), None),
    "lease_expired": (frozenset({"running"}), None),
    "task_succeeded": (frozenset({"running"}), "succeeded"),
    "task_failed": (frozenset({"running"}), "failed"),
    "retry_scheduled": (frozenset({"failed"}), "queued"),
    "task_released": (frozenset({"running"}), "queued"),
    "task_cancelled": (frozenset({"waiting", "queued", "running"}), "cancelled"),
}


# -- leftovers -------------------------------------------------------------------------


def no_temporary_files(observed: Observed) -> Result:
    result = Result("no temporary or orphaned files are left in the media store")
    root = observed.media_root
    for path in sorted(root.rglob("*")):
        result.checked += 1
        relative = path.relative_to(root)
        if _in_unrecorded_folder(relative, observed, path):
            continue  # counted by unrecorded_originals
        if path.is_file() and _TEMPORARY.search(path.name):
            result.violated(f"temporary file {relative} ({path.stat().st_size} bytes)")
        elif path.is_file() and relative.parts[0] == "incoming":
            result.violated(f"file left in incoming: {relative}")
        elif len(relative.parts) == 2 and relative.parts[0] == "videos" and path.is_dir():
            if relative.parts[1] not in observed.videos and not _unrecorded_original(path):
                result.violated(f"folder of no known video: {relative} {_listing(path)}")
        elif len(relative.parts) == 3 and not _VIDEO_FILES.fullmatch(path.name):
            result.violated(f"unexpected file {relative}")
    return result


def unrecorded_originals(observed: Observed) -> list[str]:
    """Folders holding just the original of an upload that was never recorded (and its
    manifest, or part of it): the server died between storing it and committing its row,
    so no 201 was sent and nothing was promised. ``reelwatch gc`` removes them (after its
    grace hour, or with a manifest ``REELWATCH_ORPHAN_RETENTION_DAYS`` later, in case the
    row was lost after a 201); the report counts them rather than calling them a
    violation."""
    videos = observed.media_root / "videos"
    folders = sorted(videos.iterdir()) if videos.is_dir() else []
    return [
        folder.name
        for folder in folders
        if folder.name not in observed.videos and _unrecorded_original(folder)
    ]


def _in_unrecorded_folder(relative: Path, observed: Observed, path: Path) -> bool:
    return (
        len(relative.parts) == 3
        and relative.parts[0] == "videos"
        and relative.parts[1] not in observed.videos
        and _unrecorded_original(path.parent)
    )


def _unrecorded_original(folder: Path) -> bool:
    listing = _listing(folder)
    return bool(listing) and all(_UNRECORDED_FILES.fullmatch(name) for name in listing)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def no_process_left_behind(observed: Observed) -> Result:
    result = Result("no process outlived reelwatch up (workers, ffmpeg)")
    result.checked = 1
    for process in observed.leftover_processes:
        result.violated(f"still running: {process}")
    return result
