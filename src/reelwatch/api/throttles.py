"""The throttles on what anyone may try without an account: signing in and subscribing
to the status e-mail (``reelwatch.throttle``; limits in ``reelwatch.config``).

The client IP is ``request.client.host``: the peer's address, or, when the peer is a
proxy listed in ``REELWATCH_FORWARDED_ALLOW_IPS`` (uvicorn's ``forwarded_allow_ips``,
loopback by default), the last address in ``X-Forwarded-For`` that is not such a proxy.
IPv6 clients are counted per /64, the block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request

from reelwatch.api.deps import Services
from reelwatch.api.errors import ApiError
from reelwatch.config import Settings
from reelwatch.throttle import Attempt, Limit, forgive, hit
from reelwatch.timewords import span_in_words

HOUR_S, DAY_S = 3600, 86400


def client_ip(request: Request) -> str:
    """The client's address, or its /64 for IPv6 (one host may hold all of it)."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _sign_in_attempt(settings: Settings, request: Request, account: str | None) -> Attempt:
    window = settings.login_window_seconds
    by_ip = (Limit("login-ip", settings.login_failures_per_ip, window), client_ip(request))
    if account is None:
        return [by_ip]
    by_account = Limit("login-account", settings.login_failures_per_account, window)
    return [by_ip, (by_account, account.strip().lower())]


def check_sign_in(svc: Services, request: Request, account: str | None) -> int | None:
    """Count a sign-in (as ``account``, when given) before its password is hashed; the
    seconds to wait when this IP or account has failed too often, else None."""
    return hit(svc.db, _sign_in_attempt(svc.settings, request, account))


def signed_in(svc: Services, request: Request, account: str | None) -> None:
    """Only failures add up: the account starts afresh, the IP gets its attempt back."""
    by_ip, *by_account = _sign_in_attempt(svc.settings, request, account)
    forgive(svc.db, reset=by_account, refund=[by_ip])


def check_subscription(svc: Services, request: Request, email: str) -> int | None:
    """Count a status subscription per client IP (an hour) and per address (a day), so
    that nobody can flood the table or an inbox through it."""
    settings = svc.settings
    by_ip = Limit("subscribe-ip", settings.status_subscriptions_per_ip, HOUR_S)
    by_address = Limit("subscribe-address", settings.status_subscriptions_per_address, DAY_S)
    return hit(svc.db, [(by_ip, client_ip(request)), (by_address, email.strip().lower())])


def retry_message(what: str, retry_after: int) -> str:
    return f"{what}; try again in {span_in_words(retry_after)}"


def too_many_requests(what: str, retry_after: int) -> ApiError:
    """The API's 429, with Retry-After in seconds."""
    return ApiError(
        429,
        "too_many_requests",
        retry_message(what, retry_after),
        headers={"Retry-After": str(retry_after)},
    )
