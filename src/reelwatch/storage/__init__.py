"""The media store: where originals, renditions and thumbnails live on disk."""

from reelwatch.storage.local import MediaStore, StoredFile, UploadTooLarge

__all__ = ["MediaStore", "StoredFile", "UploadTooLarge"]
