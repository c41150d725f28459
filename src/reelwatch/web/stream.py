"""Live updates by Server-Sent Events.

Each stream polls the database (once a second, in a worker thread) and sends only what
changed since its last message: ``video`` events (status and progress of one video, with
its card's HTML when the status changed) and ``section`` events (the new HTML of one
part of a page, by element id). Rendering stays on the server, in the same partial
templates the pages include, so a live page and a reloaded one look the same.

A stream ends after a few minutes and the browser's EventSource reconnects by itself,
so no connection outlives a deploy for long; the first poll of every connection sends
the current state, so nothing is missed in between.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from reelwatch.api.deps import Services, ServicesDep
from reelwatch.api.session import csrf_token
from reelwatch.api.validation import PathId
from reelwatch.db.models import Task, User, Video
from reelwatch.engine import states
from reelwatch.videos import service
from reelwatch.videos.status import VideoStatus
from reelwatch.web.dashboard import dashboard_data
from reelwatch.web.deps import AdminUserDep, PageError, PageUserDep
from reelwatch.web.templating import digest, render_fragment
from reelwatch.web.views import (
    owner_emails,
    player_settings,
    status_explanation,
    step_words,
    video_detail,
)

router = APIRouter(prefix="/stream", include_in_schema=False)

STREAM_LIFETIME_S = 300.0
KEEPALIVE_S = 15.0
LIVE_VIDEOS = 50  # the newest videos a list stream follows
FINAL_STATUSES = (VideoStatus.READY, VideoStatus.FAILED)

Poll = Callable[[], list[str]]


class StreamEnded(Exception):
    """The thing followed is gone: send the last messages and close."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__()
        self.messages = messages


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def event_stream(poll: Poll, interval_s: float = 1.0) -> StreamingResponse:
    return StreamingResponse(
        _messages(poll, interval_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _messages(poll: Poll, interval_s: float) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"  # reconnect after 2 s
    started = last_sent = time.monotonic()
    while time.monotonic() - started < STREAM_LIFETIME_S:
        try:
            messages = await run_in_threadpool(poll)
        except StreamEnded as end:
            for message in end.messages:
                yield message
            return
        if messages:
            last_sent = time.monotonic()
            for message in messages:
                yield message
        elif time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(interval_s)


@router.get("/videos")
def video_list_stream(svc: ServicesDep, user: PageUserDep) -> StreamingResponse:
    """The status and progress of the user's newest videos (every video, for admins)."""
    return event_stream(VideoListFeed(svc, user))


@router.get("/videos/{video_id}")
def video_stream(
    request: Request, svc: ServicesDep, user: PageUserDep, video_id: PathId
) -> StreamingResponse:
    """One video's page: status, progress, summary, timeline and workflow graph."""
    with svc.db.read() as session:
        video_detail(session, user, video_id)  # 404 before streaming anything
    return event_stream(VideoFeed(svc, user, video_id, csrf_token(request)))


@router.get("/admin")
def admin_stream(svc: ServicesDep, user: AdminUserDep) -> StreamingResponse:
    return event_stream(AdminFeed(svc), interval_s=3.0)


def video_update(video: Video, html: str | None, step: str | None = None) -> dict[str, Any]:
    return {
        "id": video.id,
        "status": video.status,
        "progress": round(video.progress, 4),
        "explanation": status_explanation(video.status),
        "step": step,
        "html": html,
    }


def running_steps(session: Session, videos: list[Video]) -> dict[str, str]:
    """The step each video is on now, in plain words, by video id (the upload page
    shows it while processing)."""
    workflows = {v.workflow_id: v.id for v in videos if v.workflow_id is not None}
    if not workflows:
        return {}
    rows = session.execute(
        select(Task.workflow_id, Task.name)
        .where(Task.workflow_id.in_(list(workflows)), Task.state == states.RUNNING)
        .order_by(Task.id)
    )
    steps: dict[str, list[str]] = {}
    for workflow_id, name in rows:
        steps.setdefault(workflows[workflow_id], []).append(step_words(name))
    return {video_id: " and ".join(words) for video_id, words in steps.items()}


class VideoListFeed:
    def __init__(self, svc: Services, user: User) -> None:
        self.svc, self.user = svc, user
        self.sent: dict[str, tuple[str, float, str | None]] = {}

    def __call__(self) -> list[str]:
        with self.svc.db.read() as session:
            videos = service.list_videos(session, self.user, limit=LIVE_VIDEOS).videos
            unfinished = [v for v in videos if v.status not in FINAL_STATUSES]
            steps = running_steps(session, unfinished)
            state = {v.id: (v.status, v.progress, steps.get(v.id)) for v in videos}
            changed = [v for v in videos if self.sent.get(v.id) != state[v.id]]
            owners = owner_emails(session, changed) if self.user.is_admin else {}
            messages = [
                sse("video", video_update(v, self._card(v, owners), steps.get(v.id)))
                for v in changed
            ]
        self.sent.update((v.id, state[v.id]) for v in changed)
        return messages

    def _card(self, video: Video, owners: dict[int, str]) -> str | None:
        """The card's HTML when it looks different, not only its progress bar."""
        previous = self.sent.get(video.id)
        if previous is not None and previous[0] == video.status:
            return None
        context = {"video": video, "owner": owners.get(video.user_id)}
        return render_fragment("_video_card.html.j2", context)


class VideoFeed:
    SECTIONS = ("summary", "player", "timeline", "graph")

    def __init__(self, svc: Services, user: User, video_id: str, csrf: str) -> None:
        self.svc, self.user, self.video_id, self.csrf = svc, user, video_id, csrf
        self.sent: dict[str, object] = {}

    def __call__(self) -> list[str]:
        with self.svc.db.read() as session:
            try:
                detail = video_detail(session, self.user, self.video_id)
            except PageError:
                raise StreamEnded([sse("gone", {"id": self.video_id})]) from None
            context = {
                **detail.context(),
                "explanation": status_explanation(detail.video.status),
                "csrf_token": self.csrf,
                "user": self.user,
                **player_settings(self.svc.settings),
            }
            current: dict[str, object] = {
                name: render_fragment(f"_{name}.html.j2", context) for name in self.SECTIONS
            }
            current["video"] = (detail.video.status, detail.video.progress)
            messages = [
                section_update(name, str(current[name]))
                for name in self.SECTIONS
                if self.sent.get(name) != current[name]
            ]
            if self.sent.get("video") != current["video"]:
                messages.append(sse("video", video_update(detail.video, None)))
        self.sent = current
        return messages


class AdminFeed:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.sent = ""

    def __call__(self) -> list[str]:
        with self.svc.db.read() as session:
            data = dashboard_data(session, self.svc.settings)
            html = render_fragment("admin/_overview.html.j2", data)
        if html == self.sent:
            return []
        self.sent = html
        return [section_update("overview", html)]


def section_update(element_id: str, html: str) -> str:
    """New HTML for the page element ``element_id``; the page skips it when its
    ``data-key`` (the same digest, rendered with the page) shows it has it already."""
    return sse("section", {"id": element_id, "key": digest(html), "html": html})
