"""Hostile requests on a raw socket: bytes exactly as written, in the chunks chosen, and
the answer read even when the server answers before the body is all sent."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class Part:
    name: str
    content: bytes
    filename: str | None = None
    headers: Sequence[bytes] = ()


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def multipart_body(boundary: bytes, parts: Iterable[Part], *, close: bool = True) -> bytes:
    """A multipart/form-data body; ``close=False`` leaves out the closing boundary."""
    out = bytearray()
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out += b"--" + boundary + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n"
        for header in part.headers:
            out += header + b"\r\n"
        out += b"\r\n" + part.content + b"\r\n"
    if close:
        out += b"--" + boundary + b"--\r\n"
    return bytes(out)


def request_head(
    method: str, path: str, headers: dict[str, str], *, content_length: int | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_raw(
    port: int,
    head: bytes,
    chunks: Iterable[bytes],
    *,
    pause_s: float = 0.0,
    timeout_s: float = 20.0,
    half_close: bool = False,
) -> RawAnswer | None:
    """Send ``head`` then each chunk (``pause_s`` apart, so that each reaches the server
    in its own read), stop sending once the server answers, and read the answer; None
    when the server closes the connection without one. ``half_close`` ends the sending
    side after the chunks, as a client that dies mid-upload."""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # answered early (a refusal): the rest would not be read
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            if pause_s:
                time.sleep(pause_s)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return _read_answer(sock, deadline)


def chunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` framed for ``Transfer-Encoding: chunked`` (a body of unknown length)."""
    for chunk in chunks:
        yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    yield b"0\r\n\r\n"


def _read_answer(sock: socket.socket, deadline: float) -> RawAnswer | None:
    data = b""
    while b"\r\n\r\n" not in data:
        received = _receive(sock, deadline)
        if not received:
            if data:
                raise AssertionError(f"the server closed the connection mid-answer: {data!r}")
            return None
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        received = _receive(sock, deadline)
        if not received:
            raise AssertionError(f"the server closed the connection mid-answer: {data!r}")
        body += received
    return RawAnswer(int(status_line.split()[1]), headers, body[:length])


def _receive(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
