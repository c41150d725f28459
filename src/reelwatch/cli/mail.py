"""E-mail commands: ``reelwatch mail`` lists or shows what the built-in sink stored,
``reelwatch mock smtp`` runs that sink on its own, and ``reelwatch outbox`` lists the
notifications not sent (``--parked``: those that never can be, with the reason).

Both use ``$REELWATCH_HOME/mail``, where ``reelwatch up`` has its embedded sink store mail
when ``REELWATCH_SMTP_URL`` is unset.
"""

from __future__ import annotations

import signal
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from reelwatch.cli.common import (
    OPERATIONS_PANEL,
    USER_PANEL,
    JsonOption,
    console,
    err,
    operator_database,
    printed_plainly,
    settings_or_exit,
    show_records,
)
from reelwatch.inputs import shown
from reelwatch.notify import outbox
from reelwatch.notify.sink import MailSink, StoredMail, list_mail, read_mail

app = typer.Typer()
mock_app = typer.Typer(help="Stand-ins for outside services, to develop against.")
app.add_typer(mock_app, name="mock", no_args_is_help=True, rich_help_panel=OPERATIONS_PANEL)


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@app.command("mail", rich_help_panel=USER_PANEL)
def mail(
    mail_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="Show this e-mail instead of the list.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the e-mails the built-in mail sink stored, newest first (as the web
    mailbox), or show one."""
    folder = configured_mail_folder()
    if mail_id is None:
        print_mail_list(folder, as_json)
    else:
        print_mail(folder, mail_id, as_json)


@mock_app.command("smtp")
def mock_smtp(
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 picks a free port.")] = 2525,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    folder: Annotated[
        Path | None,
        typer.Option(help="Where to store the mail.", show_default="$REELWATCH_HOME/mail"),
    ] = None,
) -> None:
    """Run the built-in mail sink in the foreground until Ctrl-C or SIGTERM."""
    folder = folder or configured_mail_folder()
    # Blocked before the sink's thread starts (threads inherit the mask), so a stop
    # signal waits for sigwait below instead of interrupting the server mid-message.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    sink = MailSink(folder, host=host, port=port)
    try:
        sink.start()
    except OSError as exc:
        err.print(f"[red]error:[/] cannot listen on {host}:{port}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"mail sink listening on smtp://{host}:{sink.port}, storing in {folder.resolve()}",
        highlight=False,
        soft_wrap=True,  # one line, whatever the width, for logs and for `up`'s output
    )
    try:
        signal.sigwait(STOP_SIGNALS)
    finally:
        sink.stop()


@app.command("outbox", rich_help_panel=OPERATIONS_PANEL)
def outbox_command(
    parked: Annotated[
        bool, typer.Option("--parked", help="Only the messages that can never be delivered.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Operator: the notifications not sent yet: waiting, parked (never deliverable) and
    held by the staging allow-list, each with the reason."""
    with operator_database() as (_, db), db.read() as session:
        messages = outbox.undelivered(session, parked_only=parked, limit=limit)
        data = [
            {
                "key": m.key,
                "state": m.state,
                "recipient": m.recipient,
                "attempts": m.attempts,
                "reason": m.last_error,
            }
            for m in messages
        ]
        # shown(): a stored value may hold control characters; they are printed escaped.
        rows = [
            (shown(m.key), m.state, shown(m.recipient), m.attempts, shown(m.last_error or "-"))
            for m in messages
        ]
    if not messages and not as_json and console.is_terminal:
        console.print("no parked message" if parked else "every notification was sent")
        return
    show_records(data, as_json, rows, ("key", "state", "recipient", "attempts", "reason"))


def configured_mail_folder() -> Path:
    return settings_or_exit().mail_folder


def print_mail_list(folder: Path, as_json: bool = False) -> None:
    mails = list_mail(folder)[::-1]  # newest first, as the web mailbox
    data = [
        {
            "id": stored.id,
            "received_at": stored.received_at.isoformat(),
            "to": stored.recipients,
            "subject": stored.subject,
        }
        for stored in mails
    ]
    rows = [
        (m.id, f"{m.received_at:%Y-%m-%d %H:%M:%S}", ", ".join(m.recipients), m.subject)
        for m in mails
    ]
    if printed_plainly(data, as_json, lambda: rows):
        return
    if not mails:
        console.print(f"no mail in {folder}", highlight=False, soft_wrap=True)
        return
    console.print(mail_table(mails))


def mail_table(mails: list[StoredMail]) -> Table:
    table = Table("id", "received (UTC)", "to", "subject")
    table.columns[0].no_wrap = True  # ids are typed back in: never cut them
    table.columns[1].no_wrap = True
    for stored in mails:
        # Text, not markup: a subject like "[draft] …" must show as it is.
        table.add_row(
            stored.id,
            f"{stored.received_at:%Y-%m-%d %H:%M:%S}",
            Text(", ".join(stored.recipients)),
            Text(stored.subject),
        )
    return table


def print_mail(folder: Path, mail_id: str, as_json: bool = False) -> None:
    try:
        message = read_mail(folder, mail_id)
    except KeyError:
        err.print(
            f"[red]error:[/] no mail {mail_id!r} in {folder}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
    if as_json:
        headers = [[name, str(value)] for name, value in message.items()]
        data = {"id": mail_id, "headers": headers, "text": plain_text_body(message)}
        printed_plainly(data, True, list)
        return
    # console.out: header values and bodies are text, not Rich markup.
    for name, value in message.items():
        console.out(f"{name}: {value}", highlight=False)
    console.out("")
    console.out(plain_text_body(message), highlight=False)


def plain_text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return f"(no text/plain part; the message is {message.get_content_type()})"
    return str(part.get_content())
