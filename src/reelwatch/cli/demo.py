"""``reelwatch demo``: generate sample videos, good and broken, and push them through a
running instance, so a newcomer sees every outcome (and its e-mail) in a minute.

Against a simulated instance (``up --simulate``) the samples are placeholder files made
without ffmpeg, and their outcomes are the injected failures' to decide."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import httpx
import typer

from reelwatch.cli.client import Connection, upload_files, wait_for_outcomes
from reelwatch.cli.common import USER_PANEL, console, err

app = typer.Typer()

_TONE = ["-f", "lavfi", "-i", "sine=frequency=440"]
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def _pattern(size: str, seconds: int) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-t", str(seconds)]


# file name -> (ffmpeg arguments, the outcome it must reach)
SAMPLES: dict[str, tuple[list[str], str]] = {
    "landscape-720p.mp4": (
        [*_pattern("1280x720", 5), *_TONE, *_H264, "-c:a", "aac", "-shortest"],
        "ready",
    ),
    "phone-portrait.mp4": ([*_pattern("360x640", 3), *_H264], "ready"),
    "archive-mpeg2.mpg": (
        [*_pattern("640x480", 3), *_TONE, "-c:v", "mpeg2video", "-c:a", "mp2", "-shortest"],
        "ready",
    ),
    "podcast-audio-only.m4a": ([*_TONE, "-t", "3", "-c:a", "aac"], "failed"),
}


# A simulated instance's outcomes are up to its injected failures (--fail).
ANY_OUTCOME = "any"


def make_placeholders(folder: Path) -> dict[Path, str]:
    """Files for a simulated instance, whose stand-in reads only their size (1 to 5 MB:
    4 to 20 s of video for it); any outcome is possible."""
    expected: dict[Path, str] = {}
    for megabytes in range(1, 6):
        path = folder / f"simulated-{megabytes}mb.mp4"
        path.write_bytes(os.urandom(megabytes * 1_000_000))
        expected[path] = ANY_OUTCOME
    return expected


def make_samples(folder: Path) -> dict[Path, str]:
    """Generate the samples into ``folder``; returns each path with its expected outcome."""
    expected: dict[Path, str] = {}
    for name, (arguments, outcome) in SAMPLES.items():
        path = folder / name
        command = ["ffmpeg", "-v", "error", "-y", *arguments, str(path)]
        subprocess.run(command, check=True, timeout=120)
        expected[path] = outcome
    broken = folder / "corrupted.mp4"
    broken.write_bytes(os.urandom(200_000))
    expected[broken] = "failed"
    return expected


@app.command(rich_help_panel=USER_PANEL)
def demo(
    keep: Annotated[Path | None, typer.Option(help="Keep the samples in this folder.")] = None,
) -> None:
    """Upload generated sample videos (good and broken) and follow them to their outcome."""
    connection = Connection.from_environment()
    with tempfile.TemporaryDirectory() as scratch:
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        with connection.client() as client:
            simulated = _simulated(client)
            console.print(f"generating sample videos in {folder} …")
            expected = make_placeholders(folder) if simulated else make_samples(folder)
            videos = upload_files(client, list(expected), title=None)
            finished = wait_for_outcomes(client, videos)
    surprises = [
        f"{path.name}: expected {outcome}, got {video['status']}"
        for (path, outcome), video in zip(expected.items(), finished, strict=True)
        if outcome not in (ANY_OUTCOME, video["status"])
    ]
    console.print(
        "Each video's checkpoint timeline: [bold]reelwatch events ID[/]; the e-mails "
        "users got: [bold]reelwatch mail[/] (with the built-in sink)."
    )
    if surprises:
        err.print("[red]unexpected outcomes:[/] " + "; ".join(surprises))
        raise typer.Exit(1)


def _simulated(client: httpx.Client) -> bool:
    """Whether the instance runs the stand-in transcoder (its public status says so)."""
    try:
        return client.get("/api/v1/status").json().get("simulated") is True
    except (httpx.HTTPError, ValueError):
        return False  # the upload will say what is wrong with the server
