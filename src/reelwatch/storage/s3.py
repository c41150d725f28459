"""A media store in an S3-compatible bucket (``REELWATCH_STORAGE_URL=s3://BUCKET/PREFIX``).

Keys are ``PREFIX/videos/<id>/<relative path>``, the local store's layout. An object
appears only whole: a PUT, or a completed multipart upload. Workers fetch the original
into a scratch folder (``reelwatch.storage.scratch``), make their files there and
publish them; a retried publish skips the files already in the bucket at their size.
Downloads are presigned URLs (the bucket serves the bytes) or proxied by the API.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig

from reelwatch.config import BucketUrl
from reelwatch.storage.base import (
    MANIFEST,
    ORIGINAL,
    Debris,
    Incoming,
    StoredObject,
    VideoFolder,
    checked_relative,
    checked_video_id,
    walk_files,
)
from reelwatch.storage.s3_client import make_client, storage_error, translated
from reelwatch.storage.s3_upload import MultipartIncoming
from reelwatch.storage.scratch import Scratch

# An unfinished multipart upload younger than this may be an upload in progress.
UPLOAD_GRACE = timedelta(days=1)
CHECK_CACHE_S = 15.0  # a worker asks before every claim: probe the bucket at most this often
# Files rewritten in place (a growing playlist, a variant's early info).
_REWRITTEN = (".m3u8", ".json")
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".ts": "video/mp2t",
    ".json": "application/json",
}


@dataclass(frozen=True)
class ObjectStream:
    """An object's bytes (or a range of them) as the API proxies them."""

    chunks: Iterator[bytes]
    size_bytes: int
    content_range: str | None


class S3Store:
    def __init__(
        self,
        location: BucketUrl,
        scratch_root: Path,
        *,
        addressing: str = "auto",
        part_bytes: int = 8 << 20,
        link_seconds: int = 300,
        endpoint_url: str | None = None,
    ) -> None:
        self.location = location
        self.bucket = location.bucket
        self.description = str(location)
        self.client = make_client(addressing, endpoint_url=endpoint_url)
        self.part_bytes = part_bytes
        self.link_seconds = link_seconds
        self.transfer = TransferConfig(
            multipart_threshold=part_bytes, multipart_chunksize=part_bytes, max_concurrency=2
        )
        self.scratch = Scratch(scratch_root)
        self._checked_at = -CHECK_CACHE_S

    # Keys.
    def _folder_key(self, video_id: str) -> str:
        return self.location.key("videos", checked_video_id(video_id)) + "/"

    def _key(self, video_id: str, relative: str) -> str:
        return self._folder_key(video_id) + checked_relative(relative)

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # Uploads.
    def ensure_layout(self) -> None:
        """Nothing to create in a bucket; the scratch copies of dead processes go."""
        self.scratch.remove_dead_processes()

    def open_incoming(self) -> MultipartIncoming:
        video_id = uuid.uuid4().hex
        key = self._key(video_id, ORIGINAL)
        return MultipartIncoming(self.client, self.bucket, key, video_id, self.part_bytes)

    def keep_original(self, incoming: Incoming, video_id: str, manifest: bytes) -> None:
        """The manifest first, then the original appears (the multipart upload completes)."""
        if not isinstance(incoming, MultipartIncoming) or incoming.video_id != video_id:
            raise TypeError("keep_original takes this store's upload, for its own video id")
        key = self._key(video_id, MANIFEST)
        with translated("storing the upload manifest", self._where(key)):
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=manifest, ContentType="application/json"
            )
        incoming.complete()

    def delete_video(self, video_id: str) -> None:
        """Every object under the video's prefix, and its unfinished uploads."""
        prefix = self._folder_key(video_id)
        keys = list(self._keys_under(prefix))  # listed whole first: deleting pages as
        with translated("deleting the video", self._where(prefix)):  # they come may skip
            for batch in _batches(iter(keys), 1000):
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
        for item in self._unfinished_uploads(prefix):
            self.remove_debris(item)

    # The workers' side.
    @contextlib.contextmanager
    def workspace(self, video_id: str) -> Iterator[Path]:
        key = self._key(video_id, ORIGINAL)

        def fetch(destination: Path) -> None:
            with translated("fetching the original", self._where(key)):
                self.client.download_file(self.bucket, key, str(destination), Config=self.transfer)

        with self.scratch.folder(video_id, fetch) as folder:
            yield folder

    def publish(self, video_id: str, folder: Path, relatives: list[str]) -> None:
        """Upload each file (whole: PUT or completed multipart), skipping those already
        in the bucket at their size (a retry after a worker died mid-publish) unless
        they are rewritten in place (playlists and JSON: a new one may be as long)."""
        present = self.sizes(video_id, relatives)
        for relative in relatives:
            path = folder / checked_relative(relative)
            size = path.stat().st_size
            if present.get(relative) == size and not relative.endswith(_REWRITTEN):
                continue
            key = self._key(video_id, relative)
            extra = {"ContentType": _media_type(relative)}
            with translated("publishing a file", self._where(key)):
                self.client.upload_file(
                    str(path), self.bucket, key, ExtraArgs=extra, Config=self.transfer
                )

    def release(self, video_id: str) -> None:
        self.scratch.release(video_id)

    def tidy_scratch(self) -> None:
        self.scratch.evict_idle()

    def temporary_folder(self) -> Path:
        self.scratch.root.mkdir(parents=True, exist_ok=True)
        return self.scratch.root

    # Reading.
    def sizes(self, video_id: str, relatives: list[str]) -> dict[str, int]:
        wanted = {checked_relative(relative) for relative in relatives}
        listed = self.video_folder(video_id)
        files = listed.files if listed else ()
        return {f.relative: f.size_bytes for f in files if f.relative in wanted}

    def read_bytes(self, video_id: str, relative: str) -> bytes:
        key = self._key(video_id, relative)
        with translated("reading a file", self._where(key)):
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def sha256(self, video_id: str, relative: str) -> str | None:
        try:
            stream = self.open_stream(video_id, relative)
        except FileNotFoundError:
            return None
        digest = hashlib.sha256()
        for chunk in stream.chunks:
            digest.update(chunk)
        return digest.hexdigest()

    def local_file(self, video_id: str, relative: str) -> Path | None:
        return None

    def disk_path(self) -> Path | None:
        return None

    def presigned_url(self, video_id: str, relative: str, *, filename: str | None) -> str:
        """A link to the object, valid ``link_seconds``; the bucket answers ranges too."""
        params = {
            "Bucket": self.bucket,
            "Key": self._key(video_id, relative),
            "ResponseContentType": _media_type(relative),
        }
        if filename:  # made by the API from an id and a rendition name, never sent by a user
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        with translated("signing a link", self.description):
            return str(
                self.client.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=self.link_seconds
                )
            )

    def download_origin(self) -> str:
        """scheme://host[:port] of the presigned links (with the bucket in the host name
        under virtual-host addressing)."""
        link = urlsplit(self.presigned_url("0", ORIGINAL, filename=None))
        return f"{link.scheme}://{link.netloc}"

    def open_stream(
        self, video_id: str, relative: str, byte_range: str | None = None
    ) -> ObjectStream:
        """The object's bytes, or the one range ``bytes=a-b`` asked (FileNotFoundError if
        there is no such object; a range it cannot satisfy is a ``StorageError``)."""
        key = self._key(video_id, relative)
        extra = {"Range": byte_range} if byte_range else {}
        with translated("reading a file", self._where(key)):
            answer = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        body = answer["Body"]
        return ObjectStream(
            _closing(body.iter_chunks(1 << 20), body),
            int(answer["ContentLength"]),
            answer.get("ContentRange"),
        )

    # Listings, for gc, recover, doctor, backup.
    def video_folders(self) -> list[VideoFolder]:
        root = self.location.key("videos") + "/"
        grouped: dict[str, list[StoredObject]] = {}
        for key, size, modified in self._objects_under(root):
            video_id, _, relative = key[len(root) :].partition("/")
            if video_id.isalnum() and _ours(relative):
                grouped.setdefault(video_id, []).append(StoredObject(relative, size, modified))
        return [self._listing(video_id, files) for video_id, files in sorted(grouped.items())]

    def video_folder(self, video_id: str) -> VideoFolder | None:
        prefix = self._folder_key(video_id)
        files = [
            StoredObject(key[len(prefix) :], size, modified)
            for key, size, modified in self._objects_under(prefix)
            if _ours(key[len(prefix) :])
        ]
        return self._listing(video_id, files) if files else None

    def _listing(self, video_id: str, files: list[StoredObject]) -> VideoFolder:
        newest = max(f.modified for f in files)
        return VideoFolder(video_id, tuple(files), newest, self._where(self._folder_key(video_id)))

    def debris(self) -> list[Debris]:
        """The unfinished multipart uploads under the prefix: debris once old enough."""
        return self._unfinished_uploads(self.location.key() + "/" if self.location.prefix else "")

    def remove_debris(self, item: Debris) -> None:
        key, _, upload_id = item.token.partition("\n")
        with contextlib.suppress(FileNotFoundError), translated("aborting", item.where):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def remove_abandoned_uploads(self) -> list[str]:
        """An unfinished upload may be another server's in progress: gc's age decides."""
        return []

    def _unfinished_uploads(self, prefix: str) -> list[Debris]:
        found = []
        with translated("listing unfinished uploads", self._where(prefix)):
            pages = self.client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    key, upload_id = upload["Key"], upload["UploadId"]
                    started = _naive_utc(upload["Initiated"])
                    token = f"{key}\n{upload_id}"
                    found.append(Debris(self._where(key), 0, started, token, UPLOAD_GRACE))
        return found

    def _keys_under(self, prefix: str) -> Iterator[str]:
        for key, _, _ in self._objects_under(prefix):
            yield key

    def _objects_under(self, prefix: str) -> Iterator[tuple[str, int, datetime]]:
        with translated("listing", self._where(prefix)):
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"], int(item["Size"]), _naive_utc(item["LastModified"])

    # Backup and restore: the objects under videos/ as files, and back.
    def export_videos(self, destination: Path) -> None:
        for folder in self.video_folders():
            for stored in folder.files:
                target = destination / folder.video_id / checked_relative(stored.relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                key = self._key(folder.video_id, stored.relative)
                with translated("backing up", self._where(key)):
                    self.client.download_file(self.bucket, key, str(target), Config=self.transfer)

    def import_videos(self, source: Path) -> None:
        for folder in self.video_folders():
            self.delete_video(folder.video_id)
        if not source.is_dir():
            return
        for video_folder in sorted(p for p in source.iterdir() if p.is_dir()):
            relatives = [relative for relative, _ in walk_files(video_folder)]
            self.publish(video_folder.name, video_folder, relatives)

    # Health.
    def describe_problem(self) -> str | None:
        """None when a probe object can be written, read and deleted (cached a while
        when it could: a worker asks before each claim)."""
        if time.monotonic() - self._checked_at < CHECK_CACHE_S:
            return None
        try:
            self.check_writable()
        except OSError as exc:
            return f"media store {self.description} is not usable: {exc.strerror or exc}"
        self._checked_at = time.monotonic()
        return None

    def check_writable(self) -> None:
        """Raise ``StorageError`` unless a probe object can be written, read and deleted."""
        key = self.location.key(".probe", uuid.uuid4().hex)
        payload = b"reelwatch storage check\n"
        with translated("writing a probe object", self._where(key)):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=payload)
            try:
                read = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            finally:
                self.client.delete_object(Bucket=self.bucket, Key=key)
        if read != payload:
            raise storage_error(f"{self._where(key)}: the probe object read back differently")


def _media_type(relative: str) -> str:
    suffix = Path(relative).suffix.lower()
    return (
        MEDIA_TYPES.get(suffix) or mimetypes.guess_type(relative)[0] or "application/octet-stream"
    )


def _ours(relative: str) -> bool:
    """A name this store could have written (others' keys under the prefix are left be)."""
    try:
        checked_relative(relative)
    except ValueError:
        return False
    return True


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _closing(chunks: Iterator[bytes], body: Any) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        body.close()


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
