"""A throwaway PostgreSQL cluster for the test session, started with initdb and pg_ctl.

As root (CI, these machines) the server runs as the unprivileged ``postgres`` user,
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
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
        root = Path(tempfile.mkdtemp(prefix="reelwatch-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        cluster = cls(root, _free_port())
        subprocess.run(
            _as_server_user(
                [
                    postgres_tool("initdb"),
                    "-D",
                    str(root / "data"),
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
