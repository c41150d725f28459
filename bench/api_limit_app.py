"""The limit for ``bench.api_load``: a minimal Starlette app that answers
``GET /api/v1/videos/{id}`` with the same JSON as reelwatch, from the same database, with
the same token check (the SHA-256 of the bearer token looked up in ``users`` on every
request; another user's video is 404), and nothing else: no middleware, no thread pool
(the database is read on the event loop), plain DB-API, uvicorn's defaults but for
TCP_NODELAY with several processes (as reelwatch's server: ``tcp_socket``).

    python -m bench.api_limit_app --port 8001 --database-url sqlite:///x.db \\
        --public-url http://127.0.0.1:8000 [--processes 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

VIDEO_COLUMNS = (
    "id", "status", "progress", "title", "filename", "size_bytes", "sha256", "duration_s",
    "width", "height", "attempts", "error_code", "error_message", "error_recoverable",
    "next_retry_at", "has_thumbnail", "created_at", "updated_at",
)  # fmt: skip
VIDEO_QUERY = (
    "SELECT " + ", ".join(f"v.{column}" for column in VIDEO_COLUMNS) + ", "  # noqa: S608
    "r.name, r.width, r.height, r.size_bytes FROM videos v "
    "LEFT JOIN renditions r ON r.video_id = v.id WHERE v.id = ? {owner}"
    "ORDER BY r.height, r.id"
)
USER_QUERY = "SELECT id, is_admin FROM users WHERE token_hash = ?"


class Store:
    """One DB-API connection per process (SQLite, or PostgreSQL through psycopg)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            self.connection: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
            self.mark = "?"
        else:
            import psycopg

            self.connection = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
            self.mark = "%s"

    def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        cursor = self.connection.execute(query.replace("?", self.mark), params)
        return list(cursor.fetchall())


def iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if isinstance(value, datetime) else value.replace(" ", "T")
    return text + "Z"


def video_json(rows: list[tuple[Any, ...]], public_url: str) -> dict[str, Any]:
    v = dict(zip(VIDEO_COLUMNS, rows[0], strict=False))
    base = f"{public_url}/api/v1/videos/{v['id']}"
    error = None
    if v["error_code"]:
        error = {
            "code": v["error_code"],
            "message": v["error_message"],
            "recoverable": bool(v["error_recoverable"]),
        }
    renditions = [
        {"name": name, "width": width, "height": height, "size_bytes": size,
         "url": f"{base}/renditions/{name}"}
        for name, width, height, size in (row[len(VIDEO_COLUMNS):] for row in rows)
        if name is not None
    ]  # fmt: skip
    return {
        **{k: v[k] for k in VIDEO_COLUMNS[:11]},
        "error": error,
        "next_retry_at": iso(v["next_retry_at"]),
        "renditions": renditions,
        "thumbnail_url": f"{base}/thumbnail" if v["has_thumbnail"] else None,
        "created_at": iso(v["created_at"]),
        "updated_at": iso(v["updated_at"]),
    }


def create_app(database_url: str, public_url: str) -> Starlette:
    store = Store(database_url)

    async def get_video(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = store.rows(USER_QUERY, hashlib.sha256(token.strip().encode()).hexdigest())
        if scheme.lower() != "bearer" or not found:
            return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
        user_id, is_admin = found[0]
        video_id = request.path_params["video_id"]
        if is_admin:
            rows = store.rows(VIDEO_QUERY.format(owner=""), video_id)
        else:
            rows = store.rows(VIDEO_QUERY.format(owner="AND v.user_id = ? "), video_id, user_id)
        if not rows:
            return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
        return JSONResponse(video_json(rows, public_url))

    return Starlette(routes=[Route("/api/v1/videos/{video_id}", get_video)])


def app() -> Starlette:
    """uvicorn's factory, in each process: the settings come through the environment."""
    return create_app(os.environ["LIMIT_DATABASE_URL"], os.environ["LIMIT_PUBLIC_URL"])


def main() -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from reelwatch.runtime.server import tcp_socket

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--public-url", required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    os.environ["LIMIT_DATABASE_URL"] = args.database_url
    os.environ["LIMIT_PUBLIC_URL"] = args.public_url
    config = uvicorn.Config(
        "bench.api_limit_app:app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.processes,
        access_log=False,
        log_level="warning",
    )
    if args.processes == 1:
        uvicorn.Server(config).run()
        return
    # As `uvicorn.run` with workers, on the TCP socket reelwatch's server uses: a limit
    # held back by Nagle's algorithm would be no limit (reelwatch.runtime.server.tcp_socket).
    Multiprocess(config, sockets=[tcp_socket(config.bind_socket())]).run()


if __name__ == "__main__":
    main()
