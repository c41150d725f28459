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
    existing = [folder for folder in folders if folder.exists()]
    if existing:
        figures["disk_free_percent"] = min(
            100.0 - psutil.disk_usage(str(folder)).percent for folder in existing
        )
    return {name: round(value, 2) for name, value in figures.items()}
