"""The report of a chaos run: faults injected with their moments, figures, and each
invariant held or violated, with the timelines of the videos that violated one."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.invariants import Result, TimelineEvent
from chaos.journal import Fault, Note

_LOG_LEVEL = re.compile(r" (ERROR|CRITICAL) (\S+) \[\d+\] (.*)")
_NOISE = re.compile(r"\b[0-9a-f]{32}\b|\b\d+(\.\d+)?\b")


@dataclass
class Report:
    database: str
    seed: int
    minutes: float
    workers: int
    started: datetime
    work_dir: Path
    phases_s: dict[str, float] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    not_injected: dict[str, str] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    timelines: dict[str, list[TimelineEvent]] = field(default_factory=dict)
    log_errors: list[tuple[int, str]] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            bool(self.results) and all(r.held for r in self.results) and (not self.harness_errors)
        )

    def render(self, *, timelines: bool = True) -> str:
        lines = self._header() + self._faults() + self._figures() + self._invariants()
        if self.log_errors:
            lines += ["", "Errors logged by reelwatch (count, message with numbers elided):"]
            lines += [f"  {count:4d}  {message}" for count, message in self.log_errors]
        if timelines and self.timelines:
            lines += self._timelines()
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "database": self.database,
            "seed": self.seed,
            "minutes": self.minutes,
            "workers": self.workers,
            "started": self.started.isoformat(),
            "phases_s": self.phases_s,
            "faults": [asdict(f) | {"wall": f.wall.isoformat()} for f in self.faults],
            "not_injected": self.not_injected,
            "notes": [asdict(n) for n in self.notes],
            "figures": self.figures,
            "invariants": [
                {"name": r.name, "held": r.held, "checked": r.checked, "violations": r.violations}
                for r in self.results
            ],
            "harness_errors": self.harness_errors,
            "log_errors": self.log_errors,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")

    def _header(self) -> list[str]:
        phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.phases_s.items())
        verdict = "ALL INVARIANTS HELD" if self.ok else "INVARIANTS VIOLATED"
        return [
            f"reelwatch chaos run: {verdict}",
            f"  database {self.database}, seed {self.seed}, {self.minutes:g} min of faults, "
            f"{self.workers} workers",
            f"  started {self.started:%Y-%m-%d %H:%M:%S} UTC; {phases}",
            f"  reproduce: python -m chaos --database {self.database} --seed {self.seed} "
            f"--minutes {self.minutes:g}",
            f"  work folder: {self.work_dir}",
        ]

    def _faults(self) -> list[str]:
        counts = Counter(f.kind for f in self.faults)
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        lines = ["", f"Faults injected ({len(self.faults)}: {summary}):"]
        for fault in self.faults:
            lasted = f" [{fault.duration_s:.1f} s]" if fault.duration_s is not None else ""
            lines.append(
                f"  t+{fault.at_s:6.1f}s  {fault.wall:%H:%M:%S}  {fault.kind:<20}{fault.detail}"
                f"{lasted}"
            )
        for kind, why in self.not_injected.items():
            lines.append(f"  not injected: {kind}: {why}")
        if self.notes:
            lines += ["", "Observed by the harness:"]
            lines += [f"  t+{note.at_s:6.1f}s  {note.text}" for note in self.notes]
        for error in self.harness_errors:
            lines.append(f"  HARNESS ERROR: {error}")
        return lines

    def _figures(self) -> list[str]:
        lines = ["", "Figures:"]
        for name, value in self.figures.items():
            lines.append(f"  {name}: {_figure(value)}")
        return lines

    def _invariants(self) -> list[str]:
        lines = ["", "Invariants:"]
        for result in self.results:
            verdict = "HELD    " if result.held else "VIOLATED"
            lines.append(f"  {verdict} {result.name} ({result.checked} checked)")
            for violation in result.violations[:25]:
                lines.append(f"             - {violation}")
            if len(result.violations) > 25:
                lines.append(f"             ... and {len(result.violations) - 25} more")
        return lines

    def _timelines(self) -> list[str]:
        lines = ["", "Timelines of the videos that violated an invariant:"]
        for video_id, events in self.timelines.items():
            lines.append(f"  video {video_id}:")
            lines += [f"    {_event_line(event)}" for event in events]
        return lines


def _figure(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    return str(value)


def _event_line(event: TimelineEvent) -> str:
    task = f" {event['task']}#{event['attempt']}" if event["task"] else ""
    worker = f" @{event['worker']}" if event["worker"] else ""
    data = {k: v for k, v in event["data"].items() if k not in ("detail", "tasks")}
    return f"{event['at']}  {event['kind']}{task}{worker}  {json.dumps(data)[:300]}"


def summarize_log_errors(log: Path, limit: int = 15) -> list[tuple[int, str]]:
    """The ERROR lines of ``up``'s output, grouped once numbers and ids are elided."""
    if not log.is_file():
        return []
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        match = _LOG_LEVEL.search(line)
        if match:
            counts[f"{match.group(2)}: {_NOISE.sub('N', match.group(3))[:160]}"] += 1
    return [(count, message) for message, count in counts.most_common(limit)]
