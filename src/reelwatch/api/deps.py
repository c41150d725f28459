"""Request dependencies: the services held by the app, and the calling user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from reelwatch.accounts import user_for_token
from reelwatch.api.errors import ApiError
from reelwatch.api.session import api_session_user
from reelwatch.config import Settings
from reelwatch.database import Database
from reelwatch.db.models import User
from reelwatch.storage import MediaStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    store: MediaStore


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]


def current_user(request: Request, svc: ServicesDep) -> User:
    """The bearer of an API token or, for the web pages' own calls, the signed-in user
    of the session cookie (changes must then carry its CSRF token)."""
    if "authorization" not in request.headers:
        user = api_session_user(request, svc.db)
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
    with svc.db.read() as session:
        user = user_for_token(session, token.strip())
    if user is None:
        raise ApiError(
            401, "unauthorized", "unknown API token", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


UserDep = Annotated[User, Depends(current_user)]
