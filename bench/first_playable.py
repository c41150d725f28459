"""First playable and ready: one clip uploaded to an idle reelwatch, against bare ffmpeg.

    python -m bench.first_playable [--seconds 40] [--rounds 3] [--quick] [--remuxable]

One generated 1280x720 25 fps clip with sound (40 s by default; its keyframes ten seconds
apart, as a camera's may be, so browsers cannot play it as it is and every rendition is
encoded; ``--remuxable``: keyframes every two seconds, so the first playable rendition
is the source itself, copied) goes, once per round, through:

- bare, lowest rendition: the one ffmpeg that encodes the lowest rung of
  ``REELWATCH_RENDITIONS`` 480,720 from the whole clip (its MP4 and HLS variant), alone
  on the machine (issue 17's yardstick for "first playable");
- bare, decoded once: the one ffmpeg that decodes the clip once and encodes the whole
  ladder (the yardstick for "ready"), then the thumbnail, timed apart;
- reelwatch: uploaded through the API of an idle instance (server, mail sink, two worker
  processes that report ``idle`` before the clock starts); the clock runs from before
  the upload to the ``playable`` checkpoint (the first segments of the first rendition
  are out: a player can start) and to ``workflow_succeeded``.

The commands are reelwatch's own, built by its argument builders. Reported: the median
of the rounds and their spread, and reelwatch's ratios to both yardsticks (the
thumbnail counted on the bare side, or not).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from bench import common
from bench.pipeline_efficiency import (
    encode_command,
    plans_for,
    rendition_outputs,
    thumbnail_command,
)
from reelwatch.database import Database, utcnow
from reelwatch.db.models import Event, Task, Workflow
from reelwatch.engine import states
from reelwatch.media import probe_media

GOAL_RATIO = 1.0
WORKERS = 2


@dataclass
class Round:
    lowest_s: float  # bare: the lowest rendition's encode
    ladder_s: float  # bare: the decode-once ladder
    thumbnail_s: float  # bare: the thumbnail
    playable_s: float  # reelwatch: upload to `playable`
    ready_s: float  # reelwatch: upload to `workflow_succeeded`
    split: bool  # whether reelwatch split the ladder across both workers

    @property
    def bare_ready(self) -> float:
        return self.ladder_s + self.thumbnail_s


def run(commands: list[list[str]]) -> float:
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_bare(source: Path, out: Path) -> tuple[float, float, float]:
    info = probe_media(source)
    out.mkdir(parents=True, exist_ok=True)
    lowest = rendition_outputs(source, out / "lowest", info, plans_for(info)[:1])
    ladder = rendition_outputs(source, out / "ladder", info)
    for folder in (out / "lowest", out / "ladder"):
        folder.mkdir(exist_ok=True)
    lowest_s = run([encode_command(lowest, source, info)])
    ladder_s = run([encode_command(ladder, source, info)])
    return lowest_s, ladder_s, run([thumbnail_command(source, out / "thumb.jpg", info)])


def run_reelwatch(
    source: Path, kind: str, folder: Path, timeline: list[str]
) -> tuple[float, float, bool]:
    with common.idle_instance(kind, folder, WORKERS) as (_, instance, db):
        started_at = utcnow()
        with instance.client() as client:
            common.upload(client, source)
        common.wait_until(
            lambda: instance.workers_alive() and _state(db) != states.WF_RUNNING,
            timeout=1800,
            interval=0.2,
        )
        if _state(db) != states.WF_SUCCEEDED:
            raise RuntimeError(f"the video failed; logs in {folder / 'logs'}")
        playable, ready, split = _checkpoints(db)
        timeline.extend(_timeline(db, started_at))
        return (
            (playable - started_at).total_seconds(),
            (ready - started_at).total_seconds(),
            split,
        )


def _state(db: Database) -> str | None:
    with db.read() as session:
        return session.scalar(select(Workflow.state))


def _checkpoints(db: Database) -> tuple[datetime, datetime, bool]:
    """When the video became playable and ready, and whether the probe split its ladder."""
    with db.read() as session:
        at = {kind: when for kind, when in session.execute(select(Event.kind, Event.at))}
        probe = session.scalar(select(Task.output).where(Task.name == "probe"))
    return at["playable"], at["workflow_succeeded"], bool((probe or {}).get("split_ladder"))


def _timeline(db: Database, started_at: datetime) -> list[str]:
    """Every checkpoint, seconds after the upload began: where the time went."""
    with db.read() as session:
        events = session.execute(
            select(Event.at, Event.kind, Event.task, Event.worker).order_by(Event.id)
        ).all()
    return [
        f"{(at - started_at).total_seconds():7.2f} s  {kind:<20} {task or '':<10} {worker or ''}"
        for at, kind, task, worker in events
    ]


def report(rounds: list[Round]) -> None:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})"

    common.heading("seconds, median of the rounds (each round's figure in brackets)")
    rows = {
        "bare: lowest rendition, encode": [r.lowest_s for r in rounds],
        "reelwatch: upload to playable": [r.playable_s for r in rounds],
        "bare: decode-once ladder, encode": [r.ladder_s for r in rounds],
        "bare: ladder + thumbnail": [r.bare_ready for r in rounds],
        "reelwatch: upload to ready": [r.ready_s for r in rounds],
    }
    for label, values in rows.items():
        common.line(label, median(values))
    common.line("reelwatch split the ladder", ", ".join(str(r.split) for r in rounds))
    common.heading("ratios, round by round (median)")
    ratios = {
        "playable / bare lowest encode (the goal)": [r.playable_s / r.lowest_s for r in rounds],
        "ready / bare decode-once ladder (the goal)": [r.ready_s / r.ladder_s for r in rounds],
        "ready / bare ladder + thumbnail": [r.ready_s / r.bare_ready for r in rounds],
    }
    for label, values in ratios.items():
        spread = ", ".join(f"{v:.3f}" for v in values)
        common.line(label, f"{statistics.median(values):5.3f}  ({spread})")
    for goal, key in (
        ("first playable within the bare lowest rendition's time", 0),
        ("ready within the bare decode-once ladder's time", 1),
    ):
        values = list(ratios.values())[key]
        common.verdict(goal, statistics.median(values) <= GOAL_RATIO)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="the clip's length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a 10 s clip, one round")
    parser.add_argument(
        "--remuxable", action="store_true", help="keyframes every 2 s: the source plays as it is"
    )
    parser.add_argument(
        "--database", choices=common.DATABASES, default="sqlite", help="reelwatch's database"
    )
    args = parser.parse_args()
    seconds, rounds = (10.0, 1) if args.quick else (args.seconds, args.rounds)
    common.heading(
        f"first playable: one {seconds:g} s 1280x720 clip, "
        f"{'remuxable' if args.remuxable else 'keyframes 10 s apart'}, "
        f"{WORKERS} workers, reelwatch on {args.database}, {rounds} round(s)"
    )
    results: list[Round] = []
    with common.scratch("first-playable") as folder:
        source = make_clip(folder / "clip.mp4", seconds, remuxable=args.remuxable)
        for index in range(rounds):
            here = folder / f"round-{index + 1}"
            bare = run_bare(source, here / "bare")
            timeline: list[str] = []
            playable_s, ready_s, split = run_reelwatch(
                source, args.database, here / "reelwatch", timeline
            )
            measured = Round(*bare, playable_s, ready_s, split)
            common.line(
                f"round {index + 1}",
                f"bare lowest {measured.lowest_s:.2f} s, ladder {measured.ladder_s:.2f} s; "
                f"reelwatch playable {playable_s:.2f} s, ready {ready_s:.2f} s",
            )
            results.append(measured)
    common.heading("the last round's checkpoints in reelwatch, from the upload")
    for entry in timeline:
        print(f"  {entry}")
    report(results)


def make_clip(path: Path, seconds: float, *, remuxable: bool) -> Path:
    import samples

    keyframes = ["-g", "50"] if remuxable else ["-g", "250"]
    return samples.make_video(
        path, duration_s=seconds, width=1280, height=720, extra_args=keyframes
    )


if __name__ == "__main__":
    main()
