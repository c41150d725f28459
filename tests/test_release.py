"""deploy/release.sh: a wheel of this tree installed as a release into a throwaway root,
then a later release (the same tree, another version, with one more migration that adds a
column) installed beside it: it migrates a database holding data, becomes current, and
one command rolls back to the first, which runs on the upgraded schema with every row
kept. On SQLite and PostgreSQL. docs/operations.md, "Releases, upgrade and rollback"."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from instance import free_port, upload, wait_until
from samples import make_video

CHECKOUT = Path(__file__).resolve().parent.parent
RELEASE = CHECKOUT / "deploy" / "release.sh"
LATER_VERSION, LATER_COMMIT = "99.0.0", "0feedbeef0ca"
LATER = f"{LATER_VERSION}-{LATER_COMMIT}"
VERSIONS = CHECKOUT / "src" / "reelwatch" / "db" / "migrations" / "versions"
# This tree's newest revision, and the one a later release adds after it.
HEAD = max(path.name[:4] for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
LATER_HEAD = f"{int(HEAD) + 1:04d}"
LATER_MIGRATION = f'''"""test: a later release's expand-only migration

Revision ID: {LATER_HEAD}
Revises: {HEAD}
"""

import sqlalchemy as sa
from alembic import op

revision = "{LATER_HEAD}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("later_release_note", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("later_release_note")
'''


def build_wheel(source: Path, out: Path, commit: str | None = None) -> Path:
    """``pip wheel`` as an operator would; offline (--no-build-isolation) when this Python
    can build wheels itself, else in pip's isolated environment."""
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("wheel") else []
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
    if commit:
        env["REELWATCH_BUILD_COMMIT"] = commit
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", out, source],
        env=env,
        check=True,
        timeout=180,
    )
    return next(out.glob("reelwatch-*.whl"))


def later_tree(folder: Path) -> Path:
    """This tree as the next release: another version, one more (expand-only) migration."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "node_modules")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(CHECKOUT / name, folder / name)
    shutil.copytree(CHECKOUT / "src", folder / "src", ignore=skip)
    project = folder / "pyproject.toml"
    text, found = re.subn(
        r'(?m)^version = ".*"$', f'version = "{LATER_VERSION}"', project.read_text()
    )
    assert found == 1
    project.write_text(text)
    versions = folder / "src/reelwatch/db/migrations/versions"
    (versions / f"{LATER_HEAD}_later_release_note.py").write_text(LATER_MIGRATION)
    return folder


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(this tree's wheel, the later release's wheel), built once."""
    first = build_wheel(CHECKOUT, tmp_path_factory.mktemp("first"))
    later = later_tree(tmp_path_factory.mktemp("later"))
    return first, build_wheel(later, tmp_path_factory.mktemp("later-wheel"), LATER_COMMIT)


class Machine:
    """A throwaway root: /opt/reelwatch's releases and /etc/reelwatch/reelwatch.env."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.home = root / "var/lib/reelwatch"
        self.home.mkdir(parents=True)
        (root / "etc/reelwatch").mkdir(parents=True)
        (root / "etc/reelwatch/reelwatch.env").write_text(
            f"REELWATCH_DATABASE_URL={database_url}\n"
        )
        self.restarts = root / "restarts.log"
        self.hook = root / "restart-roles"
        self.hook.write_text(f'#!/bin/sh\necho "$1" >>{self.restarts}\n')
        self.hook.chmod(0o755)
        self.port = free_port()
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(root),
            "REELWATCH_HOME": str(self.home),
            "REELWATCH_DATABASE_URL": database_url,
            "REELWATCH_BIND": f"127.0.0.1:{self.port}",
            "REELWATCH_URL": f"http://127.0.0.1:{self.port}",
        }

    def release(self, *args: str) -> str:
        command = [str(RELEASE), *args, "--root", str(self.root)]
        if args[0] in {"install", "switch", "rollback"}:
            command += ["--restart-with", str(self.hook)]
        if args[0] in {"install", "prepare"}:
            command.append("--system-deps")
        # Its commands find the database through the environment file alone.
        env = {"PATH": os.environ["PATH"], "HOME": str(self.root)}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr

    def reelwatch(self, *args: str, token: str = "") -> str:
        """A command of the current release, as the services run it (in its home): its
        standard output."""
        result = subprocess.run(
            [str(self.root / "opt/reelwatch/current/bin/reelwatch"), *args],
            env={**self.env, "REELWATCH_TOKEN": token, "COLUMNS": "200"},
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    @contextmanager
    def server(self) -> Iterator[Callable[[str], httpx.Client]]:
        """The current release's server, started as `up` would (bootstrap: migrations).
        Its log is printed when the test fails (pytest shows what a test printed)."""
        log = self.root / "server.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [str(self.root / "opt/reelwatch/current/bin/reelwatch"), "server"],
                env=self.env,
                cwd=self.home,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: self.answers() or process.poll() is not None, timeout=30)
            assert process.poll() is None, "the server ended"
            with httpx.Client(base_url=self.env["REELWATCH_URL"]) as client:
                yield lambda token: with_token(client, token)
        except BaseException:
            print(log.read_text(errors="replace"))
            raise
        finally:
            process.terminate()
            process.wait(timeout=30)

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.env['REELWATCH_URL']}/healthz").status_code == 200
        except httpx.TransportError:
            return False


def with_token(client: httpx.Client, token: str) -> httpx.Client:
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def schema(machine: Machine) -> str:
    doctor = subprocess.run(
        [str(machine.root / "opt/reelwatch/current/bin/reelwatch"), "doctor"],
        env={**machine.env, "COLUMNS": "200"},
        cwd=machine.home,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return next(line for line in doctor.splitlines() if line.strip().startswith("schema"))


@pytest.mark.slow
def test_upgrade_then_roll_back_keeps_the_data(
    wheels: tuple[Path, Path], database_url: str, tmp_path: Path
) -> None:
    first, later = wheels
    machine = Machine(tmp_path / "root", database_url)
    clip = make_video(tmp_path / "clip.mp4", duration_s=0.5, width=160, height=120)

    said = machine.release("install", str(first))
    first_release = said.split("current: ")[1].split()[0]
    # VERSION-COMMIT: git's; with changes in the tree, or without git, + the wheel's digest
    commit = r"([0-9a-f]{12}|[0-9a-f]{12}-dirty-[0-9a-f]{8}|unknown-[0-9a-f]{8})"
    assert re.fullmatch(f"{re.escape(version('reelwatch'))}-{commit}", first_release)
    token = machine.reelwatch("users", "add", "ops@example.com", "--admin").split()[-1]
    with machine.server() as api:
        upload(api(token), clip, "before the upgrade")

    said = machine.release("install", str(later))
    assert f"current: {LATER} (previous: {first_release})" in said
    assert machine.reelwatch("--version") == f"reelwatch {LATER_VERSION} ({LATER_COMMIT})\n"
    with machine.server() as api:
        videos = api(token).get("/api/v1/videos").json()["videos"]
        assert [video["title"] for video in videos] == ["before the upgrade"]
        upload(api(token), clip, "after the upgrade")

    said = machine.release("rollback")
    assert f"current: {first_release} (previous: {LATER})" in said
    # The first release on the later schema: it leaves it as it is, every row there.
    assert f"at revision {LATER_HEAD}, a later release's (this one: {HEAD})" in schema(machine)
    with machine.server():  # `server` migrates first: nothing to do
        listed = machine.reelwatch("status", token=token)
    assert "before the upgrade" in listed and "after the upgrade" in listed

    releases = machine.release("list").splitlines()
    assert [line.split()[:2] for line in releases[1:]] == [
        ["current", first_release],
        ["previous", LATER],
    ]
    assert HEAD in releases[1] and LATER_HEAD in releases[2]
    restarted = machine.restarts.read_text().split()
    assert restarted == [first_release, LATER, first_release]


@pytest.mark.parametrize(
    ("args", "says", "code"),
    [
        (["rollback"], "no previous release to go back to", 1),
        (["switch", "0.1.0-nope"], "no release 0.1.0-nope", 1),
        (["switch", "../../etc"], "no release ../../etc", 1),
        (["prepare", "missing.whl"], "no wheel missing.whl", 1),
        (["upgrade"], "usage:", 2),
        (["switch"], "usage:", 2),
    ],
)
def test_refusals_are_told_in_words(tmp_path: Path, args: list[str], says: str, code: int) -> None:
    result = subprocess.run(
        [str(RELEASE), *args, "--root", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (code, "")
    assert says in result.stderr
