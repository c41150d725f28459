"""The video workflow's graph, built from the configured rendition ladder; its handlers
are the real ones, or the stand-in transcoder's in simulation mode (same graph)."""

from __future__ import annotations

from reelwatch.config import Settings
from reelwatch.engine.spec import TaskSpec, WorkflowSpec, register_workflow
from reelwatch.failures import RETRY_POLICY
from reelwatch.storage import MediaStore
from reelwatch.videos.pipeline.observer import VideoObserver
from reelwatch.videos.pipeline.simulated import SimulatedTasks
from reelwatch.videos.pipeline.tasks import VideoTasks

VIDEO_WORKFLOW = "video"


def build_video_workflow(settings: Settings, store: MediaStore) -> WorkflowSpec:
    """probe → first, ladder, thumbnail → finalize.

    ``first`` makes the first playable rendition (the source itself by stream copy when
    browsers play it as it is, else the lowest rung) and ``ladder`` the rest from one
    decode, side by side on two workers; both are ``transcode`` tasks, the kind a
    workflow planned with one ``transcode`` for the whole ladder still runs."""
    tasks = (SimulatedTasks if settings.simulate else VideoTasks)(settings, store)
    queue = settings.queue_for
    rungs = list(settings.rendition_heights)

    def transcode(part: str, weight: float) -> TaskSpec:
        return TaskSpec(
            part,
            tasks.transcode,
            kind="transcode",
            params={"rungs": rungs, "part": part},
            depends_on=("probe",),
            timeout_s=settings.ffmpeg_timeout_seconds,
            weight=weight,
            queue=queue("transcode"),
        )

    return WorkflowSpec(
        VIDEO_WORKFLOW,
        (
            TaskSpec("probe", tasks.probe, timeout_s=300, weight=0.5, queue=queue("probe")),
            transcode("first", _encoding_weight(rungs[0])),
            transcode("ladder", sum(_encoding_weight(rung) for rung in rungs[1:])),
            TaskSpec(
                "thumbnail",
                tasks.thumbnail,
                depends_on=("probe",),
                timeout_s=300,
                weight=0.5,
                queue=queue("thumbnail"),
            ),
            TaskSpec(
                "finalize",
                tasks.finalize,
                depends_on=("first", "ladder", "thumbnail"),
                timeout_s=300,
                weight=0.5,
                queue=queue("finalize"),
            ),
        ),
        observer=VideoObserver(settings),
        retry=RETRY_POLICY,
    )


def _encoding_weight(rung: int) -> float:
    """A rendition's share of the progress: encoding cost grows with the pixel count."""
    return 4.0 * (rung / 480) ** 2


def register_video_workflow(settings: Settings, store: MediaStore) -> WorkflowSpec:
    return register_workflow(build_video_workflow(settings, store))
