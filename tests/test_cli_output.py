"""Stored text cannot drive the terminal through the CLI: escape sequences, bidi overrides
and Rich markup in titles, file names, notices and mail print inert and literal."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from instance import LiveInstance, free_port, upload
from reelwatch.cli.main import app
from reelwatch.config import load_settings
from reelwatch.db.models import Video
from samples import make_video

runner = CliRunner()

# Retitles the terminal, clears the screen, reverses the line, styles and links by markup.
HOSTILE = "\x1b]0;owned\x07[bold red]boom[/] \x1b[2J\x9b31m \u202egnp.exe [link=http://evil.example]x[/link]"
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e")


def assert_inert(output: str, *, whole: bool = True) -> None:
    for character in UNSAFE:
        assert character not in output, repr(character)
    assert "[bold red]boom[/]" in output  # markup shows as typed
    if whole:  # not cut to a column's width
        assert "[link=http://evil.example]x[/link]" in output


def test_titles_and_file_names_from_the_server_print_inert(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}")
    instance = LiveInstance(settings, workers=0).start()
    try:
        client = instance.client()
        clip = make_video(tmp_path / "clip.mp4", duration_s=0.5, width=64, height=48)
        video = upload(client, clip, title="clip")
        # The API cleans titles as they come in (reelwatch.inputs); one stored before
        # that, or written by hand, must print inert all the same.
        with instance.db.write() as session:
            session.execute(update(Video).where(Video.id == video["id"]).values(title=HOSTILE))
        env = {
            "REELWATCH_URL": instance.url,
            "REELWATCH_TOKEN": instance.token("alice@example.com"),
            "COLUMNS": "400",
        }
        for command in (["status"], ["status", video["id"]]):
            result = runner.invoke(app, command, env=env)
            assert result.exit_code == 0, result.output
            assert_inert(result.output, whole=len(command) == 2)
        missing = runner.invoke(app, ["retry", video["id"]], env=env)  # 409, message echoed
        assert missing.exit_code == 1
        assert "\x1b" not in missing.output
    finally:
        instance.stop()


def test_notices_and_stored_mail_print_inert(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"REELWATCH_HOME": str(home), "COLUMNS": "400"}
    opened = runner.invoke(app, ["incidents", "open", "--message", HOSTILE], env=env)
    assert opened.exit_code == 0, opened.output
    listed = runner.invoke(app, ["incidents", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert_inert(listed.output)

    (home / "mail").mkdir(parents=True)
    subject = HOSTILE.replace("\x9b", "")  # a header is ASCII but for its encoded words
    (home / "mail" / "hostile.eml").write_text(
        f"From: a@example.com\nTo: b@example.com\nSubject: {subject}\n\nbody {HOSTILE}\n"
    )
    for command in (["mail"], ["mail", "hostile"]):
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 0, result.output
        assert_inert(result.output)
