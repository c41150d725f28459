"""The web app: server-rendered pages over the same service functions as the API.

Jinja2 templates, a signed session cookie with a CSRF token, live updates by
Server-Sent Events, and a little plain JavaScript (uPlot for the admin charts, installed
from npm into ``static/vendor`` by ``scripts/setup.sh``). See docs/web.md.

The pages build on the API (its dependencies, errors, validation, throttles and the
session cookie); ``create_app`` installs them on the API's FastAPI app, and the API knows
nothing of them.
"""

from reelwatch.web.app import create_app

__all__ = ["create_app"]
