"""Stream a multipart upload straight into the media store, in constant memory.

FastAPI's ``UploadFile`` would spool the whole body to a temporary file first; this
parser writes the ``file`` part's bytes into the store as they arrive and enforces the
size limit while streaming, so an oversized upload is refused after reading no more
than the limit. Everything else in the body (part headers, form fields, preamble and
epilogue) is bounded too, and refused as soon as a bound is crossed, so no body can
make the server hold more than a few dozen KiB besides the file it writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from reelwatch.api.errors import ApiError
from reelwatch.storage import Incoming, MediaStore, UploadTooLarge

# Parts in one body: the file, a title, and room for what browsers and clients add.
MAX_PARTS = 16
# All the bytes that are not the file's: every part's headers and every field's value.
MAX_FORM_BYTES = 64 * 1024
MAX_FIELD_BYTES = 4096
# Per part, enforced by the parser: header lines, and bytes in one header line.
MAX_PART_HEADERS = 8
MAX_HEADER_LINE_BYTES = 4096
# The body beyond the file's limit: the form, plus boundary lines, preamble and epilogue.
MULTIPART_OVERHEAD_BYTES = MAX_FORM_BYTES + 16 * 1024
# Fields the API reads (routes/videos.py); others are counted against the bounds, never kept.
KEPT_FIELDS = frozenset({"title"})
FILE_FIELD = "file"
INCOMPLETE_BODY = "the multipart body ended before its closing boundary: the upload is incomplete"


@dataclass
class ParsedUpload:
    incoming: Incoming | None = None
    filename: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class _PartCollector:
    """Callbacks for python-multipart: route each part to the file or a small field."""

    def __init__(self, store: MediaStore, limit_bytes: int) -> None:
        self.store = store
        self.limit_bytes = limit_bytes
        self.result = ParsedUpload()
        self.parts = 0
        self.form_bytes = 0
        self.file_complete = False
        self.ended = False
        self._header_name = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name = ""
        self._field_value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_begin": self._header_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _count_form_bytes(self, count: int) -> None:
        self.form_bytes += count
        if self.form_bytes > MAX_FORM_BYTES:
            raise ApiError(
                413,
                "too_large",
                f"the form besides the file is larger than {MAX_FORM_BYTES // 1024} KiB",
            )

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(413, "too_large", f"send at most {MAX_PARTS} multipart fields")
        self._headers, self._part_name, self._field_value = {}, "", bytearray()

    def _header_begin(self) -> None:
        self._header_name = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        # A name split across two network reads arrives in two calls.
        self._count_form_bytes(end - start)
        self._header_name += data[start:end].lower()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_form_bytes(end - start)
        self._headers[self._header_name] = (
            self._headers.get(self._header_name, b"") + data[start:end]
        )

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._part_name == FILE_FIELD:
            if self.result.incoming is not None:
                raise ApiError(400, "bad_request", "send one file per upload")
            self.result.filename = _last_path_piece(options.get(b"filename", b""))
            self.result.incoming = self.store.open_incoming()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_name == FILE_FIELD:
            assert self.result.incoming is not None
            self.result.incoming.write(data[start:end], limit_bytes=self.limit_bytes)
            return
        self._count_form_bytes(end - start)
        if self._part_name not in KEPT_FIELDS:
            return
        if len(self._field_value) + end - start > MAX_FIELD_BYTES:
            raise ApiError(
                413, "too_large", f"field {self._part_name!r} is over {MAX_FIELD_BYTES} bytes"
            )
        self._field_value += data[start:end]

    def _part_end(self) -> None:
        if self._part_name == FILE_FIELD:
            self.file_complete = True
        elif self._part_name in KEPT_FIELDS:
            # Kept as sent: the title is made one printable line where it is accepted
            # (reelwatch.inputs), which also drops NUL, which PostgreSQL cannot store.
            self.result.fields[self._part_name] = self._field_value.decode("utf-8", "replace")

    def _end(self) -> None:
        self.ended = True


def _last_path_piece(raw: bytes) -> str:
    """The file's name without the client's folders; it is only shown, never used as a
    path (the store names files itself), and made one line where it is accepted."""
    return raw.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]


class MultipartReceiver:
    """One upload's body, fed chunk by chunk as it arrives; refuses it (``ApiError``)
    as soon as it is malformed or crosses a bound, having removed the partial file."""

    def __init__(self, boundary: bytes, store: MediaStore, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.received = 0
        self.collector = _PartCollector(store, limit_bytes)
        try:
            self.parser = MultipartParser(
                boundary,
                self.collector.callbacks(),  # type: ignore[arg-type]
                max_header_count=MAX_PART_HEADERS,
                max_header_size=MAX_HEADER_LINE_BYTES,
            )
        except FormParserError as exc:  # a boundary over 256 bytes
            raise ApiError(400, "bad_request", f"malformed multipart boundary: {exc}") from None

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        with self._refusing_bad_bodies():
            if self.received > self.limit_bytes + MULTIPART_OVERHEAD_BYTES:
                raise too_large(self.limit_bytes)
            self.parser.write(chunk)

    def finish(self) -> ParsedUpload:
        """The upload, once the body ended: only a complete body is one."""
        with self._refusing_bad_bodies():
            self.parser.finalize()
            if not self.collector.ended:
                raise ApiError(400, "bad_request", INCOMPLETE_BODY)
            if self.collector.result.incoming is None:
                raise ApiError(400, "bad_request", "the multipart body has no 'file' field")
            if not self.collector.file_complete:
                raise ApiError(400, "bad_request", INCOMPLETE_BODY)
        return self.collector.result

    def wants_flush(self) -> bool:
        incoming = self.collector.result.incoming
        return incoming is not None and incoming.wants_flush()

    def flush(self) -> None:
        """Send what the store holds back (a bucket's full part); blocking, so the
        caller runs it off the event loop."""
        with self._refusing_bad_bodies():
            if self.collector.result.incoming is not None:
                self.collector.result.incoming.flush()

    def discard(self) -> None:
        if self.collector.result.incoming is not None:
            self.collector.result.incoming.discard()

    @contextmanager
    def _refusing_bad_bodies(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            self.discard()
            refusal = _refusal_for(exc, self.limit_bytes)
            if refusal is None:
                raise
            raise refusal from None


def _refusal_for(exc: BaseException, limit_bytes: int) -> ApiError | None:
    """The API's answer to what a bad body made the parser raise (None: not the body's fault)."""
    if isinstance(exc, UploadTooLarge):
        return too_large(limit_bytes)
    if isinstance(exc, MultipartParseError):
        # The parser's own bounds on part headers (MAX_PART_HEADERS, MAX_HEADER_LINE_BYTES).
        if str(exc).startswith("Maximum header"):
            return ApiError(413, "too_large", f"a part's headers are too large: {exc}")
        return ApiError(400, "bad_request", f"malformed multipart body: {exc}")
    return None


async def receive_upload(request: Request, store: MediaStore, limit_bytes: int) -> ParsedUpload:
    """Parse the request body; on any error the partial file is removed."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the video as multipart/form-data with a 'file' field",
        )
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > limit_bytes + MULTIPART_OVERHEAD_BYTES:
        raise too_large(limit_bytes)
    receiver = MultipartReceiver(boundary, store, limit_bytes)
    try:
        async for chunk in request.stream():
            receiver.feed(chunk)
            if receiver.wants_flush():
                await run_in_threadpool(receiver.flush)
    except ClientDisconnect:
        receiver.discard()
        raise ApiError(400, "client_disconnected", "the upload was interrupted") from None
    except BaseException:
        receiver.discard()
        raise
    return receiver.finish()


def too_large(limit_bytes: int) -> ApiError:
    return ApiError(
        413, "too_large", f"the file is larger than this server accepts ({limit_bytes // 2**20} MB)"
    )
