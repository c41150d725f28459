"""A real S3 endpoint on loopback: moto's server in a subprocess, and what the S3 tests
need around it (a bucket, the AWS variables, a proxy that holds a request)."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from instance import free_port, wait_until

ACCESS = {
    "AWS_ACCESS_KEY_ID": "reelwatch-test",
    "AWS_SECRET_ACCESS_KEY": "reelwatch-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    """``python -m moto.server`` on a free loopback port, until ``stop``."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout=60)
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"moto exited:\n{self.log.read_text()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/moto-api/", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def client(self, addressing: str = "path") -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            config=Config(s3={"addressing_style": addressing}),
            **{
                "aws_access_key_id": ACCESS["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": ACCESS["AWS_SECRET_ACCESS_KEY"],
                "region_name": ACCESS["AWS_DEFAULT_REGION"],
            },
        )

    def new_bucket(self) -> str:
        name = f"reelwatch-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        return {**ACCESS, "AWS_ENDPOINT_URL": endpoint or self.url}


def keys(client: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every object under ``prefix``: key to size."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = int(item["Size"])
    return found


def unfinished_uploads(client: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@contextlib.contextmanager
def localhost_subdomains() -> Iterator[None]:
    """Resolve ``*.localhost`` to loopback in this process (RFC 6761: it is loopback;
    systemd-resolved does the same, this machine's resolver does not), so that
    virtual-host addressing (``bucket.localhost:port``) reaches the server."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = resolve
    try:
        yield
    finally:
        socket.getaddrinfo = real


class HoldingProxy:
    """A TCP relay to the S3 server that holds, unanswered, the first PUT whose first
    line contains ``marker``: a worker caught mid-publish, to be killed there."""

    def __init__(self, target_port: int, marker: bytes) -> None:
        self.target_port = target_port
        self.marker = marker
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.held = threading.Event()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        with client, upstream, contextlib.suppress(OSError):  # a side closed or was killed
            while not self._stop.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.5)
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is client and self._hold(data):
                        self._stop.wait()  # never forwarded: the request stays open
                        return
                    (upstream if side is client else client).sendall(data)

    def _hold(self, data: bytes) -> bool:
        first_line = data.split(b"\r\n", 1)[0]
        if (
            self.held.is_set()
            or not first_line.startswith(b"PUT ")
            or self.marker not in first_line
        ):
            return False
        self.held.set()
        return True

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def worker_env(home: Path, endpoint: str, storage_url: str, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REELWATCH_", "AWS_"))},
        **ACCESS,
        "AWS_ENDPOINT_URL": endpoint,
        "REELWATCH_HOME": str(home),
        "REELWATCH_STORAGE_URL": storage_url,
        **extra,
    }
