"""The upload manifest: ``upload.json`` beside each original, written before its row.

It says who uploaded what, so that an original whose video row was lost (an
asynchronous failover, a restore of an older backup) can be recorded again by
``reelwatch recover`` instead of looking like debris. Folders of videos uploaded before
manifests existed have none; nothing else reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

from reelwatch.storage import MANIFEST, MediaStore

FORMAT: Literal[1] = 1


class ManifestError(Exception):
    """The manifest is missing, unreadable or not one this version understands."""


class UploadManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    format: Literal[1] = FORMAT
    video_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    user_id: int
    email: str = Field(min_length=1, max_length=320)
    filename: str = Field(min_length=1, max_length=500)
    title: str = Field(min_length=1, max_length=500)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime  # naive UTC, as in the database; "…Z" in the file

    @field_validator("created_at")
    @classmethod
    def _naive_utc(cls, moment: datetime) -> datetime:
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment

    @field_serializer("created_at")
    def _iso_utc(self, moment: datetime) -> str:
        return moment.isoformat() + "Z"

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=1).encode() + b"\n"


def read_manifest(store: MediaStore, video_id: str) -> UploadManifest:
    """The manifest of ``video_id``'s folder, checked to be about that video."""
    try:
        manifest = UploadManifest.model_validate_json(store.read_bytes(video_id, MANIFEST))
    except FileNotFoundError:
        raise ManifestError("no upload manifest") from None
    except (OSError, ValidationError) as exc:
        raise ManifestError(f"unreadable upload manifest: {_first_line(exc)}") from None
    if manifest.video_id != video_id:
        raise ManifestError(f"the upload manifest is about another video ({manifest.video_id})")
    return manifest


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc']) or 'file'}: {error['msg']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
