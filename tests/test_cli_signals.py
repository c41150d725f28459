"""The command line for people and for scripts: ``--json`` on every reading command,
plain tab-separated rows when stdout is not a terminal, short video ids, ``--version``,
and failures to connect told in words."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from instance import LiveInstance, free_port, upload, wait_for_outcome
from reelwatch.cli.main import app
from reelwatch.config import load_settings
from reelwatch.db.models import User
from reelwatch.notify.sink import MailSink
from reelwatch.web.mailbox import visible_mail
from samples import make_video

runner = CliRunner()

READING_COMMANDS = [
    ["status"],
    ["queue"],
    ["workers"],
    ["capacity"],
    ["checks"],
    ["activity"],
    ["alerts"],
    ["maintenance", "list"],
    ["incidents", "list"],
    ["outbox"],
    ["mail"],
    ["doctor"],
]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveInstance]:
    home = tmp_path_factory.mktemp("home")
    settings = load_settings(home=home, bind=f"127.0.0.1:{free_port()}")
    live = LiveInstance(settings, workers=0).start()  # videos wait in the queue
    yield live
    live.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    return make_video(folder / "clip.mp4", duration_s=0.2, width=64, height=48)


def environment(instance: LiveInstance) -> dict[str, str]:
    return {
        "REELWATCH_URL": instance.url,
        "REELWATCH_TOKEN": instance.token("root@example.com", admin=True),
        "REELWATCH_HOME": str(instance.settings.home),
        "COLUMNS": "80",
    }


def run(instance: LiveInstance, *arguments: str) -> Any:
    return runner.invoke(app, list(arguments), env=environment(instance))


def test_every_reading_command_prints_json_and_plain_rows(
    instance: LiveInstance, clip: Path
) -> None:
    admin = instance.client("root@example.com", admin=True)
    titles = ["first \x1b[2Jclip", "second clip"]
    videos = [upload(admin, clip, title=title) for title in titles]
    for command in READING_COMMANDS:
        as_json = run(instance, *command, "--json")
        assert as_json.exit_code in (0, 1), (command, as_json.output)  # doctor: 1 on a problem
        json.loads(as_json.output)  # one document, nothing around it
        plain = run(instance, *command)
        assert plain.exit_code == as_json.exit_code, (command, plain.output)
        assert "\x1b" not in plain.output and "─" not in plain.output, command  # no table
        for line in plain.output.splitlines():
            assert "\t" in line, (command, line)
    listed = run(instance, "status", "--json")
    assert {v["id"] for v in json.loads(listed.output)} >= {v["id"] for v in videos}
    lines = run(instance, "status").output.splitlines()
    rows = {line.split("\t")[0]: line.split("\t") for line in lines}
    for video in videos:  # one record a line, whatever the title holds
        assert rows[video["id"]][2] == "queued"
    assert rows[videos[0]["id"]][1] == videos[0]["title"]  # as stored, cleaned on upload


def test_video_ids_are_accepted_by_unique_prefix(instance: LiveInstance, clip: Path) -> None:
    client = instance.client("prefix@example.com")
    env = {**environment(instance), "REELWATCH_TOKEN": instance.token("prefix@example.com")}
    by_first_digit: dict[str, list[str]] = {}
    while not any(len(ids) > 1 for ids in by_first_digit.values()):  # 17 at most
        video = upload(client, clip)
        by_first_digit.setdefault(video["id"][0], []).append(video["id"])
    digit, twins = next((d, ids) for d, ids in by_first_digit.items() if len(ids) > 1)

    ambiguous = runner.invoke(app, ["events", digit], env=env)
    assert ambiguous.exit_code == 1
    assert "ambiguous" in ambiguous.output and all(i in ambiguous.output for i in twins)

    unique = twins[0][:12]
    shown = runner.invoke(app, ["status", unique, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["id"] == twins[0]
    timeline = runner.invoke(app, ["events", unique, "--json"], env=env)
    assert json.loads(timeline.output)[0]["kind"] == "workflow_started"

    missing = runner.invoke(app, ["events", "f" * 31], env=env)
    if not any(i.startswith("f" * 31) for ids in by_first_digit.values() for i in ids):
        assert missing.exit_code == 1 and "no video of yours" in missing.output
    for bad in ("G", "3fa2%", "0" * 33, "\x00"):  # the API takes 1 to 32 lowercase hex digits
        refused = client.get("/api/v1/videos", params={"id_prefix": bad})
        assert refused.status_code in (400, 422), (bad, refused.text)
    other = runner.invoke(app, ["status", twins[0][:12]], env=environment(instance))
    assert other.exit_code == 0  # an admin sees every video, so finds it too


def test_retry_of_an_input_failure_prints_the_reason(instance: LiveInstance, clip: Path) -> None:
    """Through a worker of its own: the text file fails as input_invalid."""
    client = instance.client("retry@example.com")
    env = {**environment(instance), "REELWATCH_TOKEN": instance.token("retry@example.com")}
    text = clip.with_name("notes.txt")
    text.write_text("not a video\n" * 100)
    video = upload(client, text)
    instance.add_worker()
    try:
        assert wait_for_outcome(client, video["id"])["status"] == "failed"
    finally:
        instance.stop_processing()
    refused = runner.invoke(app, ["retry", video["id"][:10]], env=env)
    assert refused.exit_code == 1
    assert "the file itself is the problem: upload a new file" in refused.output
    bulk = run(instance, "retry", "--code", "input_invalid")
    assert bulk.exit_code == 1 and "upload a new file" in bulk.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith(f"reelwatch {version('reelwatch')}")


def test_connection_refused_and_a_refused_token_are_told_in_words(
    instance: LiveInstance,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    refused = runner.invoke(app, ["status"], env={"REELWATCH_URL": nowhere, "REELWATCH_TOKEN": "x"})
    assert refused.exit_code == 1
    assert f"cannot reach reelwatch at {nowhere}" in refused.output
    assert "reelwatch up" in refused.output and "REELWATCH_URL" in refused.output
    wrong = runner.invoke(app, ["queue"], env={**environment(instance), "REELWATCH_TOKEN": "nope"})
    assert wrong.exit_code == 1
    assert "the token was refused" in wrong.output and "REELWATCH_TOKEN" in wrong.output


def test_mail_lists_newest_first_as_the_web_mailbox(tmp_path: Path, sink: MailSink) -> None:
    for subject in ("older", "newer"):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            "a@example.com",
            "b@example.com",
            subject,
        )
        message.set_content("hello")
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            smtp.send_message(message)
    env = {"REELWATCH_HOME": str(tmp_path)}  # the sink keeps mail in tmp_path/mail
    listed = json.loads(runner.invoke(app, ["mail", "--json"], env=env).output)
    assert [m["subject"] for m in listed] == ["newer", "older"]
    web = visible_mail(sink.folder, User(email="admin@example.com", is_admin=True))
    assert [m["id"] for m in listed] == [m.id for m in web]
    plain = runner.invoke(app, ["mail"], env=env).output.splitlines()
    assert [line.split("\t")[3] for line in plain] == ["newer", "older"]
