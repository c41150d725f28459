"""Run every benchmark, one after the other, each in its own process.

    python -m bench.run_all [--quick] [--only NAME ...]

With ``--quick`` each runs scaled down (about ten minutes in all on two cores); without
it, at the sizes ``docs/performance.md`` reports (about 35 minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

BENCHMARKS = (
    "engine_throughput",
    "pickup_latency",
    "pipeline_efficiency",
    "first_playable",
    "upload",
    "api_load",
    "gc_pauses",
    "crash_recovery",
    "scale",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]) if __doc__ else None,
    )
    parser.add_argument("--quick", action="store_true", help="every benchmark scaled down")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args()
    failed = []
    for name in args.only or BENCHMARKS:
        command = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if args.quick else [])]
        if subprocess.run(command, cwd=common.REPO, check=False).returncode != 0:
            failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
