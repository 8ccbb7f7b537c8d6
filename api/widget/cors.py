"""Cross-origin access to the visitor side, for the widgets' allowed origins only.

The agent API's origins are one list (``IMBRACE_ALLOWED_ORIGINS``); the widget's are each
channel's ``allowedOrigins``. A request is answered with ``Access-Control-Allow-Origin``
only for an origin it may come from: a session from one of its channel's origins, and a
``/widget/graphql`` request from the origin its session started on (still allowed by the
channel). A preflight (``OPTIONS``) carries neither widget key nor token, so it is
answered for an origin some widget allows; the request itself is then judged as above.
An origin no widget allows gets ``403`` and no CORS headers, preflight or not.

Bearer tokens travel in ``Authorization``, never cookies, so credentials stay off.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse, Response

from domain.widget import normalized_origin

ALLOWED_HEADERS = ("authorization", "content-type", "accept", "x-request-id")
EXPOSED_HEADERS = "Retry-After, X-Request-ID"
PREFLIGHT_CACHE_S = 600


def request_origin(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(the ``Origin`` header as sent, normalized) — both None when there is none."""
    raw = headers.get("origin")
    if raw is None:
        return None, None
    return raw, normalized_origin(raw) or "null"


def allow(origin: str) -> dict[str, str]:
    """The headers that let a page on ``origin`` read the answer."""
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSED_HEADERS, "Vary": "Origin"}


def refusal(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, field: str | None = None
) -> JSONResponse:
    body = {"error": message, "code": code} | ({"field": field} if field else {})
    return JSONResponse(body, status_code=status, headers={"Vary": "Origin", **(headers or {})})


async def preflight(store, headers: Mapping[str, str], methods: tuple[str, ...]) -> Response:
    """``OPTIONS``: allowed for an origin some widget allows, asking for one of ``methods``."""
    _, origin = request_origin(headers)
    method = (headers.get("access-control-request-method") or "").upper()
    if origin is None or origin == "null" or method not in methods or not await store.widget_origin_known(origin):
        return refusal(403, "ORIGIN_NOT_ALLOWED", "This origin may not use the widget.")
    asked = [h.strip().lower() for h in (headers.get("access-control-request-headers") or "").split(",") if h.strip()]
    return Response(
        status_code=204,
        headers={
            **allow(origin),
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": ", ".join(h for h in asked if h in ALLOWED_HEADERS) or "content-type",
            "Access-Control-Max-Age": str(PREFLIGHT_CACHE_S),
        },
    )
