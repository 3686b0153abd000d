"""The one place trialwatch reaches into Faust's web driver.

Faust has no public hook for aiohttp middlewares. Its aiohttp driver
(``faust.web.drivers.aiohttp.Web``) builds ``aiohttp.web.Application(
**app.conf.web_application_options)`` and keeps it as ``app.web.web_app``; we pass
the access middleware (``streams.access``) and the request-size bound through that
setting, and ``aiohttp_app`` names the attribute for the test that checks it.

Remove this module when Faust offers a documented middleware hook (or when the
web driver is no longer aiohttp): ``tests/streams/test_access.py`` fails first if
``app.web.web_app`` stops being the aiohttp Application our middleware is in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trialwatch.streams import access

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/dashboard/static/"
# Largest request body aiohttp reads (the upload form's file plus its multipart
# envelope; POST /score's event lists). The upload's own, smaller bound gives a
# clear message first (streams.dashboard.MAX_UPLOAD_BYTES).
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def application_options(settings) -> dict[str, Any]:
    """``web_application_options`` of the Faust app: the aiohttp Application kwargs."""
    creds = access.Credentials.of(settings)
    return {"middlewares": [access.middleware(lambda: creds)], "client_max_size": MAX_REQUEST_BYTES}


def aiohttp_app(app):
    """The aiohttp Application behind Faust's web server (Faust internal, see above)."""
    return app.web.web_app


def serve_static(app) -> None:
    """The vendored htmx (and its license) under /dashboard/static/."""
    app.web.add_static(STATIC_PREFIX, STATIC_DIR)
