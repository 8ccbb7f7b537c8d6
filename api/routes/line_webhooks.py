"""LINE's webhook: ``POST /webhooks/line/{channelId}``, signed with ``X-Line-Signature``.

The channel's credentials are loaded (404 for an unknown channel, one of another type, or
one without credentials), the raw body's signature is checked (401 and nothing stored when
it is missing or wrong), and what :func:`api.channels.line.parse` finds is stored by the
shared :func:`api.routes.webhooks.receive`, display names looked up afterwards (LINE's
events carry none). A body whose ``events`` is empty (the console's "Verify") stores
nothing and answers 200 like any other.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from api.channels import line
from api.routes.body import BodyError, json_of, read_limited
from api.routes.webhooks import receive
from domain.credentials import LineCredentials
from domain.enums import ChannelType
from domain.validation import is_id


async def events(request: Request) -> Response:
    services = request.app.state.services
    channel_id = request.path_params["channel_id"]
    loaded = await services.credentials.load(channel_id) if is_id(channel_id) else None
    if loaded is None or loaded[0].type is not ChannelType.LINE or not isinstance(loaded[1], LineCredentials):
        return JSONResponse({"error": "No such channel."}, status_code=404)
    channel, credentials = loaded
    try:
        body = await read_limited(request, services.settings.max_body_bytes)
    except BodyError as error:
        return JSONResponse({"error": error.detail}, status_code=error.status)
    if not line.signature_matches(credentials.channel_secret, body, request.headers.get("x-line-signature")):
        return JSONResponse({"error": "Missing or wrong X-Line-Signature."}, status_code=401)
    try:
        payload = json_of(body)
    except BodyError as error:
        return JSONResponse({"error": error.detail}, status_code=400)
    await receive(services, channel, line.parse(payload), look_up_names=True)
    return PlainTextResponse("OK")
