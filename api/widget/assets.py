"""The widget's browser side: the script sites embed, and a demo page to try it on.

``GET /widget.js`` serves ``api/static/widget/widget.js`` (shipped as package data) as
it is: one file, no build step. Browsers keep it five minutes and then revalidate
with its ETag, so a new version reaches every site within minutes at the cost of a
304. Script tags need no CORS; ``Cross-Origin-Resource-Policy: cross-origin`` lets
sites that isolate themselves (COEP) load it too.

``GET /widget/demo?key=wk_…`` is a plain host page embedding the widget with that
key, under a strict Content-Security-Policy like a careful site would set; it works
once this server's own origin is one of the channel's ``allowedOrigins``.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

SCRIPT_PATH = Path(__file__).resolve().parent.parent / "static" / "widget" / "widget.js"
SCRIPT_MAX_AGE_S = 300
JAVASCRIPT = "text/javascript; charset=utf-8"


class WidgetScript:
    """``/widget.js``, read once when the app is built."""

    def __init__(self, path: Path = SCRIPT_PATH) -> None:
        self.body = path.read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'
        self.headers = {
            "ETag": self.etag,
            "Cache-Control": f"public, max-age={SCRIPT_MAX_AGE_S}",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        }

    async def respond(self, request: Request) -> Response:
        if _matches(request.headers.get("if-none-match", ""), self.etag):
            return Response(status_code=304, headers=self.headers)
        return Response(self.body, media_type=JAVASCRIPT, headers=self.headers)


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110 13.1.2) or is ``*``."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


DEMO_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Web widget demo</title>
</head>
<body>
<h1>Web widget demo</h1>
{body}
</body>
</html>
"""


def demo_csp(request: Request) -> str:
    """What a careful site would allow: scripts and connections to this server, no inline anything."""
    socket = ("wss://" if request.url.scheme == "https" else "ws://") + request.url.netloc
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self' {socket}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


async def demo_page(request: Request) -> HTMLResponse:
    key = request.query_params.get("key", "").strip()
    origin = html.escape(f"{request.url.scheme}://{request.url.netloc}")
    if key:
        body = (
            f"<p>This page embeds the widget of <code>{html.escape(key)}</code>: the button at the bottom right "
            "opens it. It runs under a strict Content-Security-Policy (no inline scripts or styles).</p>\n"
            f"<p>Sessions start only from the channel's <code>allowedOrigins</code>: add <code>{origin}</code> "
            "to them to chat from here.</p>\n"
            f'<script src="/widget.js" data-widget-key="{html.escape(key, quote=True)}" async></script>'
        )
    else:
        body = (
            "<p>Open this page with a channel's widget key: <code>/widget/demo?key=wk_…</code>.</p>\n"
            '<form method="get" action="/widget/demo"><label>Widget key <input name="key" required></label> '
            "<button>Show the widget</button></form>"
        )
    return HTMLResponse(
        DEMO_PAGE.format(body=body),
        headers={
            "Content-Security-Policy": demo_csp(request),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def routes() -> list[Route]:
    return [
        Route("/widget.js", WidgetScript().respond, methods=["GET", "HEAD"]),
        Route("/widget/demo", demo_page, methods=["GET", "HEAD"]),
    ]
