"""What any request may carry, checked once at the edge: no NUL byte in any text
(PostgreSQL cannot store one, SQLite would keep it and break whatever reads it later),
ids within the database's 64 bits, and strings of a sane length."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Path
from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from reelwatch.api.errors import error_response

MAX_ROW_ID = 2**63 - 1  # a signed 64-bit integer column
MAX_ID_LENGTH = 200  # video ids are 32 hex digits, worker ids a host name and a pid


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL byte")
    return value


# Free text in a JSON body or a form: any length the model allows, but no NUL.
Text = Annotated[str, AfterValidator(no_nul)]
# A row id in a URL path (the URL itself is NUL-free, see NulFreeUrls).
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
# A generated string id in a URL path.
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]


class NulFreeUrls:
    """Answers 400 to a URL whose path or query holds a NUL byte (raw or ``%00``),
    before any route turns it into a query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _url_has_nul(scope):
            response = error_response(400, "bad_request", "the URL contains a NUL byte")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _url_has_nul(scope: Scope) -> bool:
    path: str = scope["path"]
    query: bytes = scope.get("query_string", b"")
    return "\x00" in path or b"\x00" in unquote_to_bytes(query)
