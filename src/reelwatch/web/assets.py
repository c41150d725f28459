"""Static files with fingerprinted URLs: ``static_url("app.css")`` is
``/static/app.css?v=<hash of its content>``, served with a year's lifetime (the URL
changes when the file does); a URL without the current fingerprint (an old page, a
hand-typed link) gets a few minutes only."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIFETIME = "public, max-age=300"

# path -> (mtime_ns, size, fingerprint): files are hashed once, again only when changed.
_fingerprints: dict[str, tuple[int, int, str]] = {}


def fingerprint(path: str | os.PathLike[str]) -> str:
    """A short hash of the file's content; "" if there is no such file."""
    file = Path(path)
    key = str(file)
    try:
        stat = file.stat()
    except OSError:
        return ""
    known = _fingerprints.get(key)
    if known and known[:2] == (stat.st_mtime_ns, stat.st_size):
        return known[2]
    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
    _fingerprints[key] = (stat.st_mtime_ns, stat.st_size, digest)
    return digest


def static_url(name: str) -> str:
    """The URL of ``static/<name>`` carrying its fingerprint (templates call it)."""
    version = fingerprint(STATIC / name)
    return f"/static/{name}?v={version}" if version else f"/static/{name}"


class FingerprintedStaticFiles(StaticFiles):
    """StaticFiles that says how long a browser may keep what it sends."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            full_path, _ = self.lookup_path(path)
            asked = QueryParams(scope["query_string"]).get("v", "")
            current = fingerprint(full_path) if full_path else ""
            fresh = bool(asked) and asked == current
            response.headers["Cache-Control"] = IMMUTABLE if fresh else SHORT_LIFETIME
        return response
