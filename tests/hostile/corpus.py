"""The hostile-input corpus: each case is one request, sent on a raw socket exactly as
written, and what the service must answer. ``status`` None: the server may close the
connection without an answer (the client did not finish its request)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from hostile.support import Part, multipart_body

BOUNDARY = b"hostileboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY.decode()}"
JSON = "application/json"
MB = 1 << 20


@dataclass(frozen=True, repr=False)
class Case:
    name: str
    method: str
    path: str
    status: int | None
    code: str | None  # the error code of a JSON answer; None: not checked (an HTML page)
    body: bytes | Callable[[], Iterable[bytes]] = b""
    headers: dict[str, str] = field(default_factory=dict)
    auth: str | None = "user"  # "user", "admin" or None
    content_length: int | None = -1  # -1: the body's true length; None: chunked
    half_close: bool = False
    created: int = 0  # videos the request may create
    filename: str | None = None  # the filename the created video shows
    memory_mb: int | None = None  # the RSS growth it may cause

    def __repr__(self) -> str:  # not the megabytes of some bodies
        return f"Case({self.name!r})"


def upload(parts: list[Part], *, close: bool = True) -> bytes:
    return multipart_body(BOUNDARY, parts, close=close)


def video(name: str = "clip.mp4", content: bytes = b"\x00\x00\x00\x18ftypmp42") -> Part:
    return Part("file", content, filename=name)


def many_fields(count: int, size: int) -> Callable[[], Iterator[bytes]]:
    """``count`` fields of ``size`` bytes beside a small file, made as they are sent."""

    def chunks() -> Iterator[bytes]:
        yield upload([video()], close=False)
        value = b"v" * size
        for index in range(count):
            yield upload([Part(f"field{index}", value)], close=False)
        yield b"--" + BOUNDARY + b"--\r\n"

    return chunks


def oversized_file(size: int) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        head = upload([video(content=b"")], close=False)
        yield head[: -len(b"\r\n")]
        for _ in range(size // 65536):
            yield b"\x00" * 65536
        yield b"\r\n--" + BOUNDARY + b"--\r\n"

    return chunks


def up(
    name: str,
    body: bytes | Callable[[], Iterable[bytes]],
    status: int | None,
    code: str | None,
    *,
    content_length: int | None = -1,
    half_close: bool = False,
    created: int = 0,
    filename: str | None = None,
    memory_mb: int | None = None,
    auth: str | None = "user",
) -> Case:
    """An upload: a POST of ``body`` as multipart/form-data."""
    headers = {"Content-Type": MULTIPART}
    return Case(
        name, "POST", "/api/v1/videos", status, code, body, headers, auth,
        content_length, half_close, created, filename, memory_mb,
    )  # fmt: skip


WELL_FORMED = upload([Part("title", b"a title"), video()])
TRUNCATED = upload([Part("title", b"a title"), video()], close=False)

UPLOADS = [
    up(
        "CR inside a part header",
        upload([video("a\rb.mp4")]),
        400,
        "bad_request",
    ),
    up(
        "traversal filename",
        upload([video("../../etc/passwd")]),
        201,
        None,
        created=1,
        filename="passwd",
    ),
    up(
        "absolute filename", upload([video("/etc/passwd")]), 201, None, created=1, filename="passwd"
    ),
    up(
        "backslash filename",
        upload([video("..\\..\\windows\\win.ini")]),
        201,
        None,
        created=1,
        filename="win.ini",
    ),
    up(
        "NUL in filename",
        upload([video("a\x00bc.mp4")]),
        201,
        None,
        created=1,
        filename="abc.mp4",
    ),
    up("empty file", upload([video(content=b"")]), 201, None, created=1),
    up("NUL in title (dropped)", upload([Part("title", b"a\x00b"), video()]), 201, None, created=1),
    up(
        "U+2028 and CRLF in title",
        upload([Part("title", "a\u2028b\r\nc".encode()), video()]),
        201,
        None,
        created=1,
    ),
    up(
        "unknown fields are not kept",
        upload([Part("x", b"y" * 4000), video()]),
        201,
        None,
        created=1,
    ),
    up("truncated body", TRUNCATED, 400, "bad_request"),
    up("truncated body, chunked", TRUNCATED, 400, "bad_request", content_length=None),
    up("body cut inside the file", WELL_FORMED[:-40], 400, "bad_request"),
    up(
        "garbage instead of a boundary",
        b"--" + BOUNDARY + b"\r\nno colon here\r\n\r\nx",
        400,
        "bad_request",
    ),
    up("wrong boundary", upload([video()]).replace(BOUNDARY, b"otherboundary"), 400, "bad_request"),
    up("not multipart at all", b"\x00\xff" * 100, 400, "bad_request"),
    up("no file field", upload([Part("title", b"t")]), 400, "bad_request"),
    up("two file parts", upload([video(), video("b.mp4")]), 400, "bad_request"),
    up("field too long", upload([Part("title", b"t" * 5000), video()]), 413, "too_large"),
    up(
        "many fields (40,000 of 3.9 KB)",
        many_fields(40_000, 3900),
        413,
        "too_large",
        content_length=None,
        memory_mb=30,
    ),
    up(
        "17 small fields",
        upload([*(Part(f"f{i}", b"x") for i in range(16)), video()]),
        413,
        "too_large",
    ),
    up(
        "form bytes over 64 KiB in 15 fields",
        upload([*(Part(f"f{i}", b"x" * 4500) for i in range(15)), video()]),
        413,
        "too_large",
    ),
    up(
        "huge part header (1 MB)",
        upload([Part("file", b"x", filename="a", headers=[b"X-Big: " + b"h" * MB])]),
        413,
        "too_large",
        memory_mb=30,
    ),
    up(
        "too many part headers",
        upload([Part("file", b"x", filename="a", headers=[b"X-H%d: v" % i for i in range(20)])]),
        413,
        "too_large",
    ),
    up(
        "file over the limit (3 MB of 2)",
        oversized_file(3 * MB),
        413,
        "too_large",
        content_length=None,
    ),
    up("declared length over the limit", b"", 413, "too_large", content_length=10**10),
    up(
        "Content-Length lying low",
        WELL_FORMED,
        400,
        "bad_request",
        content_length=len(WELL_FORMED) - 30,
    ),
    up(
        "Content-Length lying high",
        WELL_FORMED,
        None,
        None,
        content_length=len(WELL_FORMED) + 1000,
        half_close=True,
    ),
    Case(
        "missing boundary",
        "POST",
        "/api/v1/videos",
        415,
        "unsupported_media_type",
        WELL_FORMED,
        {"Content-Type": "multipart/form-data"},
    ),
    Case(
        "boundary over 256 bytes",
        "POST",
        "/api/v1/videos",
        400,
        "bad_request",
        upload([video()]).replace(BOUNDARY, b"b" * 300),
        {"Content-Type": "multipart/form-data; boundary=" + "b" * 300},
    ),
    Case(
        "wrong content-type",
        "POST",
        "/api/v1/videos",
        415,
        "unsupported_media_type",
        b'{"file": "x"}',
        {"Content-Type": JSON},
    ),
    up("no token", WELL_FORMED, 401, "unauthorized", auth=None),
]

HUGE = "9" * 10_000
ID_70 = str(2**70)
SILENCE = {"Content-Type": JSON}


def admin(method: str, path: str, status: int, code: str, body: bytes = b"") -> Case:
    name = f"{method} {path[:50]} {body.decode()[:50]}".strip()
    return Case(name, method, path, status, code, body, SILENCE, "admin")


IDS_AND_QUERIES = [
    Case("video id 2**70", "GET", f"/api/v1/videos/{ID_70}", 404, "not_found"),
    Case("video id of 10,000 digits", "GET", f"/api/v1/videos/{HUGE}", 422, "invalid_request"),
    Case("NUL in video id", "GET", "/api/v1/videos/ab%00cd", 400, "bad_request"),
    Case("NUL in rendition name", "GET", "/api/v1/videos/ab/renditions/%00", 400, "bad_request"),
    Case(
        "traversal rendition name",
        "GET",
        "/api/v1/videos/ab/renditions/..%2F..%2Fx",
        404,
        "not_found",
    ),
    Case("NUL in status filter", "GET", "/api/v1/videos?status=%00", 400, "bad_request"),
    Case("raw NUL-free bad status", "GET", "/api/v1/videos?status=bogus", 422, "invalid_request"),
    Case(
        "NUL in user filter", "GET", "/api/v1/videos?user=a%00b", 400, "bad_request", auth="admin"
    ),
    Case(
        "U+2028 in user filter", "GET", "/api/v1/videos?user=a%E2%80%A8b", 200, None, auth="admin"
    ),
    Case(
        "user filter of 1 MB (uvicorn)",
        "GET",
        "/api/v1/videos?user=" + "u" * MB,
        400,
        None,
        auth="admin",
    ),
    Case(
        "user filter of 10,000 chars",
        "GET",
        f"/api/v1/videos?user={HUGE}",
        422,
        "invalid_request",
        auth="admin",
    ),
    Case("bad cursor", "GET", "/api/v1/videos?cursor=garbage", 422, "invalid_request"),
    Case(
        "cursor of far dates",
        "GET",
        "/api/v1/videos?cursor=9999-12-31T23:59:59%2B14:00_z",
        200,
        None,
    ),
    Case("cursor without id", "GET", "/api/v1/videos?cursor=2024-01-01", 200, None),
    Case("NUL in cursor", "GET", "/api/v1/videos?cursor=2024-01-01_%00", 400, "bad_request"),
    Case("cursor of 10,000 chars", "GET", f"/api/v1/videos?cursor={HUGE}", 422, "invalid_request"),
    Case("limit 2**70", "GET", f"/api/v1/videos?limit={ID_70}", 422, "invalid_request"),
    Case(
        "header of 1 MB (uvicorn)", "GET", "/api/v1/videos", 400, None, headers={"X-Big": "h" * MB}
    ),
    Case("CR inside a header", "GET", "/api/v1/videos", 400, None, headers={"X-A": "a\rb"}),
    admin("DELETE", f"/api/v1/admin/silences/{ID_70}", 422, "invalid_request"),
    admin("DELETE", f"/api/v1/admin/silences/{HUGE}", 422, "invalid_request"),
    admin("DELETE", "/api/v1/admin/silences/-1", 422, "invalid_request"),
    admin("DELETE", "/api/v1/admin/silences/1e3", 422, "invalid_request"),
    admin("DELETE", "/api/v1/admin/silences/424242", 404, "not_found"),
    admin("POST", "/api/v1/admin/workers/%00/drain", 400, "bad_request"),
    admin("POST", f"/api/v1/admin/workers/{HUGE}/drain", 422, "invalid_request"),
    admin("POST", "/api/v1/admin/retry?code=%00", 400, "bad_request"),
    admin("GET", f"/api/v1/admin/history?hours={ID_70}", 422, "invalid_request"),
    admin("POST", "/api/v1/admin/silences", 422, "invalid_request", b"{"),
    admin("POST", "/api/v1/admin/silences", 422, "invalid_request", b"[]"),
    admin(
        "POST", "/api/v1/admin/silences", 422, "invalid_request", b'{"rule": 5, "minutes": "soon"}'
    ),
    admin(
        "POST",
        "/api/v1/admin/silences",
        422,
        "invalid_request",
        b'{"rule": "a\\u0000b", "minutes": 5}',
    ),
    admin(
        "POST",
        "/api/v1/admin/silences",
        422,
        "invalid_request",
        b'{"rule": "r", "minutes": 5, "comment": "\\u0000"}',
    ),
    admin(
        "POST", "/api/v1/admin/silences", 422, "invalid_request", b'{"rule": "r", "minutes": NaN}'
    ),
    admin(
        "POST", "/api/v1/admin/silences", 422, "invalid_request", b'{"rule": "r", "minutes": 1e400}'
    ),
    Case(
        "NUL in a subscription address",
        "POST",
        "/api/v1/status/subscribe",
        422,
        "invalid_request",
        b'{"email": "a\\u0000@example.com"}',
        SILENCE,
        None,
    ),
    Case(
        "subscription of the wrong type",
        "POST",
        "/api/v1/status/subscribe",
        422,
        "invalid_request",
        b'{"email": ["a@example.com"]}',
        SILENCE,
        None,
    ),
    Case("NUL in a page's path", "GET", "/videos/%00", 400, "bad_request"),
    Case("page video id of 10,000 digits, signed out", "GET", f"/videos/{HUGE}", 303, None),
    Case(
        "NUL in the sign-in page's next", "GET", "/login?next=/%00", 400, "bad_request", auth=None
    ),
    Case(
        "sign-in form as multipart",
        "POST",
        "/login",
        415,
        None,
        WELL_FORMED,
        {"Content-Type": MULTIPART},
        None,
    ),
    Case(
        "sign-in form of 1 MB",
        "POST",
        "/login",
        413,
        None,
        b"token=" + b"t" * MB,
        {"Content-Type": "application/x-www-form-urlencoded"},
        None,
    ),
]

CORPUS = UPLOADS + IDS_AND_QUERIES
