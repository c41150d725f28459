"""The "ping ffmpeg" workflow: one tiny encode pushed through the real queue and a real
worker, so the monitor knows that videos can be processed, not only that parts are up.

Its task jumps the queue (priority -10): it measures whether processing works, not how
long the backlog is (the queue rules watch that). In simulation mode the encode is
pretended (no ffmpeg), so the ping still proves that the queue and a worker work.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from reelwatch.config import Settings
from reelwatch.engine.spec import TaskContext, TaskSpec, WorkflowSpec, register_workflow
from reelwatch.failures import RETRY_POLICY
from reelwatch.media.ffmpeg import FfmpegLimits, media_url, run_ffmpeg
from reelwatch.storage import MediaStore

PING_WORKFLOW = "ping"
PING_TIMEOUT_S = 60.0


def build_ping_workflow(settings: Settings, store: MediaStore) -> WorkflowSpec:
    limits = FfmpegLimits(
        stall_timeout_s=30, timeout_s=PING_TIMEOUT_S, threads=1, memory_mb=settings.ffmpeg_memory_mb
    )

    def encode(ctx: TaskContext) -> dict[str, Any]:
        output = store.temporary_folder() / f".ping-{uuid.uuid4().hex}.mp4"
        source = "testsrc=duration=0.5:size=64x64:rate=10"
        codec = ["-c:v", "libx264", "-preset", "ultrafast", "-f", "mp4"]
        started = time.monotonic()
        try:
            run_ffmpeg(
                ["-f", "lavfi", "-i", source, *codec, media_url(output)],
                duration_s=0.5,
                limits=limits,
                cancel=ctx.cancelled,
            )
            size = output.stat().st_size
        finally:
            output.unlink(missing_ok=True)
        return {"bytes": size, "encode_s": round(time.monotonic() - started, 3)}

    def pretend(ctx: TaskContext) -> dict[str, Any]:
        return {"bytes": 0, "encode_s": 0.0, "simulated": True}

    return WorkflowSpec(
        PING_WORKFLOW,
        (
            TaskSpec(
                "ffmpeg",
                pretend if settings.simulate else encode,
                timeout_s=PING_TIMEOUT_S,
                priority=-10,
            ),
        ),
        retry=RETRY_POLICY,
    )


def register_ping_workflow(settings: Settings, store: MediaStore) -> WorkflowSpec:
    return register_workflow(build_ping_workflow(settings, store))
