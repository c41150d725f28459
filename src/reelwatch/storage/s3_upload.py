"""An upload streamed into a bucket: a multipart upload with bounded memory.

Bytes are buffered up to one part (``REELWATCH_S3_PART_MB``); full parts are sent by
``flush``, which the API calls off its event loop. The object appears only when the
upload is completed, whole, at ``videos/<id>/original``, after the upload manifest:
a server killed mid-upload leaves an incomplete multipart upload, invisible, which
``reelwatch gc`` aborts after a day (and a bucket lifecycle rule too). An upload
smaller than one part is one PUT.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from reelwatch.storage.base import StoredFile, UploadTooLarge
from reelwatch.storage.s3_client import translated


class MultipartIncoming:
    def __init__(self, client: Any, bucket: str, key: str, video_id: str, part_bytes: int) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.video_id = video_id
        self.part_bytes = part_bytes
        self.size_bytes = 0
        self.where = f"s3://{bucket}/{key}"
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._finished = False

    def write(self, chunk: bytes, *, limit_bytes: int) -> None:
        self.size_bytes += len(chunk)
        if self.size_bytes > limit_bytes:
            self.discard()
            raise UploadTooLarge(f"upload exceeds {limit_bytes} bytes")
        self._hash.update(chunk)
        self._buffer += chunk

    def wants_flush(self) -> bool:
        return len(self._buffer) >= self.part_bytes

    def flush(self) -> None:
        """Send every full part buffered (the last, shorter part waits for ``finish``)."""
        while len(self._buffer) >= self.part_bytes:
            self._send_part(bytes(self._buffer[: self.part_bytes]))
            del self._buffer[: self.part_bytes]

    def finish(self) -> StoredFile:
        """Every byte sent but the last part (kept for ``complete``, or one PUT)."""
        self.flush()
        self._finished = True
        return StoredFile(self.size_bytes, self._hash.hexdigest())

    def complete(self) -> None:
        """Make the object appear, whole."""
        if not self._finished:
            raise RuntimeError("finish the upload before completing it")
        with translated("storing the upload", self.where):
            if self._upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer))
            else:
                if self._buffer or not self._parts:
                    self._send_part(bytes(self._buffer))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        self._buffer.clear()
        self._upload_id = None

    def discard(self) -> None:
        """Abort the multipart upload: its parts go, nothing appears."""
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(OSError), translated("aborting the upload", self.where):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                )

    def _send_part(self, data: bytes) -> None:
        with translated("sending a part of the upload", self.where):
            if self._upload_id is None:
                started = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
                self._upload_id = str(started["UploadId"])
            number = len(self._parts) + 1
            sent = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})
