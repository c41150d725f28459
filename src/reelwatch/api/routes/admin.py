"""``/api/v1/admin``: operations on many videos at once, for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from reelwatch.api.deps import ServicesDep, UserDep
from reelwatch.failures import FailureCode
from reelwatch.videos import service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.post("/retry")
def retry_failed(
    svc: ServicesDep, user: UserDep, code: Annotated[FailureCode, Query()]
) -> dict[str, Any]:
    """Re-run every failed video whose error code is ``code``."""
    restarted = service.retry_failed_with_code(svc.db, user, code.value)
    return {"code": code.value, "restarted": restarted}
