"""WeChat's server URL: the verification GET, then signed XML pushes (:mod:`api.channels.wechat`).

A push is handled in the order that keeps WeChat's promises and ours: the channel's
credentials are loaded (404 for anything but a connected WeChat channel), the query's
``signature`` is checked against the channel's Token (403 and nothing read or stored when
it is missing or wrong), the body is read within ``IMBRACE_MAX_BODY_BYTES`` (413) and parsed
without DTDs or entities (400 and nothing stored for anything else), and what it carries is
stored by the providers' shared path (:func:`api.routes.webhooks.receive`): a retried
``MsgId`` stores nothing new. Then the literal ``success``, at once: WeChat retries a push it
gets no answer to within five seconds, and the slow part (copying a customer's file) is a job
of the delivery worker.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from api.channels import wechat
from api.routes.body import BodyError, read_limited
from api.routes.webhooks import receive
from domain.credentials import WeChatCredentials
from domain.entities import Channel
from domain.enums import ChannelType
from domain.validation import is_id

log = logging.getLogger("imbrace.webhooks")


async def handshake(request: Request) -> Response:
    found = await _connected_channel(request)
    if isinstance(found, Response):
        return found
    _channel, credentials = found
    echo = wechat.echo_of(request.query_params, credentials.token)
    if echo is None:
        return PlainTextResponse("Signature mismatch.", status_code=403)
    return PlainTextResponse(echo)


async def events(request: Request) -> Response:
    services = request.app.state.services
    found = await _connected_channel(request)
    if isinstance(found, Response):
        return found
    channel, credentials = found
    params = request.query_params
    if not wechat.signature_matches(
        credentials.token, params.get("signature"), params.get("timestamp"), params.get("nonce")
    ):
        return PlainTextResponse("Missing or wrong signature.", status_code=403)
    try:
        body = await read_limited(request, services.settings.max_body_bytes)
    except BodyError as error:
        return PlainTextResponse(str(error.detail), status_code=error.status)
    try:
        parsed = wechat.parse(body)
    except wechat.WeChatXMLError as error:
        log.warning("channel %s: a WeChat push was refused: %s", channel.id, error)
        return PlainTextResponse(str(error), status_code=400)
    await receive(services, channel, parsed, look_up_names=False)
    return PlainTextResponse("success")


async def _connected_channel(request: Request) -> tuple[Channel, WeChatCredentials] | Response:
    """The channel of the URL with its credentials; 404 for an unknown channel, one of
    another type, or one without credentials (nothing about which)."""
    services = request.app.state.services
    channel_id = request.path_params["channel_id"]
    loaded = await services.credentials.load(channel_id) if is_id(channel_id) else None
    if loaded is None or loaded[0].type is not ChannelType.WECHAT or not isinstance(loaded[1], WeChatCredentials):
        return PlainTextResponse("No such channel.", status_code=404)
    return loaded[0], loaded[1]
