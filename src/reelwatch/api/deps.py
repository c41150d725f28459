"""Request dependencies: the services held by the app, and the calling user."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool

from reelwatch.api.errors import ApiError
from reelwatch.api.session import api_session_user
from reelwatch.api.tokens import TokenCache
from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.db.models import User
from reelwatch.storage import MediaStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    store: MediaStore
    tokens: TokenCache = field(default_factory=TokenCache)


def services(request: Request) -> Services:
    return services_of(request.app)


def services_of(app: Starlette) -> Services:
    return app.state.services  # type: ignore[no-any-return]


async def _services(request: Request) -> Services:
    # Async: FastAPI runs a sync dependency in the thread pool, a hop for an attribute.
    return services(request)


ServicesDep = Annotated[Services, Depends(_services)]


async def current_user(request: Request, svc: ServicesDep) -> User:
    """The bearer of an API token or, for the web pages' own calls, the signed-in user
    of the session cookie (changes must then carry its CSRF token).

    Async, so that a token seen in the last seconds (``reelwatch.api.tokens``) costs no
    trip to the thread pool; the database is only read off the event loop."""
    if "authorization" not in request.headers:
        user = await run_in_threadpool(api_session_user, request, svc.db)
        if user is not None:
            return user
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "send an API token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = token.strip()
    user = await svc.tokens.user(svc.db, token)
    if user is None:
        raise ApiError(
            401, "unauthorized", "unknown API token", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


UserDep = Annotated[User, Depends(current_user)]
