"""A throwaway PostgreSQL cluster for the test session, started with initdb and pg_ctl;
and a synchronous standby of it, made with pg_basebackup, for the failover tests.

As root (CI, these machines) the server runs as the unprivileged ``postgres`` user,
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from reelwatch.processes import postgres_tool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class PostgresCluster:
    root: Path
    port: int

    @classmethod
    def start(cls) -> PostgresCluster:
        cluster = cls._empty()
        subprocess.run(
            _as_server_user(
                [
                    postgres_tool("initdb"),
                    "-D",
                    str(cluster.root / "data"),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        cluster.pg_ctl("start")
        return cluster

    @classmethod
    def start_standby(cls, primary: PostgresCluster, name: str = "standby") -> PostgresCluster:
        """A streaming replica of ``primary`` (``pg_basebackup -R``), made synchronous:
        the primary's ``synchronous_standby_names`` names it, so a commit returns only
        once the standby has it. ``name`` is its application_name."""
        cluster = cls._empty()
        source = f"{primary.dsn('postgres')} application_name={name}"
        backup = [postgres_tool("pg_basebackup"), "-D", str(cluster.root / "data")]
        backup += ["-R", "-X", "stream", "-c", "fast", "-d", source]
        subprocess.run(_as_server_user(backup), check=True, capture_output=True)
        cluster.pg_ctl("start")
        primary.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{name}'")
        primary.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while primary.sync_state(name) != "sync":
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not become a synchronous standby")
            time.sleep(0.05)
        return cluster

    @classmethod
    def _empty(cls) -> PostgresCluster:
        root = Path(tempfile.mkdtemp(prefix="reelwatch-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        return cls(root, _free_port())

    def execute(self, statement: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(statement)

    def sync_state(self, standby: str) -> str | None:
        """How the primary replicates to ``standby``: sync, async, or None (not at all)."""
        query = "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            row = connection.execute(query, (standby,)).fetchone()
        return str(row[0]) if row else None

    def kill(self) -> None:
        """Stop the server at once, as a crash does (its files stay, unlike ``stop``)."""
        self.pg_ctl("stop", "-m", "immediate")

    def promote(self) -> None:
        """Make a standby the primary; returns once it accepts writes."""
        self.pg_ctl("promote")

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=300"
        )
        command = [postgres_tool("pg_ctl"), "-D", str(self.root / "data"), "-o", options]
        command += ["-l", str(self.root / "server.log"), "-w", *extra, action]
        subprocess.run(_as_server_user(command), check=True, capture_output=True)

    def restart(self) -> None:
        """Restart the server, dropping every connection (as a failover or upgrade does)."""
        self.pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                [
                    postgres_tool("pg_ctl"),
                    "-D",
                    str(self.root / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ]
            ),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"
