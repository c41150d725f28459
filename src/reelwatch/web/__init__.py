"""The web app: server-rendered pages over the same service functions as the API.

Jinja2 templates, a signed session cookie with a CSRF token, live updates by
Server-Sent Events, and a little plain JavaScript (uPlot for the admin charts, installed
from npm into ``static/vendor`` by ``scripts/setup.sh``). See docs/web.md.

``reelwatch.web.app.install_web`` wires it into the API's FastAPI app; this module stays
empty because the web routes import ``reelwatch.api``, which imports them back.
"""
