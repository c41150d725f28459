"""The media store: where originals, renditions and thumbnails live, on local disk
(``LocalStore``) or in an S3-compatible bucket (``S3Store``), behind ``MediaStore``."""

from __future__ import annotations

from reelwatch.config import Settings
from reelwatch.storage.base import (
    HLS_FOLDER,
    MANIFEST,
    ORIGINAL,
    THUMBNAIL,
    Incoming,
    MediaStore,
    StorageError,
    StoredFile,
    UploadTooLarge,
    rendition_file,
    walk_files,
)
from reelwatch.storage.local import LocalStore

__all__ = [
    "HLS_FOLDER",
    "MANIFEST",
    "ORIGINAL",
    "THUMBNAIL",
    "Incoming",
    "LocalStore",
    "MediaStore",
    "StorageError",
    "StoredFile",
    "UploadTooLarge",
    "download_origin",
    "open_store",
    "rendition_file",
    "walk_files",
]


def open_store(settings: Settings) -> MediaStore:
    """The store ``settings`` name: the bucket of REELWATCH_STORAGE_URL, or local disk."""
    if settings.bucket is None:
        return LocalStore(settings.media_root)
    from reelwatch.storage.s3 import S3Store  # boto3 is imported only when used

    return S3Store(
        settings.bucket,
        (settings.home / "scratch").resolve(),
        addressing=settings.s3_addressing,
        part_bytes=settings.s3_part_mb << 20,
        link_seconds=settings.s3_link_seconds,
    )


def download_origin(settings: Settings) -> str | None:
    """The origin (scheme://host:port) browsers are redirected to for downloads, when
    they are: pages must allow it for images and media."""
    if settings.bucket is None or settings.s3_downloads != "redirect":
        return None
    store = open_store(settings)
    from reelwatch.storage.s3 import S3Store

    return store.download_origin() if isinstance(store, S3Store) else None
