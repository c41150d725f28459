"""Simulation mode (``REELWATCH_SIMULATE``, ``reelwatch up --simulate``): every part of
reelwatch is real except the transcoder, a stand-in that reads no media and runs no
ffmpeg, and fails on demand with any code of the failure catalog.

``REELWATCH_SIMULATE_FAILURES`` lists the failures to inject, ``code:rate`` pairs
(``input_invalid:0.1,ffmpeg_crashed:0.2``): each attempt of the task where such a
failure really happens fails with that code with that probability.
"""

from __future__ import annotations

from reelwatch.failures import CATALOG, FailureCode

EXAMPLE = "input_invalid:0.1,ffmpeg_crashed:0.2"


def parse_failure_rate(text: str) -> tuple[FailureCode, float]:
    """One ``code:rate`` pair; ``ValueError`` with a message naming what is wrong."""
    code, sep, rate = text.strip().partition(":")
    try:
        known = FailureCode(code.strip())
    except ValueError:
        codes = ", ".join(CATALOG)
        raise ValueError(f"unknown failure code {code.strip()!r} (one of {codes})") from None
    try:
        probability = float(rate) if sep else -1.0
    except ValueError:
        probability = -1.0
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"{text.strip()!r} needs a rate from 0 to 1, e.g. {known.value}:0.2")
    return known, probability


def parse_failure_rates(text: str) -> dict[FailureCode, float]:
    """Every pair of a comma-separated list (the last rate of a code repeated wins)."""
    pairs = (parse_failure_rate(part) for part in text.split(",") if part.strip())
    return dict(pairs)


def format_failure_rates(rates: dict[FailureCode, float]) -> str:
    return ",".join(f"{code.value}:{rate:g}" for code, rate in rates.items())
