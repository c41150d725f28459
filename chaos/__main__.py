"""``python -m chaos``: one chaos run, its report on stdout; exit status 1 on a violation."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from chaos.run import ChaosOptions, run_chaos


def parse_options(argv: list[str]) -> tuple[ChaosOptions, Path | None]:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Upload videos into a real `reelwatch up` while injecting faults, "
        "then check the invariants and print a report.",
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the fault phase")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, help="fault and upload schedule (default: random)")
    parser.add_argument("--videos", type=int, help="uploads (default: 20 per minute)")
    parser.add_argument("--workers", type=int, default=2, help="REELWATCH_WORKERS")
    parser.add_argument("--work-dir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder even when OK")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    options = ChaosOptions(
        minutes=args.minutes,
        database=args.database,
        seed=args.seed if args.seed is not None else random.SystemRandom().randrange(10**6),
        videos=args.videos,
        workers=args.workers,
        work_dir=args.work_dir,
        keep=args.keep,
    )
    return options, args.json


def main(argv: list[str]) -> int:
    options, json_path = parse_options(argv)
    print(
        f"chaos: {options.minutes:g} min of faults on {options.database}, seed {options.seed}",
        flush=True,
    )
    report = run_chaos(options)
    print(report.render())
    if json_path:
        report.write_json(json_path)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
