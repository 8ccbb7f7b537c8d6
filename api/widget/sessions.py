"""``POST /widget/v1/sessions``: a visitor's session token, from one of the widget's allowed origins.

The body is JSON: ``{widgetKey, visitorId?, identifier?, identifierHash?, name?, email?,
pageUrl?, timeZone?, language?}``. ``201`` answers ``{token, visitorId, expiresAt,
conversationId}``; refusals answer ``{"error", "code"}`` (see :data:`STATUS`), a
``429`` with ``Retry-After``. The client address (the socket peer, or ``X-Forwarded-For``
behind ``IMBRACE_TRUSTED_PROXIES``) is counted against the session budget and looked
up for the visitor's location. The rules are :func:`domain.usecases.widget.start_session`'s.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.client_address import client_address
from api.routes.body import BodyError, read_json
from api.secrets import SecretError
from api.widget.cors import allow, preflight, refusal, request_origin
from domain.enums import ErrorCode
from domain.errors import Refused
from domain.usecases.widget import SessionRequest, start_session
from domain.widget import RateLimited

log = logging.getLogger("imbrace.widget")

STATUS = {
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.IDENTITY_MISMATCH: 401,
    ErrorCode.ORIGIN_NOT_ALLOWED: 403,
    ErrorCode.UNKNOWN_WIDGET: 404,
    ErrorCode.RATE_LIMITED: 429,
}
FIELDS = {
    "widgetKey": "widget_key",
    "visitorId": "visitor_id",
    "identifier": "identifier",
    "identifierHash": "identifier_hash",
    "name": "name",
    "email": "email",
    "pageUrl": "page_url",
    "timeZone": "time_zone",
    "language": "language",
}
MAX_FIELD_LENGTH = 4096


async def sessions(request: Request) -> Response:
    services = request.app.state.services
    if request.method == "OPTIONS":
        return await preflight(services.store, request.headers, ("POST",))
    raw_origin, origin = request_origin(request.headers)
    # whether a refusal other than the origin's may be read by the page (some widget allows it)
    readable = origin is not None and origin != "null" and await services.store.widget_origin_known(origin)
    cors = allow(origin) if readable and origin else {}
    try:
        body = await read_json(request, services.settings.max_body_bytes)
    except BodyError as error:
        code = {413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}.get(error.status, "INVALID_INPUT")
        status = error.status if error.status in (413, 415) else 400
        return refusal(status, code, "Send a JSON object (Content-Type: application/json).", cors)
    values, problem = _fields(body)
    if problem is not None:
        return refusal(400, "INVALID_INPUT", problem, cors)
    address = client_address(request.scope, services.settings.trusted_proxies)
    location = await services.geo.locate(address) if services.geo is not None else None
    now = services.clock()
    try:
        grant = await start_session(
            services.store,
            services.events,
            services.identity_secrets,
            services.store.rate_limits,
            SessionRequest(origin=raw_origin, client_address=address, **values),
            location,
            now,
            services.settings.widget_limits,
        )
    except SecretError:
        log.exception("widget %s: its identity secret can't be opened with this server's key", values["widget_key"])
        return refusal(500, "INTERNAL_SERVER_ERROR", "This widget's identity verification is misconfigured.", cors)
    except RateLimited as limited:
        return refusal(429, "RATE_LIMITED", limited.message, {**cors, "Retry-After": str(limited.retry_after_s)})
    except Refused as refused:
        status = STATUS.get(refused.code, 400)
        return refusal(status, refused.code.value, refused.message, {} if status == 403 else cors, refused.field)
    token, expires = services.widget_tokens.issue(grant.session)
    return JSONResponse(
        {
            "token": token,
            "visitorId": grant.session.visitor_id,
            "expiresAt": datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z"),
            "conversationId": grant.conversation.id if grant.conversation else None,
        },
        status_code=201,
        headers={**allow(grant.session.origin), "Cache-Control": "no-store"},
    )


def _fields(body: Any) -> tuple[dict[str, Any], str | None]:
    """The known fields as strings (None when absent or null); the first problem, if any."""
    if not isinstance(body, dict):
        return {}, "The body must be a JSON object."
    values: dict[str, Any] = {}
    for name, attribute in FIELDS.items():
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH):
            return {}, f"`{name}` must be a string."
        values[attribute] = value
    if not values["widget_key"]:
        return {}, "`widgetKey` is required."
    return values, None
