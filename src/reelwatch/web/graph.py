"""Workflows drawn as graphs: Graphviz ``dot`` turns a generated DOT text into SVG.

Labels are made only of names the server chose (task names, states, error codes), and
are quoted for DOT besides; Graphviz escapes them again for SVG. ``dot`` runs with an
argument list and a timeout; without it (not installed, or too slow) the pages show the
same tasks as a list.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from reelwatch.db.models import Task
from reelwatch.engine import states
from reelwatch.engine.spec import WorkflowSpec

log = logging.getLogger(__name__)

DOT_TIMEOUT_S = 10.0

# Fill colours by task state, chosen to read well for colour-blind people too (the
# state is also written in each node).
STATE_COLOURS = {
    states.WAITING: "#eeeeee",
    states.QUEUED: "#cfe2ff",
    states.RUNNING: "#ffe69c",
    states.SUCCEEDED: "#b7e4c7",
    states.FAILED: "#f5b7b1",
    states.CANCELLED: "#d6d6d6",
}
DEFINITION_COLOUR = "#f8f9fa"


@dataclass(frozen=True)
class Node:
    name: str
    lines: tuple[str, ...]  # the label, one line each
    depends_on: tuple[str, ...]
    fill: str
    tooltip: str = ""


def task_nodes(tasks: Iterable[Task]) -> list[Node]:
    """One node per task of a running or finished workflow, coloured by its state."""
    return [
        Node(
            task.name,
            (task.name, f"{task.state} · attempt {task.attempt}", *_error_line(task)),
            tuple(task.depends_on),
            STATE_COLOURS.get(task.state, DEFINITION_COLOUR),
            tooltip=f"{task.name}: {task.state}, attempt {task.attempt}",
        )
        for task in tasks
    ]


def definition_nodes(spec: WorkflowSpec) -> list[Node]:
    """One node per declared task, with its queue, time limit and progress weight."""
    return [
        Node(
            task.name,
            (
                task.name,
                f"kind {task.kind} · queue {task.queue}",
                f"limit {task.timeout_s / 60:g} min · weight {task.weight:g}",
            ),
            task.depends_on,
            DEFINITION_COLOUR,
            tooltip=f"{task.name} after {', '.join(task.depends_on) or 'the upload'}",
        )
        for task in spec.tasks
    ]


def _error_line(task: Task) -> tuple[str, ...]:
    return (f"error {task.error_code}",) if task.error_code else ()


def to_dot(nodes: Sequence[Node]) -> str:
    lines = [
        "digraph workflow {",
        '  graph [rankdir=LR, bgcolor="transparent", nodesep=0.3, ranksep=0.5];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [color="#555555"];',
    ]
    for node in nodes:
        label = "\\n".join(_quote(line) for line in node.lines)
        lines.append(
            f'  "{_quote(node.name)}" [label="{label}", fillcolor="{node.fill}", '
            f'tooltip="{_quote(node.tooltip)}"];'
        )
    for node in nodes:
        lines += [f'  "{_quote(dep)}" -> "{_quote(node.name)}";' for dep in node.depends_on]
    lines.append("}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    """Text inside a DOT double-quoted string: backslashes and quotes escaped, so no
    escape sequence of Graphviz's (\\N, \\G, \\l) can be smuggled in."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_svg(nodes: Sequence[Node]) -> Markup | None:
    """The graph as inline SVG, or None when ``dot`` cannot draw it."""
    return _svg_for(to_dot(nodes))


@functools.lru_cache(maxsize=256)
def _svg_for(dot_source: str) -> Markup | None:
    # Cached by source: a graph changes only when a task's state or attempt does.
    try:
        result = subprocess.run(
            ["dot", "-Tsvg"],
            input=dot_source.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot draw a workflow graph with Graphviz dot: %s", exc)
        return None
    if result.returncode != 0:
        log.warning("dot failed: %s", result.stderr.decode(errors="replace")[-500:])
        return None
    svg = result.stdout.decode()
    # Inline in the page: drop the XML prolog and DOCTYPE before the <svg> element.
    return Markup(svg[svg.find("<svg") :])  # noqa: S704 (Graphviz output of escaped labels)
