"""The video workflow's graph, built from the configured rendition ladder."""

from __future__ import annotations

from reelwatch.config import Settings
from reelwatch.engine.spec import TaskSpec, WorkflowSpec, register_workflow
from reelwatch.pipeline.observer import VideoObserver
from reelwatch.pipeline.tasks import VideoTasks
from reelwatch.storage import MediaStore

VIDEO_WORKFLOW = "video"


def build_video_workflow(settings: Settings, store: MediaStore) -> WorkflowSpec:
    """probe → transcode_<rung>p for each rung, thumbnail → finalize."""
    tasks = VideoTasks(settings, store)
    queue = settings.queue_for
    task_limit = settings.ffmpeg_timeout_seconds
    lowest = min(settings.rendition_heights)
    transcodes = tuple(
        TaskSpec(
            f"transcode_{rung}p",
            tasks.transcode,
            kind="transcode",
            params={"rung": rung, "lowest": rung == lowest},
            depends_on=("probe",),
            timeout_s=task_limit,
            # Encoding cost grows with the pixel count.
            weight=4.0 * (rung / 480) ** 2,
            queue=queue("transcode"),
        )
        for rung in settings.rendition_heights
    )
    return WorkflowSpec(
        VIDEO_WORKFLOW,
        (
            TaskSpec("probe", tasks.probe, timeout_s=300, weight=0.5, queue=queue("probe")),
            *transcodes,
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
                depends_on=(*(t.name for t in transcodes), "thumbnail"),
                timeout_s=300,
                weight=0.5,
                queue=queue("finalize"),
            ),
        ),
        observer=VideoObserver(settings),
    )


def register_video_workflow(settings: Settings, store: MediaStore) -> WorkflowSpec:
    return register_workflow(build_video_workflow(settings, store))
