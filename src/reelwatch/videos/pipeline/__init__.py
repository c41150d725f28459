"""The workflows a worker runs: the video workflow (probe, transcode each rendition,
thumbnail, finalize) and the monitor's "ping ffmpeg".

``build_video_workflow`` declares the graph for the engine; its handlers call
``reelwatch.media`` and its observer keeps each video's row in step with its workflow.
"""

from reelwatch.config import Settings
from reelwatch.engine.spec import WorkflowSpec, register_workflow
from reelwatch.storage import MediaStore
from reelwatch.videos.pipeline.ping import PING_WORKFLOW, build_ping_workflow
from reelwatch.videos.pipeline.workflow import (
    VIDEO_WORKFLOW,
    build_video_workflow,
    register_video_workflow,
)


def build_workflows(settings: Settings, store: MediaStore) -> dict[str, WorkflowSpec]:
    """Every workflow a worker handles, by name."""
    specs = (build_video_workflow(settings, store), build_ping_workflow(settings, store))
    return {spec.name: spec for spec in specs}


def register_workflows(settings: Settings, store: MediaStore) -> dict[str, WorkflowSpec]:
    """``build_workflows``, registered for this process (the engine finds observers there)."""
    return {
        name: register_workflow(spec) for name, spec in build_workflows(settings, store).items()
    }


__all__ = [
    "PING_WORKFLOW",
    "VIDEO_WORKFLOW",
    "build_ping_workflow",
    "build_video_workflow",
    "build_workflows",
    "register_video_workflow",
    "register_workflows",
]
