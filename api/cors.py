"""Cross-origin access for browser apps on other origins (`IMBRACE_ALLOWED_ORIGINS`).

Frontends served from another origin call ``/graphql`` and download ``/files``
with ``fetch``; the browser first sends a preflight (``OPTIONS``) because the
request carries ``Authorization`` and a JSON ``Content-Type``. Starlette's CORS
middleware answers it for the listed origins only; every other origin gets no
``Access-Control-Allow-Origin`` and the browser keeps the answer from the page.

Credentials are bearer tokens sent by the app itself, never cookies, so
``allow_credentials`` stays off and a wildcard origin can't leak a session.
The same list decides which origins may open a WebSocket (see
:class:`api.graphql.view.GraphQLView`).
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Accept", "X-Request-ID")
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After")
PREFLIGHT_CACHE_S = 600


def cross_origin(app: ASGIApp, allowed_origins: tuple[str, ...]) -> ASGIApp:
    """``app`` answering CORS for ``allowed_origins`` (``*`` allows any origin)."""
    return CORSMiddleware(
        app,
        allow_origins=list(allowed_origins),
        allow_methods=list(ALLOWED_METHODS),
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        allow_credentials=False,
        max_age=PREFLIGHT_CACHE_S,
    )
