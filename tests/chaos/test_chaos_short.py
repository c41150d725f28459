"""The short chaos run (docs/reliability.md): a real ``reelwatch up`` takes uploads while
workers and ``up`` are SIGKILLed, SMTP goes away, the database restarts (PostgreSQL) or
is locked (SQLite) and the media disk fills up; then every invariant must hold.

The seed is random unless REELWATCH_CHAOS_SEED is set; a failure prints the report (with
the seed to reproduce it and the timelines of the videos concerned).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from chaos.run import ChaosOptions, run_chaos

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

# Two runs of this length, setup and drain included, take about four minutes.
MINUTES = 1.5
DRAIN_TIMEOUT_S = 150.0


def chaos_seed() -> int:
    return int(os.environ.get("REELWATCH_CHAOS_SEED") or random.SystemRandom().randrange(10**6))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_every_invariant_holds_under_faults(database: str, tmp_path: Path) -> None:
    options = ChaosOptions(
        minutes=MINUTES,
        database=database,
        seed=chaos_seed(),
        drain_timeout_s=DRAIN_TIMEOUT_S,
        work_dir=tmp_path / "chaos",
    )
    report = run_chaos(options)
    print(report.render())  # the figures, in the output of `pytest -rA` or a failure
    assert report.ok, "\n" + report.render()
