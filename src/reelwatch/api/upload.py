"""Stream a multipart upload straight into the media store, in constant memory.

FastAPI's ``UploadFile`` would spool the whole body to a temporary file first; this
parser writes the ``file`` part's bytes into the store as they arrive and enforces the
size limit while streaming, so an oversized upload is refused after reading no more
than the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from reelwatch.api.errors import ApiError
from reelwatch.storage import MediaStore, UploadTooLarge
from reelwatch.storage.local import IncomingFile

MAX_FIELD_BYTES = 4096
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@dataclass
class ParsedUpload:
    incoming: IncomingFile | None = None
    filename: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class _PartCollector:
    """Callbacks for python-multipart: route each part to the file or a small field."""

    def __init__(self, store: MediaStore, limit_bytes: int) -> None:
        self.store = store
        self.limit_bytes = limit_bytes
        self.result = ParsedUpload()
        self._header_name = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name = ""
        self._field_value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._header_name, self._field_value = {}, b"", bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name = data[start:end].lower()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header_name] = (
            self._headers.get(self._header_name, b"") + data[start:end]
        )

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._part_name == "file":
            if self.result.incoming is not None:
                raise ApiError(400, "bad_request", "send one file per upload")
            raw_name = options.get(b"filename", b"upload").decode("utf-8", "replace")
            self.result.filename = raw_name.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
            self.result.incoming = self.store.open_incoming()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_name == "file" and self.result.incoming is not None:
            self.result.incoming.write(data[start:end], limit_bytes=self.limit_bytes)
        elif len(self._field_value) + end - start <= MAX_FIELD_BYTES:
            self._field_value += data[start:end]
        else:
            raise ApiError(400, "bad_request", f"field {self._part_name!r} is too long")

    def _part_end(self) -> None:
        if self._part_name != "file":
            self.result.fields[self._part_name] = self._field_value.decode("utf-8", "replace")


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
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit_bytes + MULTIPART_OVERHEAD_BYTES:
        raise _too_large(limit_bytes)
    collector = _PartCollector(store, limit_bytes)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except UploadTooLarge:
        raise _too_large(limit_bytes) from None
    except BaseException as exc:
        if collector.result.incoming is not None:
            collector.result.incoming.discard()
        if isinstance(exc, ClientDisconnect):
            raise ApiError(400, "client_disconnected", "the upload was interrupted") from exc
        raise
    if collector.result.incoming is None:
        raise ApiError(400, "bad_request", "the multipart body has no 'file' field")
    return collector.result


def _too_large(limit_bytes: int) -> ApiError:
    return ApiError(
        413, "too_large", f"the file is larger than this server accepts ({limit_bytes // 2**20} MB)"
    )
