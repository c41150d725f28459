"""The admin pages: the dashboard and the workflow definition."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from reelwatch.api.deps import ServicesDep
from reelwatch.engine.spec import workflow_spec
from reelwatch.videos.pipeline import VIDEO_WORKFLOW
from reelwatch.web.dashboard import dashboard_data
from reelwatch.web.deps import AdminUserDep
from reelwatch.web.graph import definition_nodes, render_svg
from reelwatch.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)

CHART_HOURS = (1, 6, 24, 168)


@router.get("")
def dashboard(
    request: Request,
    svc: ServicesDep,
    user: AdminUserDep,
    hours: Annotated[int, Query(ge=1, le=168)] = 6,
) -> HTMLResponse:
    with svc.db.read() as session:
        data = dashboard_data(session, svc.settings)
    context = {**data, "hours": hours, "chart_hours": CHART_HOURS}
    return render(request, svc, "admin/dashboard.html.j2", context, user=user)


@router.get("/workflow")
def workflow_definition(request: Request, svc: ServicesDep, user: AdminUserDep) -> HTMLResponse:
    spec = workflow_spec(VIDEO_WORKFLOW)
    context = {"spec": spec, "graph": render_svg(definition_nodes(spec))}
    return render(request, svc, "admin/workflow.html.j2", context, user=user)
