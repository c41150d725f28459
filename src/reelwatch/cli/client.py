"""Client commands that talk to a reelwatch server over its HTTP API.

``REELWATCH_URL`` (default ``http://$REELWATCH_BIND``) and ``REELWATCH_TOKEN`` (default:
the admin token that ``reelwatch up`` wrote under ``REELWATCH_HOME``) say where and who.
"""

from __future__ import annotations

import mimetypes
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

import httpx
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from reelwatch.cli.common import (
    ADMIN_PANEL,
    USER_PANEL,
    JsonOption,
    console,
    err,
    from_server,
    literal,
    plain_cell,
    printed_plainly,
    show_records,
)

app = typer.Typer()

TERMINAL = {"ready", "failed"}
POLL_INTERVAL_S = 0.5
VIDEO_ID_LENGTH = 32  # uuid4().hex
HEX_DIGITS = frozenset("0123456789abcdef")
# A prefix that matches more videos than this is listed with this many.
MAX_CANDIDATES = 10


@dataclass(frozen=True)
class Connection:
    url: str
    token: str

    @classmethod
    def from_environment(cls) -> Connection:
        bind = os.environ.get("REELWATCH_BIND", "127.0.0.1:8000")
        url = os.environ.get("REELWATCH_URL", f"http://{bind}").rstrip("/")
        token = os.environ.get("REELWATCH_TOKEN", "")
        if not token:
            token_file = Path(os.environ.get("REELWATCH_HOME", "./var")) / "admin.token"
            if token_file.is_file():
                token = token_file.read_text().strip()
        if not token:
            err.print("[red]error:[/] set REELWATCH_TOKEN (reelwatch users add EMAIL prints one)")
            raise typer.Exit(2)
        return cls(url, token)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(timeout, read=max(timeout, 300.0)),
        )


def request(
    client: httpx.Client, method: str, path: str, *, raw: bool = False, **kwargs: Any
) -> Any:
    """Send a request; say in words what went wrong and exit 1 on failure. The answer's
    strings are ``literal`` (safe to print, in markup or not), or as sent with ``raw``
    (for ``--json`` and plain rows, which clean them their own way)."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        url = literal(str(client.base_url).rstrip("/"))
        err.print(
            f"[red]error:[/] cannot reach reelwatch at {url} ({literal(exc)}): is "
            "`reelwatch up` running? set REELWATCH_URL to where it answers",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    if response.status_code == 401:
        err.print(
            "[red]error:[/] the token was refused: set REELWATCH_TOKEN (reelwatch users add "
            "EMAIL prints one) or run on the server's machine, where "
            "$REELWATCH_HOME/admin.token is read",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    if response.is_error:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        err.print(f"[red]error {response.status_code}:[/] {literal(message)}", soft_wrap=True)
        raise typer.Exit(1)
    if not response.content:
        return None
    return response.json() if raw else from_server(response.json())


def resolve_video_id(client: httpx.Client, given: str) -> str:
    """The id of the caller's one video whose id starts with ``given`` (a full id is
    taken as it is); exit 1 naming the candidates when several match, or none. The
    server filters by prefix (a range of its primary key), so this is one short query."""
    prefix = given.lower()
    if len(prefix) >= VIDEO_ID_LENGTH or not set(prefix) <= HEX_DIGITS:
        return given  # a whole id, or not an id at all: the server says which
    params = {"id_prefix": prefix, "limit": MAX_CANDIDATES}
    found = request(client, "GET", "/api/v1/videos", raw=True, params=params)["videos"]
    if len(found) == 1:
        return str(found[0]["id"])
    if not found:
        err.print(f"[red]error:[/] no video of yours has an id starting with {literal(given)}")
        raise typer.Exit(1)
    listed = "\n".join(f"  {literal(v['id'])}  {literal(v['title'])}" for v in found)
    more = " (and more)" if found and len(found) == MAX_CANDIDATES else ""
    err.print(
        f"[red]error:[/] {literal(given)} is ambiguous; it starts the ids of{more}:\n{listed}",
        soft_wrap=True,
    )
    raise typer.Exit(1)


class _ProgressReader:
    """A file wrapper that advances a progress bar as httpx streams it."""

    def __init__(self, handle: BinaryIO, progress: Progress, task: TaskID) -> None:
        self._handle, self._progress, self._task = handle, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk

    def __getattr__(self, name: str) -> Any:  # fileno, seek, tell: httpx sizes the body
        return getattr(self._handle, name)


def _upload_one(client: httpx.Client, path: Path, title: str | None, progress: Progress) -> Any:
    task = progress.add_task(f"upload {path.name}", total=path.stat().st_size)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with path.open("rb") as handle:
        reader = _ProgressReader(handle, progress, task)
        data = {"title": title} if title else {}
        return request(
            client, "POST", "/api/v1/videos", files={"file": (path.name, reader, mime)}, data=data
        )


def upload_files(
    client: httpx.Client, paths: list[Path], title: str | None
) -> list[dict[str, Any]]:
    """Upload each file with a progress bar; the created videos."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        videos = [_upload_one(client, path, title, progress) for path in paths]
    for video in videos:
        console.print(f"uploaded [bold]{video['id']}[/] {video['title']} ({video['status']})")
    return videos


def wait_for_outcomes(client: httpx.Client, videos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Follow processing with a bar per video; print the final table."""
    finished = _wait_for(client, videos)
    _print_videos(finished)
    return finished


def _wait_for(client: httpx.Client, videos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    ) as progress:
        bars = {
            v["id"]: progress.add_task(v["title"][:40], total=1.0, status=v["status"])
            for v in videos
        }
        final: dict[str, dict[str, Any]] = {}
        while len(final) < len(videos):
            for video_id, bar in bars.items():
                if video_id in final:
                    continue
                video = request(client, "GET", f"/api/v1/videos/{video_id}", raw=True)
                progress.update(
                    bar, completed=video["progress"], status=literal(_status_text(video))
                )
                if video["status"] in TERMINAL:
                    final[video_id] = video
            time.sleep(POLL_INTERVAL_S)
    return [final[v["id"]] for v in videos]


def _status_text(video: dict[str, Any]) -> str:
    text = str(video["status"])
    if video.get("error"):
        text += f" ({video['error']['code']})"
    return text


@app.command(rich_help_panel=USER_PANEL)
def upload(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    title: Annotated[str | None, typer.Option(help="Title (default: the file name).")] = None,
    wait: Annotated[bool, typer.Option(help="Follow processing until each video is done.")] = (
        False
    ),
) -> None:
    """Upload video files, with a progress bar; --wait follows their processing."""
    with Connection.from_environment().client() as client:
        videos = upload_files(client, files, title)
        if not wait:
            return
        finished = wait_for_outcomes(client, videos)
    if any(video["status"] == "failed" for video in finished):
        raise typer.Exit(1)


@app.command(rich_help_panel=USER_PANEL)
def status(
    video_id: Annotated[str | None, typer.Argument(help="A video id, or its first digits.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List your videos, or show one in detail."""
    with Connection.from_environment().client() as client:
        if video_id is None:
            _print_videos(request(client, "GET", "/api/v1/videos", raw=True)["videos"], as_json)
            return
        found = resolve_video_id(client, video_id)
        video = request(client, "GET", f"/api/v1/videos/{found}", raw=True)
    rows = []
    for key, value in video.items():
        if key == "renditions":
            value = ", ".join(f"{r['name']} {r['width']}x{r['height']}" for r in value) or "-"
        elif key == "error" and value:
            value = f"{value['code']}: {value['message']}"
        rows.append((key, value))
    show_records(video, as_json, rows)


@app.command(rich_help_panel=USER_PANEL)
def events(
    video_id: Annotated[str, typer.Argument(help="A video id, or its first digits.")],
    as_json: JsonOption = False,
) -> None:
    """Show a video's checkpoint timeline."""
    with Connection.from_environment().client() as client:
        found = resolve_video_id(client, video_id)
        timeline = request(client, "GET", f"/api/v1/videos/{found}/events", raw=True)
    rows = []
    for event in timeline:
        data = {k: v for k, v in event["data"].items() if k != "detail"}
        rows.append(
            (
                event["at"],
                event["kind"],
                event["task"] or "",
                event["attempt"] or "",
                event["worker"] or "",
                ", ".join(f"{k}={v}" for k, v in data.items()),
            )
        )
    show_records(timeline, as_json, rows, ("at", "kind", "task", "attempt", "worker", "data"))


@app.command(rich_help_panel=USER_PANEL)
def retry(
    video_id: Annotated[str | None, typer.Argument(help="A video id, or its first digits.")] = None,
    code: Annotated[str | None, typer.Option(help="Admin: every video failed with it.")] = None,
) -> None:
    """Re-run a failed video, or (admin) every video failed with --code, where a retry
    can help: never a permanent input failure (the file itself is the problem)."""
    if (video_id is None) == (code is None):
        err.print("[red]error:[/] give a video ID or --code CODE")
        raise typer.Exit(2)
    with Connection.from_environment().client() as client:
        if code is not None:
            result = request(client, "POST", "/api/v1/admin/retry", params={"code": code})
            console.print(f"restarted {len(result['restarted'])} videos failed with {code}")
            return
        assert video_id is not None
        found = resolve_video_id(client, video_id)
        video = request(client, "POST", f"/api/v1/videos/{found}/retry")
    console.print(f"{video['id']} is {video['status']} again")


@app.command("queue", rich_help_panel=ADMIN_PANEL)
def show_queue(as_json: JsonOption = False) -> None:
    """Admin: queue depth and wait, throughput, failure ratio."""
    with Connection.from_environment().client() as client:
        overview = request(client, "GET", "/api/v1/admin/overview", raw=True)
    queue = overview["queue"]
    parked = overview["parked_messages"]
    rows = [
        ("waiting tasks", queue["waiting_tasks"]),
        ("oldest wait", f"{queue['oldest_wait_s']:.1f} s"),
        ("tasks by state", _pairs(queue["tasks_by_state"])),
        ("throughput", f"{overview['throughput']['tasks_per_minute']:.1f} tasks/min"),
        ("service failures (1 h)", f"{overview['failure_ratio']:.0%}"),
        ("input failures (1 h)", f"{overview['input_failure_ratio']:.0%} (users' files)"),
        ("videos", _pairs(overview["videos"]["by_status"])),
        ("undelivered notifications", overview["outbox_pending"]),
        ("parked notifications", f"{parked} (reelwatch outbox --parked)" if parked else "0"),
    ]
    shown = ("queue", "throughput", "failure_ratio", "input_failure_ratio", "videos")
    data = {key: overview[key] for key in shown}
    data |= {key: overview[key] for key in ("outbox_pending", "parked_messages")}
    show_records(data, as_json, rows)


@app.command(rich_help_panel=ADMIN_PANEL)
def capacity(as_json: JsonOption = False) -> None:
    """Admin: what a minute of video costs, the backlog, the wait, the workers needed."""
    with Connection.from_environment().client() as client:
        overview = request(client, "GET", "/api/v1/admin/overview", raw=True)
    estimate = overview["capacity"]
    wait = estimate["expected_wait_s"]
    rows: list[tuple[str, object]] = [
        (
            "cost",
            f"{estimate['cost_per_video_minute_s']:.1f} worker-s per minute of "
            f"video (from {estimate['measured_videos']} recent videos)",
        )
    ]
    cpu, written = estimate["cpu_per_video_minute_s"], estimate["bytes_per_video_minute"]
    if cpu is not None:
        rows.append(("CPU", f"{cpu:.1f} CPU-s per minute of video"))
    if written is not None:
        rows.append(("output", f"{written / 1e6:.1f} MB of renditions per minute of video"))
    rows += [
        ("backlog", f"{estimate['backlog_video_minutes']:.1f} minutes of video"),
        ("live workers", overview["live_workers"]),
        (
            "expected wait",
            "unbounded: no live worker" if wait is None else f"{wait:.0f} s for a new upload",
        ),
        ("workers needed", f"{estimate['workers_needed']} to clear the backlog in 10 min"),
    ]
    data = {"capacity": estimate, "live_workers": overview["live_workers"]}
    show_records(data, as_json, rows)


workers_app = typer.Typer(help="Admin: workers, their state and last heartbeat; drain one.")
app.add_typer(workers_app, name="workers", rich_help_panel=ADMIN_PANEL)


@workers_app.callback(invoke_without_command=True)
def workers(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Workers, their state and last heartbeat."""
    if ctx.invoked_subcommand:
        return
    with Connection.from_environment().client() as client:
        found = request(client, "GET", "/api/v1/admin/overview", raw=True)["workers"]
    rows = [
        (
            worker["id"],
            worker["state"],
            "yes" if worker["alive"] else "NO",
            f"{worker['heartbeat_age_s']:.0f} s ago",
            worker["current_task_id"] or "-",
        )
        for worker in found
    ]
    show_records(found, as_json, rows, ("worker", "state", "alive", "heartbeat", "task"))


@workers_app.command("drain")
def drain(name: str) -> None:
    """Let worker NAME finish its task, claim no more and exit (to take its machine out)."""
    with Connection.from_environment().client() as client:
        request(client, "POST", f"/api/v1/admin/workers/{quote(name, safe='')}/drain")
    console.print(f"{name} is draining: it exits after its current task")


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items())) or "-"


def _video_cells(video: dict[str, Any]) -> list[str]:
    return [
        video["id"],
        video["title"],
        video["status"],
        f"{video['progress']:.0%}",
        str(video["attempts"]),
        f"{video['duration_s']:.1f} s" if video["duration_s"] else "-",
        ",".join(r["name"] for r in video["renditions"]) or "-",
        f"{video['error']['code']}: {video['error']['message']}" if video["error"] else "",
    ]


def _print_videos(videos: list[dict[str, Any]], as_json: bool = False) -> None:
    """Videos as the server sent them (``raw``): JSON, one plain line each off a terminal
    (``printed_plainly``), or a table of text cells."""
    if printed_plainly(videos, as_json, lambda: map(_video_cells, videos)):
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=32)  # ids are for copying: never cut
    table.add_column("title", max_width=40, no_wrap=True, overflow="ellipsis")
    for header in ("status", "progress", "attempts", "duration", "renditions", "error"):
        table.add_column(header)
    for video in videos:
        table.add_row(*(Text(plain_cell(cell)) for cell in _video_cells(video)))
    console.print(table)
    sys.stdout.flush()
