"""The failure catalog, its documentation and the configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelwatch.config import ConfigError, load_settings
from reelwatch.failures import CATALOG, FailureCode, TaskFailure, render_failure_docs, without_paths

DOCS = Path(__file__).parent.parent / "docs" / "failures.md"


def test_docs_failures_md_is_generated_from_the_catalog() -> None:
    assert DOCS.read_text() == render_failure_docs() + "\n", (
        "docs/failures.md is stale: run `reelwatch failures --output docs/failures.md`"
    )


def test_every_spec_code_is_catalogued_with_the_right_recoverability() -> None:
    permanent = {"input_invalid", "input_no_video", "input_unsupported", "input_too_large"}
    assert {code.value for code in CATALOG} == {code.value for code in FailureCode}
    for code, kind in CATALOG.items():
        assert kind.recoverable == (code.value not in permanent), code
        assert kind.max_attempts == 1 or kind.recoverable


def test_retry_delay_grows_exponentially_within_jitter_and_cap() -> None:
    kind = CATALOG[FailureCode.TIMEOUT]
    for attempt, full in [(1, 60), (2, 120), (3, 240), (10, 600)]:
        delays = [kind.retry_delay(attempt) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full
    assert kind.retry_delay(3, scale=0) == 0


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("REELWATCH_WORKERS", "many", "REELWATCH_WORKERS: "),
        ("REELWATCH_BIND", "8000", "REELWATCH_BIND: must be host:port"),
        ("REELWATCH_ENV", "prod", "REELWATCH_ENV: "),
        ("REELWATCH_LEASE_SECONDS", "0", "REELWATCH_LEASE_SECONDS: "),
        ("REELWATCH_DATABASE_URL", "mysql://x", "REELWATCH_DATABASE_URL: must be"),
        ("REELWATCH_SMTP_URL", "http://mail", "REELWATCH_SMTP_URL: SMTP URL"),
    ],
)
def test_invalid_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)


def test_production_refuses_the_embedded_mail_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELWATCH_ENV", "production")
    with pytest.raises(ConfigError, match="REELWATCH_SMTP_URL"):
        load_settings()


def test_toml_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "reelwatch.toml"
    config.write_text('workers = 5\nbind = "0.0.0.0:9000"\n')
    monkeypatch.setenv("REELWATCH_CONFIG", str(config))
    monkeypatch.setenv("REELWATCH_WORKERS", "3")
    settings = load_settings()
    assert settings.workers == 3 and settings.bind == "0.0.0.0:9000"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "file:/srv/rw/media/videos/abc/original: Invalid data found when processing input",
            "input: Invalid data found when processing input",
        ),
        (
            "Error opening output file:/srv/My Videos/media/videos/x/.720p.mp4.1a2b3c4d.tmp.",
            "Error opening output 720p.mp4.",
        ),
        (
            "FileNotFoundError: [Errno 2] No such file or directory: '/var/rw/videos/x/original'",
            "FileNotFoundError: [Errno 2] No such file or directory: 'input'",
        ),
        ('  File "/opt/app/reelwatch/engine/worker.py", line 12', '  File "worker.py", line 12'),
        # Not paths: codec names, ratios, "N/A", URLs a playlist named.
        ("H.264 / AVC, 30000/1001 fps, N/A, Input/output error", None),
        ("http://127.0.0.1:8080/seg.ts", None),
    ],
)
def test_failure_texts_shown_to_users_name_no_server_path(text: str, shown: str | None) -> None:
    assert without_paths(text) == (shown or text)
    failure = TaskFailure(FailureCode.UNKNOWN, text, detail=text).without_paths()
    assert failure.message == failure.detail == (shown or text)


def test_the_default_frame_limit_follows_the_duration_limit(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).frame_limit == 240 * 4 * 3600
    assert load_settings(home=tmp_path, max_duration_s=60).frame_limit == 240 * 60
    assert load_settings(home=tmp_path, max_frames=1000).frame_limit == 1000
