"""The stand-in transcoder of simulation mode (``reelwatch.simulation``): the video
workflow's probe, transcode and thumbnail without ffmpeg, with injected failures.

Same task names, graph (``first`` makes the lowest rung, ``ladder`` the rest), outputs
and observer as the real handlers, so pages, events, the workflow graph and e-mails are
the real ones; only the media work is pretended, and there is no HLS (the page plays
the MP4).
The probe reads nothing but the upload's size (a 1280x720 video of about 2 Mbit/s);
each rendition is a copy of the original and the thumbnail a small grey JPEG, so
downloads and the player work for uploads that browsers can play. Finalize is real.
"""

from __future__ import annotations

import base64
import random
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from reelwatch import media
from reelwatch.config import Settings
from reelwatch.engine.spec import TaskContext
from reelwatch.failures import FailureCode, TaskFailure, failure_from_os_error
from reelwatch.media.renditions import written_atomically
from reelwatch.simulation import parse_failure_rates
from reelwatch.storage import ORIGINAL, THUMBNAIL, MediaStore, rendition_file
from reelwatch.videos.pipeline.tasks import (
    SPLIT,
    VideoTasks,
    _video_id,
    planned_part,
)

# What the stand-in probe makes of an upload: 720p at about 2 Mbit/s, 1 s to 1 h.
SIMULATED_SIZE = (1280, 720)
SIMULATED_BYTES_PER_S = 250_000
SIMULATED_DURATION_S = (1.0, 3600.0)
PROGRESS_EVERY_S = 0.1
# A failure found by probing the file; every other code is the transcoder's.
PROBE_CODES = frozenset(code for code in FailureCode if code.startswith("input_"))


class SimulationCancelled(Exception):
    """The task was cancelled (lease lost, shutdown) during its pretended work."""


class SimulatedTasks(VideoTasks):
    def __init__(self, settings: Settings, store: MediaStore) -> None:
        super().__init__(settings, store)
        self.failure_rates = parse_failure_rates(settings.simulate_failures)
        self.speed = settings.simulate_speed

    def probe(self, ctx: TaskContext) -> dict[str, Any]:
        with self.workspace(_video_id(ctx)) as folder:
            size_bytes = (folder / ORIGINAL).stat().st_size
        self._inject(PROBE_CODES)
        info = simulated_media_info(size_bytes)
        self.check_limits(info)
        return {**asdict(info), SPLIT: self.split_ladder(ctx)}

    def transcode(self, ctx: TaskContext) -> dict[str, Any]:
        video_id = _video_id(ctx)
        info, part = planned_part(ctx)
        plans, skipped = part.plans, part.skipped
        if not plans:  # as the real handler: nothing of the ladder left to make
            return {"renditions": [], "skipped": skipped, "simulated": True}
        self._work(ctx, info.duration_s * self.speed)
        self._inject(code for code in FailureCode if code not in PROBE_CODES)
        files = [rendition_file(plan.name) for plan in plans]
        with self.workspace(video_id) as folder:
            outputs = [folder / file for file in files]
            try:
                with written_atomically(*outputs) as temporaries:
                    for temporary in temporaries:
                        shutil.copyfile(folder / ORIGINAL, temporary)
                sizes = [output.stat().st_size for output in outputs]
            except OSError as exc:
                raise failure_from_os_error(exc, "writing the simulated renditions") from exc
            self.publish(video_id, folder, files)
        renditions = [
            {"rendition": plan.name, "width": plan.width, "height": plan.height, "size_bytes": size}
            for plan, size in zip(plans, sizes, strict=True)
        ]
        return {"renditions": renditions, "skipped": skipped, "simulated": True}

    def expected_files(self, renditions: list[str]) -> list[str]:
        return [THUMBNAIL, *(rendition_file(r) for r in renditions)]  # MP4 copies only

    def thumbnail(self, ctx: TaskContext) -> dict[str, Any]:
        video_id = _video_id(ctx)
        with self.workspace(video_id) as folder:
            destination = folder / THUMBNAIL
            try:
                with written_atomically(destination) as (temporary,):
                    temporary.write_bytes(PLACEHOLDER_JPEG)
            except OSError as exc:
                raise failure_from_os_error(exc, "writing the thumbnail") from exc
            self.publish(video_id, folder, [THUMBNAIL])
        return {"thumbnail_bytes": len(PLACEHOLDER_JPEG), "simulated": True}

    def _work(self, ctx: TaskContext, seconds: float) -> None:
        """Pretend to work for ``seconds``, reporting progress, until cancelled."""
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            ctx.report_progress(elapsed / seconds)
            if ctx.cancelled.wait(min(PROGRESS_EVERY_S, seconds - elapsed)):
                raise SimulationCancelled("cancelled during simulated work")
        ctx.report_progress(1.0)

    def _inject(self, codes: Iterable[FailureCode]) -> None:
        """Fail with the first of ``codes`` whose roll of the dice says so."""
        for code in codes:
            rate = self.failure_rates.get(code, 0.0)
            if rate and random.random() < rate:
                raise TaskFailure(code, f"simulated {code.value} (REELWATCH_SIMULATE_FAILURES)")


def simulated_media_info(size_bytes: int) -> media.MediaInfo:
    """Plausible metadata for an upload of ``size_bytes``, read from nothing else."""
    shortest, longest = SIMULATED_DURATION_S
    duration_s = round(min(max(size_bytes / SIMULATED_BYTES_PER_S, shortest), longest), 3)
    width, height = SIMULATED_SIZE
    frame_rate = 25.0
    return media.MediaInfo(
        duration_s=duration_s,
        width=width,
        height=height,
        rotation=0,
        video_codec="h264",
        has_audio=True,
        frame_rate=frame_rate,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        size_bytes=size_bytes,
        coded_width=width,
        coded_height=height,
        frame_count=round(duration_s * frame_rate),
    )


# A 320x180 grey JPEG (made once with ffmpeg): the stand-in has no ffmpeg to draw one.
PLACEHOLDER_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgUFBcUFxsbGxsbGyAe"
    "ICEhISAgICAhISEkJCQqKiokJCQhISQkKCgqKi4vLisrKisvLzIyMjw8OTlGRkhWVmf/xABLAAEB"
    "AAAAAAAAAAAAAAAAAAAABAEBAAAAAAAAAAAAAAAAAAAAABABAAAAAAAAAAAAAAAAAAAAABEBAAAA"
    "AAAAAAAAAAAAAAAAAP/AABEIALQBQAMBIgACEQADEQD/2gAMAwEAAhEDEQA/AKAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAf/2Q=="
)
