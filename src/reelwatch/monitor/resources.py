"""A node's resources (CPU, memory, disk, load) as its workers report them with psutil."""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def node_resources(*folders: Path) -> dict[str, float]:
    """CPU and memory in percent, the 1-minute load per core, and the free share of the
    disks holding ``folders`` (the media store and the database), in percent."""
    figures = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "load_per_core": os.getloadavg()[0] / (psutil.cpu_count() or 1),
    }
    free = disk_free_percent(*folders)
    if free is not None:
        figures["disk_free_percent"] = free
    return {name: round(value, 2) for name, value in figures.items()}


def disk_free_percent(*folders: Path) -> float | None:
    """The least free share, in percent, of the disks holding ``folders`` that exist."""
    existing = [folder for folder in folders if folder.exists()]
    if not existing:
        return None
    return round(min(100.0 - psutil.disk_usage(str(f)).percent for f in existing), 2)
