"""Helpers for tests that watch ffmpeg processes come and go: polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], *, timeout: float = 20.0) -> T:
    """Poll until ``predicate`` returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting after {timeout} s for {predicate}")


def live_ffmpeg_children(pid: int | None = None) -> list[psutil.Process]:
    """The ffmpeg processes started by ``pid`` (default: this process) that still run."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [child for child in children if _is_running_ffmpeg(child)]


def _is_running_ffmpeg(process: psutil.Process) -> bool:
    try:
        return process.name() == "ffmpeg" and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
