"""``/docs``, when the API describes itself (``openapi_url``, see reelwatch.api.app):
Swagger UI from this site's own files (``static/vendor``, copied from npm's swagger-ui-dist
by scripts/setup.sh), started by ``static/docs.js`` rather than an inline script, so it
works offline and under the site's strict Content-Security-Policy."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from reelwatch.web.assets import static_url

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    # The page shows no user data; it reads /openapi.json from the browser.
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reelwatch API</title>
<link rel="icon" href="{static_url("favicon.svg")}" type="image/svg+xml">
<link rel="stylesheet" href="{static_url("vendor/swagger-ui.css")}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="/openapi.json">
<noscript>The API's description needs JavaScript; it is also at /openapi.json.</noscript>
</div>
<script src="{static_url("vendor/swagger-ui-bundle.js")}"></script>
<script src="{static_url("docs.js")}"></script>
</body>
</html>
"""
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
