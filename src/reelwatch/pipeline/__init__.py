"""The video workflow: probe, transcode each rendition, thumbnail, finalize.

``build_video_workflow`` declares the graph for the engine; its handlers call
``reelwatch.media`` and its observer keeps each video's row in step with its workflow.
"""

from reelwatch.pipeline.workflow import (
    VIDEO_WORKFLOW,
    build_video_workflow,
    register_video_workflow,
)

__all__ = ["VIDEO_WORKFLOW", "build_video_workflow", "register_video_workflow"]
