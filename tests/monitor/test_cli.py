"""The admin's monitor commands against a live instance: checks, activity, silences."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from instance import LiveInstance, free_port
from reelwatch.cli.main import app
from reelwatch.cli.monitoring import parse_duration
from reelwatch.config import load_settings
from reelwatch.monitor.service import Monitor


def test_checks_activity_and_silences_through_the_cli(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        ping_interval_seconds=0,
        probe_interval_seconds=0,
    )
    instance = LiveInstance(settings, workers=1).start()
    try:
        Monitor(instance.db, settings).run_round()
        env = {
            "REELWATCH_URL": instance.url,
            "REELWATCH_TOKEN": instance.token("root@example.com", admin=True),
            "COLUMNS": "200",
        }
        runner = CliRunner()

        checks = runner.invoke(app, ["checks"], env=env)
        assert checks.exit_code == 0, checks.output
        assert "database" in checks.output and "storage" in checks.output
        assert "smtp" in checks.output and "no SMTP server is configured" in checks.output

        silenced = runner.invoke(
            app, ["alerts", "silence", "check:smtp", "--for", "2h", "--comment", "no mail"], env=env
        )
        assert silenced.exit_code == 0, silenced.output
        assert "check:smtp is silent until" in silenced.output
        listed = runner.invoke(app, ["alerts"], env=env)
        # Not a terminal: one tab-separated record a line.
        assert "silence\t1\tcheck:smtp\t" in listed.output and "no mail" in listed.output
        assert runner.invoke(app, ["alerts", "unsilence", "1"], env=env).exit_code == 0
        assert "silence\t1" not in runner.invoke(app, ["alerts"], env=env).output
        again = runner.invoke(app, ["alerts", "unsilence", "1"], env=env)
        assert again.exit_code == 1 and "no running silence 1" in again.output

        user = instance.client("bob@example.com")
        assert user.get("/api/v1/admin/alerts").status_code == 403, "admins only"
        activity = runner.invoke(app, ["activity"], env=env)
        assert activity.exit_code == 0, activity.output
    finally:
        instance.stop()


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5d", 129600)]
)
def test_durations_read_like_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_a_duration_without_unit_is_refused() -> None:
    result = CliRunner().invoke(app, ["alerts", "silence", "x", "--for", "2"])
    assert result.exit_code == 2 and "such as 30m, 2h or 1d" in result.output
