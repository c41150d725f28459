"""Logging for every role: human-readable lines (the default), or with
``REELWATCH_LOG_FORMAT=json`` one JSON object a line carrying the request id of the HTTP
request (``request_id``) and the task and video of the worker's task being run."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from reelwatch.config import Settings
from reelwatch.engine.context import current_task

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

# The id of the HTTP request being served (reelwatch.api.request_id).
request_id: ContextVar[str | None] = ContextVar("reelwatch_request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: a message's line breaks and control characters are
    escaped, so no input can forge a line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if (request := request_id.get()) is not None:
            entry["request_id"] = request
        if (task := current_task.get()) is not None:
            entry["task_id"] = task.task_id
            entry["workflow"] = task.workflow
            if task.subject_id is not None:  # reelwatch's workflow subjects are videos
                entry["video_id"] = task.subject_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings | None = None) -> None:
    """The root logger's one handler, on stderr, for this process (uvicorn's loggers
    join it when the format is JSON: ``reelwatch.runtime.server``); without settings
    (the watchdog, on another machine), text at info."""
    json_logs = settings is not None and settings.log_format == "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(TEXT_FORMAT))
    level = settings.log_level if settings is not None else "info"
    logging.basicConfig(level=level.upper(), handlers=[handler])
