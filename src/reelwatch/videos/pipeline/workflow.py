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
    """probe → transcode (every rung, one decode), thumbnail → finalize."""
    tasks = (SimulatedTasks if settings.simulate else VideoTasks)(settings, store)
    queue = settings.queue_for
    rungs = list(settings.rendition_heights)
    return WorkflowSpec(
        VIDEO_WORKFLOW,
        (
            TaskSpec("probe", tasks.probe, timeout_s=300, weight=0.5, queue=queue("probe")),
            TaskSpec(
                "transcode",
                tasks.transcode,
                kind="transcode",
                params={"rungs": rungs},
                depends_on=("probe",),
                timeout_s=settings.ffmpeg_timeout_seconds,
                weight=sum(_encoding_weight(rung) for rung in rungs),
                queue=queue("transcode"),
            ),
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
                depends_on=("transcode", "thumbnail"),
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
