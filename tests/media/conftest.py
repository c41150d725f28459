"""Media generated once per test session into pytest's temporary folders, and a thread
to run ffmpeg in."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import samples
from reelwatch.media import MediaInfo, probe_media


@pytest.fixture(scope="session")
def good_infos(good_samples: dict[str, Path]) -> dict[str, MediaInfo]:
    return {name: probe_media(path) for name, path in good_samples.items()}


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """A thread to run ffmpeg in while the test pokes at the process."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long-media")
    return samples.make_long_video(folder / "long.mp4", 20, width=640, height=360)
