"""The end-to-end probe: what a user does, done by the monitor every few minutes.

It uploads a small generated video through the public HTTP API as the probe user, waits
for ``ready``, downloads a rendition, waits for the outcome e-mail to be accepted by the
SMTP server, then deletes the video. Every step has a deadline; the result is the
``e2e_probe`` check, whose value is the time the whole round trip took.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from reelwatch.accounts import rotate_token
from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import OutboxMessage
from reelwatch.insights.checks import CRITICAL, E2E_PROBE_CHECK, OK, CheckResult, record_check
from reelwatch.media.ffmpeg import FfmpegLimits, media_url, run_ffmpeg
from reelwatch.notify import outbox

log = logging.getLogger(__name__)

CHECK_NAME = E2E_PROBE_CHECK
POLL_S = 0.5


def _generate_clip(path: Path) -> None:
    """A 2 s test pattern, small and quick to process."""
    source = ["-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10"]
    codec = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4"]
    run_ffmpeg(
        [*source, *codec, media_url(path)],
        duration_s=2,
        limits=FfmpegLimits(stall_timeout_s=30, timeout_s=60, threads=1),
    )


class ProbeFailed(Exception):
    """A step of the probe did not work; the message says which and why."""


class EndToEndProbe:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        # Simulation mode reads no media: any bytes will do, but not in the real clip's place.
        name = "probe-simulated.mp4" if settings.simulate else "probe.mp4"
        self.clip = settings.home / "probe" / name

    def run(self, stop: threading.Event) -> CheckResult:
        """One probe; its result is recorded as the ``e2e_probe`` check and returned."""
        started = time.monotonic()
        try:
            steps = self._run_steps(stop, deadline=started + self.settings.probe_timeout_seconds)
            elapsed = time.monotonic() - started
            result = CheckResult(OK, f"{steps} in {elapsed:.1f} s", round(elapsed, 2))
        except (ProbeFailed, httpx.HTTPError) as exc:
            elapsed = time.monotonic() - started
            result = CheckResult(CRITICAL, f"failed after {elapsed:.0f} s: {exc}", elapsed)
        with self.db.write() as session:
            record_check(session, CHECK_NAME, result, utcnow())
        return result

    def _run_steps(self, stop: threading.Event, *, deadline: float) -> str:
        self._ensure_clip()
        with self.db.write() as session:
            token = rotate_token(session, self.settings.probe_email)
        with httpx.Client(
            base_url=self.settings.resolved_public_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            # Renditions in a bucket answer with a redirect to it; httpx drops the token
            # when it follows one to another host.
            follow_redirects=True,
        ) as client:
            video = self._upload(client)
            try:
                ready = self._wait_ready(client, video["id"], stop, deadline)
                size = self._download(client, ready)
                self._wait_email_accepted(video["id"], stop, deadline)
            finally:
                client.delete(f"/api/v1/videos/{video['id']}")
        return f"upload, ready, rendition of {size} bytes, e-mail accepted"

    def _ensure_clip(self) -> None:
        if self.clip.exists():
            return
        self.clip.parent.mkdir(parents=True, exist_ok=True)
        partial = self.clip.with_suffix(".partial")
        if self.settings.simulate:
            partial.write_bytes(b"reelwatch simulated probe clip\n" * 1024)
        else:
            _generate_clip(partial)
        partial.rename(self.clip)

    def _upload(self, client: httpx.Client) -> dict[str, Any]:
        with self.clip.open("rb") as handle:
            response = client.post(
                "/api/v1/videos",
                files={"file": ("probe.mp4", handle, "video/mp4")},
                data={"title": "reelwatch end-to-end probe"},
            )
        if response.status_code != 201:
            raise ProbeFailed(f"upload answered {response.status_code}: {response.text[:200]}")
        return dict(response.json())

    def _wait_ready(
        self, client: httpx.Client, video_id: str, stop: threading.Event, deadline: float
    ) -> dict[str, Any]:
        status = "unknown"
        while time.monotonic() < deadline and not stop.is_set():
            video = client.get(f"/api/v1/videos/{video_id}").raise_for_status().json()
            status = video["status"]
            if status == "ready":
                return dict(video)
            if status == "failed":
                raise ProbeFailed(f"the probe video failed: {video['error']}")
            stop.wait(POLL_S)
        raise ProbeFailed(f"the probe video was still {status} at the deadline")

    def _download(self, client: httpx.Client, video: dict[str, Any]) -> int:
        if not video["renditions"]:
            raise ProbeFailed("the probe video is ready without renditions")
        response = client.get(video["renditions"][0]["url"]).raise_for_status()
        if not response.content:
            raise ProbeFailed("the rendition downloaded empty")
        return len(response.content)

    def _wait_email_accepted(self, video_id: str, stop: threading.Event, deadline: float) -> None:
        state = "not written"
        while time.monotonic() < deadline and not stop.is_set():
            with self.db.read() as session:
                states = list(
                    session.scalars(
                        select(OutboxMessage.state).where(OutboxMessage.video_id == video_id)
                    )
                )
            if outbox.SENT in states:
                return
            if states:
                state = states[-1]
            stop.wait(POLL_S)
        raise ProbeFailed(f"the outcome e-mail was {state} at the deadline, not accepted by SMTP")
