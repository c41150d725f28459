"""The uploads of a chaos run: good videos that must become ready and broken files that
must fail with a known code, generated with ffmpeg by the test suite's recipes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import samples
from reelwatch.storage.local import sha256_of

# Cheap to transcode, and different enough to take different paths through ffmpeg.
GOOD = ("h264", "no_audio", "vertical", "vp9", "mpeg4", "odd_size", "raw_h264")
# Long enough that a SIGKILL often lands mid-transcode.
LONG_SECONDS = 6.0


@dataclass(frozen=True)
class Sample:
    name: str
    path: Path
    sha256: str
    size_bytes: int
    expected_status: str  # "ready" or "failed"
    expected_code: str | None  # the error code of a broken file

    @property
    def good(self) -> bool:
        return self.expected_status == "ready"


def make_samples(folder: Path) -> list[Sample]:
    """Every sample once, each with content of its own (the checker maps by SHA-256)."""
    folder.mkdir(parents=True, exist_ok=True)
    made: list[Sample] = []
    for name in GOOD:
        made.append(_sample(name, samples.make_sample(samples.GOOD_SAMPLES[name], folder)))
    long_video = samples.make_video(
        folder / "long.mp4", duration_s=LONG_SECONDS, width=640, height=360
    )
    made.append(_sample("long", long_video))
    for name, path in samples.make_broken_samples(folder / "broken").items():
        made.append(_sample(name, path, failing_with=samples.BROKEN_SAMPLES[name].code))
    by_digest = {sample.sha256: sample for sample in made}
    return list(by_digest.values())


def _sample(name: str, path: Path, *, failing_with: str | None = None) -> Sample:
    return Sample(
        name=name,
        path=path,
        sha256=sha256_of(path),
        size_bytes=path.stat().st_size,
        expected_status="failed" if failing_with else "ready",
        expected_code=failing_with,
    )
