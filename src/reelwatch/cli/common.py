"""What every command module shares: the consoles, what they may print, and loading the
settings.

Text from the server or the database (a video title, an error message, a notice) must
not drive the terminal. Two layers keep it inert: the consoles drop every control
character from the text they write (``SafeConsole``), so no escape sequence reaches the
terminal whatever its source; and data is made literal for Rich's markup where it enters
(``from_server``, ``literal``), so a title such as ``[bold red]x[/]`` prints as typed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from reelwatch.config import ConfigError, Settings, load_settings
from reelwatch.database import Database
from reelwatch.db.migrate import upgrade_database
from reelwatch.permissions import open_to_others

# C0 controls but newline and tab, DEL, C1 controls (ESC, CSI, OSC start sequences that
# set titles, move the cursor, clear the screen), and the bidirectional embeddings,
# overrides and isolates that reorder what a line seems to say.
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# In data, a line break or tab would also start a fake line or column.
UNPRINTABLE_IN_DATA = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    return UNPRINTABLE.sub("", text)


def literal(value: object) -> str:
    """One value from the server or the database, ready to put in markup: on one line,
    no control characters, Rich markup escaped."""
    return escape(UNPRINTABLE_IN_DATA.sub(" ", str(value)))


def from_server(data: Any) -> Any:
    """A decoded JSON answer with every string (keys too) made ``literal``."""
    if isinstance(data, str):
        return literal(data)
    if isinstance(data, list):
        return [from_server(item) for item in data]
    if isinstance(data, dict):
        return {from_server(key): from_server(value) for key, value in data.items()}
    return data


class SafeConsole(Console):
    """A console whose text carries no control character: only Rich's own control
    segments (cursor moves of progress bars) and styles reach the terminal."""

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or not UNPRINTABLE.search(segment.text):
                yield segment
            else:
                yield Segment(printable(segment.text), segment.style)


console = SafeConsole()
err = SafeConsole(stderr=True)

# The panels of ``reelwatch --help``.
USER_PANEL = "Your videos"
ADMIN_PANEL = "Admin (through the API)"
OPERATIONS_PANEL = "Operations (on this host's data)"
ROLES_PANEL = "Roles (run the service)"

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the raw data as one JSON document.")
]


def plain_cell(value: object) -> str:
    """One value of a plain row: on one line, no tab, no control character."""
    return UNPRINTABLE_IN_DATA.sub(" ", "-" if value is None else str(value))


def show_records(
    data: Any,
    as_json: bool,
    rows: Sequence[Sequence[object]],
    headers: Sequence[str] | None = None,
    *,
    styles: dict[str, str] | None = None,
) -> None:
    """``data`` as JSON, or ``rows`` as plain lines (see ``printed_plainly``) or, on a
    terminal, as a table (no header: a list of ``name value`` pairs). Cells are text,
    never Rich markup; a cell found in ``styles`` is drawn in that style."""
    if printed_plainly(data, as_json, lambda: rows):
        return
    table = Table(*headers) if headers else Table(show_header=False, box=None)
    for row in rows:
        cells = [plain_cell(value) for value in row]
        table.add_row(*(Text(cell, style=(styles or {}).get(cell, "")) for cell in cells))
    console.print(table)


def printed_plainly(
    data: Any, as_json: bool, rows: Callable[[], Iterable[Sequence[object]]]
) -> bool:
    """Print ``data`` as one JSON document (``--json``), or ``rows`` one record a line,
    tab-separated, when stdout is not a terminal (scripts, pipes); False when neither
    applies and the caller draws its table. JSON escapes every control character
    (``ensure_ascii``), and plain cells hold none, so neither drives a terminal."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=True))
        return True
    if console.is_terminal:
        return False
    for row in rows():
        typer.echo("\t".join(plain_cell(value) for value in row))  # Rich would turn tabs to spaces
    return True


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the one-line configuration error; warns when the
    home folder is open to other users."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    exposure = open_to_others(settings.home)
    if exposure:
        err.print(f"[yellow]warning:[/] {escape(exposure)}", highlight=False, soft_wrap=True)
    return settings


@contextmanager
def operator_database() -> Iterator[tuple[Settings, Database]]:
    """The settings and the migrated database of this host, for operator commands."""
    settings = settings_or_exit()
    upgrade_database(settings.resolved_database_url)
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        yield settings, db
    finally:
        db.dispose()
