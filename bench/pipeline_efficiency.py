"""Pipeline efficiency: videos through reelwatch against the same ffmpeg commands run bare.

    python -m bench.pipeline_efficiency [--videos 6] [--seconds 20] [--quick]

A fixed set of generated 720p videos with sound goes three ways, each with the same
parallelism (``--workers``, 2 by default: two ffmpeg at a time):

- bare: per video, the commands reelwatch runs (ffprobe, one ffmpeg per rendition of
  ``REELWATCH_RENDITIONS`` 480,720, the thumbnail), built by reelwatch's own argument
  builders and run one after the other, two videos at a time, as a shell loop under
  ``xargs -P 2`` would (here a pool of argument-list subprocesses, no shell);
- bare, decoded once: the same, but one ffmpeg per video decodes the source once and
  encodes every rendition (``split`` filter), the thumbnail as before;
- reelwatch: uploaded through the API of a real instance (server and ``--workers``
  worker processes); the clock runs from before the first upload to the last video's
  ``workflow_succeeded`` checkpoint. It includes everything reelwatch adds: the upload,
  the queue, the checks of each rendition (ffprobe), the fsyncs and renames.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from bench import common
from reelwatch.db.database import Database, utcnow
from reelwatch.db.models import Event
from reelwatch.media import FfmpegLimits, MediaInfo, RenditionPlan, plan_rendition, probe_media
from reelwatch.media.ffmpeg import FFMPEG, FFPROBE, media_input, media_url
from reelwatch.media.renditions import (
    AUDIO_ENCODER_ARGS,
    VIDEO_ENCODER_ARGS,
    _thumbnail_args,
    _transcode_args,
    thumbnail_size,
)

RUNGS = (480, 720)
GOAL_RATIO = 1.05
FFMPEG_PREFIX = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning"]
Command = list[str]


def plans_for(info: MediaInfo) -> list[RenditionPlan]:
    lowest = min(RUNGS)
    plans = [plan_rendition(info, rung, lowest=rung == lowest) for rung in RUNGS]
    return [plan for plan in plans if plan is not None]


def probe_command(source: Path) -> Command:
    command = [FFPROBE, "-v", "error", "-of", "json", "-show_format", "-show_streams"]
    return [*command, *media_input(source)]


def thumbnail_command(source: Path, output: Path, info: MediaInfo) -> Command:
    width, height = thumbnail_size(info, 320)
    seconds = min(info.duration_s * 0.1, 5.0)
    return [*FFMPEG_PREFIX, *_thumbnail_args(source, output, seconds, width, height, LIMITS)]


LIMITS = FfmpegLimits()


def separate_commands(source: Path, out: Path) -> list[Command]:
    """What reelwatch runs for one video: probe, each rendition, the thumbnail."""
    info = probe_media(source)
    commands = [probe_command(source)]
    for plan in plans_for(info):
        output = out / f"{source.stem}-{plan.name}.mp4"
        commands.append([*FFMPEG_PREFIX, *_transcode_args(source, output, plan, info, LIMITS)])
    commands.append(thumbnail_command(source, out / f"{source.stem}.jpg", info))
    return commands


def decode_once_commands(source: Path, out: Path) -> list[Command]:
    """Probe, then one ffmpeg that decodes once and encodes every rendition, then the
    thumbnail (a seek: it decodes a single group of pictures)."""
    info = probe_media(source)
    plans = plans_for(info)
    branches = "".join(f"[s{i}]" for i in range(len(plans)))
    graph = [f"[0:V:0]split={len(plans)}{branches}"]
    graph += [f"[s{i}]scale={p.width}:{p.height},setsar=1[v{i}]" for i, p in enumerate(plans)]
    command = [*FFMPEG_PREFIX, *media_input(source), "-filter_complex", ";".join(graph)]
    for index, plan in enumerate(plans):
        command += ["-map", f"[v{index}]", *VIDEO_ENCODER_ARGS]
        command += ["-map", "0:a:0", *AUDIO_ENCODER_ARGS] if info.has_audio else ["-an"]
        command += ["-map_metadata", "-1", "-map_chapters", "-1"]
        command += ["-max_muxing_queue_size", "4096", "-movflags", "+faststart", "-f", "mp4"]
        command.append(media_url(out / f"{source.stem}-{plan.name}.mp4"))
    return [
        probe_command(source),
        command,
        thumbnail_command(source, out / f"{source.stem}.jpg", info),
    ]


def run_bare(jobs: Sequence[list[Command]], parallel: int) -> float:
    """Each job's commands in order, ``parallel`` jobs at a time; the wall time."""

    def run_job(commands: list[Command]) -> None:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(run_job, jobs))
    return time.perf_counter() - started


def run_reelwatch(videos: list[Path], kind: str, workers: int, folder: Path) -> float:
    with common.Processes(folder / "logs") as processes, common.postgres_if(kind) as cluster:
        url = common.database_url(kind, folder, cluster)
        instance = common.Instance(processes, folder / "home", url).start(workers=workers)
        db = Database(url)
        try:
            time.sleep(1.0)  # the workers are up and idle
            started_at = utcnow()
            with instance.client() as client:
                ids = [common.upload(client, path)["id"] for path in videos]
                common.wait_until(
                    lambda: all(_status(client, i) in ("ready", "failed") for i in ids),
                    timeout=3600,
                    interval=0.5,
                )
                failed = [i for i in ids if _status(client, i) != "ready"]
            if failed:
                raise RuntimeError(f"videos failed: {failed}")
            with db.read() as session:
                finished_at = session.scalar(
                    select(func.max(Event.at)).where(Event.kind == "workflow_succeeded")
                )
            assert finished_at is not None
            return (finished_at - started_at).total_seconds()
        finally:
            db.dispose()


def _status(client: object, video_id: str) -> str:
    import httpx

    assert isinstance(client, httpx.Client)
    return str(client.get(f"/api/v1/videos/{video_id}").json()["status"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each video")
    parser.add_argument("--workers", type=int, default=2, help="ffmpeg at a time")
    parser.add_argument("--quick", action="store_true", help="3 videos of 5 s")
    parser.add_argument(
        "--database", choices=common.DATABASES, default="sqlite", help="reelwatch's database"
    )
    args = parser.parse_args()
    count, seconds = (3, 5.0) if args.quick else (args.videos, args.seconds)

    common.heading(
        f"pipeline efficiency: {count} videos of {seconds:g} s at 1280x720, "
        f"renditions {RUNGS}, {args.workers} at a time, reelwatch on {args.database}"
    )
    with common.scratch("pipeline") as folder:
        videos = common.make_videos(
            folder / "sources", count, duration_s=seconds, width=1280, height=720
        )
        outputs = folder / "bare"
        outputs.mkdir()
        bare = run_bare([separate_commands(v, outputs) for v in videos], args.workers)
        common.line("bare ffmpeg, one run per rendition", f"{bare:7.2f} s")
        once = run_bare([decode_once_commands(v, outputs) for v in videos], args.workers)
        common.line("bare ffmpeg, decoded once per video", f"{once:7.2f} s")
        ours = run_reelwatch(videos, args.database, args.workers, folder / "reelwatch")
        common.line("reelwatch (upload to last ready)", f"{ours:7.2f} s")
    common.line("reelwatch / bare", f"{ours / bare:5.3f}")
    common.line("decoded once / bare", f"{once / bare:5.3f}")
    common.verdict(
        f"reelwatch within {GOAL_RATIO - 1:.0%} of bare ffmpeg", ours / bare <= GOAL_RATIO
    )


if __name__ == "__main__":
    main()
