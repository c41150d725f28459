"""Web sessions: a signed cookie carrying a session token, and a CSRF token per session.

The cookie is Starlette's ``SessionMiddleware`` (itsdangerous-signed, ``SameSite=Lax``,
``HttpOnly``) with a key kept in ``$REELWATCH_HOME``, so every server sharing that home
accepts it. It names the signed-in user only through the token of a ``web_sessions`` row
(``reelwatch.sessions``), checked on every request: signing out, a new password or a new
API token revokes the row, and a copy of the cookie then opens nothing.

Every form carries the session's CSRF token; requests the pages' JavaScript makes to the
JSON API carry it in the ``X-CSRF-Token`` header (``reelwatch.api.deps.current_user``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware

from reelwatch import sessions
from reelwatch.config import Settings
from reelwatch.database import Database, utcnow
from reelwatch.db.models import User

SESSION_COOKIE = "reelwatch_session"
SESSION_MAX_AGE_S = int(sessions.SESSION_LIFETIME.total_seconds())
SESSION_TOKEN = "sid"  # noqa: S105 (where the cookie keeps the token, not a secret)
SECRET_KEY_FILE = "web-session.key"  # noqa: S105 (a file name, not a secret)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfError(PermissionError):
    """A state-changing request without this session's CSRF token."""


def install_sessions(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        SessionMiddleware,
        secret_key=load_secret_key(settings.home / SECRET_KEY_FILE),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=settings.resolved_public_url.startswith("https://"),
    )


def load_secret_key(path: Path) -> str:
    """The key in ``path``, created (mode 0600) on first use. Written under a temporary
    name and linked into place, so servers starting together agree on one key."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temp, path)
    except FileExistsError:
        pass  # another server won: use its key
    finally:
        temp.unlink()
    return path.read_text().strip()


def has_session(request: Request) -> bool:
    return "session" in request.scope


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use (also before signing in, for the
    sign-in form itself)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, submitted: object) -> None:
    expected = request.session.get("csrf") if has_session(request) else None
    if not (
        isinstance(expected, str)
        and isinstance(submitted, str)
        and secrets.compare_digest(expected, submitted)
    ):
        raise CsrfError("the form is stale or did not come from this site; reload and retry")


def sign_in(request: Request, db: Database, user: User) -> None:
    """Start a fresh session (a new CSRF token too: nothing from before sign-in carries
    over); the browser's previous session, if any, is revoked."""
    now = utcnow()
    with db.write() as session:
        previous = _session_token(request)
        if previous is not None:
            sessions.revoke(session, previous, now)
        sessions.purge_expired(session, now)
        token = sessions.open_session(session, user.id, now)
    request.session.clear()
    request.session.update({SESSION_TOKEN: token, "csrf": secrets.token_urlsafe(32)})


def sign_out(request: Request, db: Database) -> None:
    token = _session_token(request)
    if token is not None:
        with db.write() as session:
            sessions.revoke(session, token, utcnow())
    request.session.clear()


def session_user(request: Request, db: Database) -> User | None:
    """The signed-in user, or None (no cookie, or its session was revoked or expired)."""
    token = _session_token(request)
    if token is None:
        return None
    now = utcnow()
    with db.read() as session:
        found = sessions.live_session(session, token, now)
    if found is None:
        return None
    web_session, user = found
    if now - web_session.last_seen_at >= sessions.TOUCH_EVERY:
        with db.write() as session:
            sessions.touch(session, web_session.id, now)
    return user


def _session_token(request: Request) -> str | None:
    token = request.session.get(SESSION_TOKEN) if has_session(request) else None
    return token if isinstance(token, str) else None


def api_session_user(request: Request, db: Database) -> User | None:
    """The signed-in user calling the JSON API from a page; a change (POST, DELETE…)
    must also send the CSRF token, which another site cannot read."""
    user = session_user(request, db)
    if user is not None and request.method not in SAFE_METHODS:
        check_csrf(request, request.headers.get(CSRF_HEADER))
    return user
