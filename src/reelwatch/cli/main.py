"""The ``reelwatch`` command: roles (up, server, worker), operator and client commands.

Operator commands (``db``, ``users``) work directly on this host's database with the
server's configuration; client commands (``upload``, ``status``, ``events``, ``retry``)
talk to a server through ``REELWATCH_URL`` and ``REELWATCH_TOKEN``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Annotated

import typer

from reelwatch.accounts import UserExists, create_user, set_password
from reelwatch.cli import client, demo, mail, monitoring, notices, operations
from reelwatch.cli.common import (
    OPERATIONS_PANEL,
    ROLES_PANEL,
    console,
    err,
    literal,
    settings_or_exit,
)
from reelwatch.failures import render_failure_docs
from reelwatch.logs import configure_logging
from reelwatch.permissions import restrict_new_files

app = typer.Typer(
    name="reelwatch",
    help="A video processing service that never loses a video and always says what happened.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db", rich_help_panel=OPERATIONS_PANEL)
app.add_typer(users_app, name="users", rich_help_panel=OPERATIONS_PANEL)
app.add_typer(client.app)
app.add_typer(monitoring.app)
app.add_typer(notices.app)
app.add_typer(operations.app)
app.add_typer(mail.app)
app.add_typer(demo.app)


def version_text() -> str:
    """The installed version and the commit it was built from: the one setup.py wrote
    into the wheel, else (a checkout, an editable install) git's."""
    try:
        text = installed_version("reelwatch")
    except PackageNotFoundError:
        text = "unknown"
    commit = built_commit() or checkout_commit()
    return f"reelwatch {text} ({commit})" if commit else f"reelwatch {text}"


def built_commit() -> str:
    try:
        build = importlib.import_module("reelwatch._build")
    except ImportError:
        return ""
    return str(getattr(build, "COMMIT", ""))


def checkout_commit() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude=*"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def show_version(wanted: bool) -> None:
    if wanted:
        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """A video processing service that never loses a video and always says what happened."""
    # Before any command writes to REELWATCH_HOME: 0600 files, 0700 folders.
    restrict_new_files()


@app.command(rich_help_panel=ROLES_PANEL)
def up(
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Everything real but the transcoder: a stand-in that needs no ffmpeg "
            "(REELWATCH_SIMULATE; its speed: REELWATCH_SIMULATE_SPEED).",
        ),
    ] = False,
    fail: Annotated[
        list[str] | None,
        typer.Option(
            "--fail",
            metavar="CODE:RATE",
            help="With --simulate: fail this share of attempts with a failure code "
            "(reelwatch failures), e.g. --fail ffmpeg_crashed:0.2; repeatable.",
        ),
    ] = None,
) -> None:
    """Run everything on this machine: API, supervised workers (REELWATCH_WORKERS),
    the monitor, and (without REELWATCH_SMTP_URL) the built-in mail sink."""
    from reelwatch.runtime.bootstrap import prepare_instance
    from reelwatch.runtime.supervisor import run_supervisor

    if simulate or fail:
        simulate_children(simulate, fail or [])
    settings = settings_or_exit()
    configure_logging(settings)
    prepare_instance(settings, console)
    mode = ", simulated transcoder" if settings.simulate else ""
    console.print(
        f"reelwatch ({settings.env}{mode}) on [bold]http://{settings.bind}[/] with "
        f"{settings.workers} workers; data in {settings.home.resolve()}"
    )
    if settings.simulate and settings.simulate_failures:
        console.print(f"injected failures: {literal(settings.simulate_failures)}")
    if settings.smtp_url is None:
        console.print("e-mail goes to the built-in sink: read it with [bold]reelwatch mail[/]")
    raise typer.Exit(run_supervisor(settings))


def simulate_children(simulate: bool, fail: list[str]) -> None:
    """Set simulation mode in this process's environment, which ``up``'s children
    inherit; a bad ``--fail`` stops here with one line naming it (exit 2)."""
    from reelwatch.simulation import format_failure_rates, parse_failure_rate

    try:
        if not simulate:
            raise ValueError("only with --simulate")
        rates = dict(parse_failure_rate(pair) for pair in fail)
    except ValueError as exc:
        err.print(f"[red]error:[/] --fail: {literal(exc)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    os.environ["REELWATCH_SIMULATE"] = "true"
    if rates:
        os.environ["REELWATCH_SIMULATE_FAILURES"] = format_failure_rates(rates)


@app.command(rich_help_panel=ROLES_PANEL)
def server(
    bootstrap: Annotated[bool, typer.Option(help="Migrate and create the admin first.")] = True,
) -> None:
    """Run the HTTP API server, which also delivers the outbox (any number may share one
    PostgreSQL)."""
    from reelwatch.runtime.bootstrap import prepare_instance
    from reelwatch.runtime.server import run_server

    settings = settings_or_exit()
    configure_logging(settings)
    if bootstrap:
        prepare_instance(settings, console)
    run_server(settings)


@app.command(rich_help_panel=ROLES_PANEL)
def worker(
    name: Annotated[str | None, typer.Option(help="Worker id (default host:pid:random).")] = None,
    queues: Annotated[
        str,
        typer.Option(
            "--queues",
            "--tags",
            help="Comma-separated queues (tags) to take tasks from; REELWATCH_TASK_QUEUES "
            "routes task kinds to them (transcode=gpu).",
        ),
    ] = "default",
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Run this many worker processes, kept alive.")
    ] = 1,
    autoscale: Annotated[
        str | None,
        typer.Option(help="MIN,MAX: grow and shrink the worker processes with the queue."),
    ] = None,
) -> None:
    """Run worker processes that claim and run tasks (one, unless --concurrency/--autoscale)."""
    from reelwatch.runtime.autoscale import Autoscaler, parse_bounds
    from reelwatch.runtime.supervisor import run_supervisor
    from reelwatch.runtime.worker import run_worker

    settings = settings_or_exit()
    configure_logging(settings)
    wanted = tuple(q.strip() for q in queues.split(",") if q.strip())
    if concurrency == 1 and autoscale is None:
        run_worker(settings, name=name, queues=wanted)
        return
    try:
        scaler = Autoscaler(*parse_bounds(autoscale)) if autoscale else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    raise typer.Exit(
        run_supervisor(
            settings, services=False, workers=concurrency, queues=wanted, autoscaler=scaler
        )
    )


@app.command(rich_help_panel=ROLES_PANEL)
def monitor(
    name: Annotated[str | None, typer.Option(help="Monitor id (default host:pid).")] = None,
) -> None:
    """Run a monitor: checks, alert rules, probes and lease rescue, on the elected one;
    every monitor also delivers the outbox."""
    from reelwatch.runtime.monitor import run_monitor

    settings = settings_or_exit()
    configure_logging(settings)
    run_monitor(settings, name=name)


@app.command(rich_help_panel=ROLES_PANEL)
def watchdog(
    url: str,
    alert_urls: Annotated[
        str, typer.Option(envvar="REELWATCH_ALERT_URLS", help="Apprise URLs, space separated.")
    ],
    interval: Annotated[float, typer.Option(help="Seconds between checks.")] = 15.0,
    failures: Annotated[int, typer.Option(help="Failed checks in a row that mean down.")] = 3,
) -> None:
    """Poll URL/readyz from another machine; alert when the service is down and up again."""
    import signal
    import threading

    from reelwatch.monitor.watchdog import Watchdog
    from reelwatch.notify.alerts import parse_alert_urls

    configure_logging()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Watchdog(
        url.rstrip("/"),
        parse_alert_urls(alert_urls),
        interval_s=interval,
        failures_before_down=failures,
    ).run(stop)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (Alembic) up to the latest."""
    from reelwatch.db.migrate import upgrade_database

    settings = settings_or_exit()
    if upgrade_database(settings.resolved_database_url):
        console.print("database is up to date")
    else:
        console.print("database left as it is: a later release migrated it")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="The revision to go back to, e.g. 0009.")],
) -> None:
    """Undo the migrations after REVISION (their downgrade steps drop what they added)."""
    from reelwatch.db.migrate import downgrade_database, is_known_revision

    settings = settings_or_exit()
    if not is_known_revision(revision):
        err.print(f"[red]error:[/] no migration {literal(revision)} in this release")
        raise typer.Exit(2)
    downgrade_database(settings.resolved_database_url, revision)
    console.print(f"database is at revision {literal(revision)}")


@users_app.command("add")
def users_add(
    email: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make an admin.")] = False,
    password: Annotated[
        bool, typer.Option("--password", help="Ask for a password for the web sign-in.")
    ] = False,
) -> None:
    """Create a user and print their API token (shown once)."""
    from reelwatch.database import Database
    from reelwatch.db.migrate import upgrade_database

    settings = settings_or_exit()
    secret = typer.prompt("password", hide_input=True, confirmation_prompt=True) if password else ""
    upgrade_database(settings.resolved_database_url)
    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        with db.write() as session:
            user = create_user(session, email, is_admin=admin)
            if password:
                set_password(session, user.email, secret)
    except (UserExists, ValueError) as exc:
        err.print(f"[red]error:[/] {literal(exc)}")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    err.print(f"created {'admin' if admin else 'user'} {user.email}; their API token:")
    print(user.token)


@app.command(rich_help_panel=OPERATIONS_PANEL)
def failures(
    output: Annotated[Path | None, typer.Option(help="Write to this file instead.")] = None,
) -> None:
    """Print the failure catalog (the source of docs/failures.md)."""
    text = render_failure_docs()
    if output:
        output.write_text(text + "\n")
    else:
        print(text)
