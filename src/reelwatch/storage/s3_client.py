"""The boto3 client of an S3-compatible bucket, and its errors in words.

The endpoint, keys and region are boto3's own: ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (and the other
standard variables and files). Checksums are sent only when an operation requires them,
as S3-compatible servers other than AWS do not all accept boto3's newer defaults.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from reelwatch.storage.base import StorageError

MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})


def make_client(addressing: str, *, endpoint_url: str | None = None) -> Any:
    config = Config(
        s3={"addressing_style": addressing},
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 4, "mode": "standard"},
        max_pool_connections=32,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def storage_error(message: str) -> StorageError:
    return StorageError(errno.EIO, message)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def translated(doing: str, where: str) -> Iterator[None]:
    """boto3's errors as ``FileNotFoundError`` (no such object) or ``StorageError``
    saying, in words, what to fix."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in MISSING:
            raise FileNotFoundError(errno.ENOENT, f"no such object while {doing}") from None
        if code == "InvalidRange":
            raise ValueError(f"{where}: the range asked is outside the object") from None
        raise storage_error(f"{where}: {doing}: {describe_client_error(exc)}") from None
    except NoCredentialsError:
        raise storage_error(
            f"{where}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except EndpointConnectionError as exc:
        raise storage_error(
            f"{where}: the endpoint does not answer ({exc.kwargs.get('endpoint_url', '?')}): "
            "check AWS_ENDPOINT_URL and that the server runs"
        ) from None
    except BotoCoreError as exc:
        raise storage_error(f"{where}: {doing}: {exc}") from None


def describe_client_error(exc: ClientError) -> str:
    code = error_code(exc)
    if code == "NoSuchBucket":
        return "the bucket does not exist: create it, or fix REELWATCH_STORAGE_URL"
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return "access denied: check the keys and the bucket policy (docs/scale-out.md)"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"the keys are refused ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"{code or 'error'} {message}".strip()
