"""Meta's webhooks for WhatsApp and Messenger: the verification handshake, then signed event batches.

A request is handled in the order that keeps Meta's promises and ours: the
channel's credentials are loaded, the raw body's ``X-Hub-Signature-256`` is checked
(401 and nothing stored when it is missing or wrong), the body is parsed by the
platform's module, and each customer message is stored exactly once (a
redelivery finds its provider id and stores nothing new), each status moves its
delivery forward. The answer is 200 as soon as that is stored; the slow parts
(copying a customer's files, looking up a Messenger name) are jobs of the delivery
worker, so they survive a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from api.channels import messenger, meta, whatsapp
from api.channels.inbound import Parsed
from api.routes.body import BodyError, json_of, read_limited
from domain.credentials import MessengerCredentials, WhatsAppCredentials
from domain.entities import Channel
from domain.enums import ChannelType
from domain.errors import Refused
from domain.usecases.customers import record_follow
from domain.usecases.delivery import record_status, record_watermark
from domain.usecases.inbound import receive_customer_message
from domain.validation import is_id

log = logging.getLogger("imbrace.webhooks")


@dataclass(frozen=True, slots=True)
class MetaPlatform:
    channel_type: ChannelType
    parse: Callable[[Any, str], Parsed]
    account_id: Callable[[Any], str]  # the phone number or page a payload must be addressed to
    looks_up_names: bool  # Messenger sends no name: it is read from the Graph API afterwards


WHATSAPP = MetaPlatform(ChannelType.WHATSAPP, whatsapp.parse, lambda c: c.phone_number_id, looks_up_names=False)
MESSENGER = MetaPlatform(ChannelType.FACEBOOK, messenger.parse, lambda c: c.page_id, looks_up_names=True)


def handshake(platform: MetaPlatform) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        found = await _connected_channel(request, platform)
        if isinstance(found, Response):
            return found
        _channel, credentials = found
        challenge = meta.handshake(request.query_params, credentials.verify_token)
        if challenge is None:
            return PlainTextResponse("Verification token mismatch.", status_code=403)
        return PlainTextResponse(challenge)

    return endpoint


def events(platform: MetaPlatform) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        services = request.app.state.services
        found = await _connected_channel(request, platform)
        if isinstance(found, Response):
            return found
        channel, credentials = found
        try:
            body = await read_limited(request, services.settings.max_body_bytes)
        except BodyError as error:
            return JSONResponse({"error": error.detail}, status_code=error.status)
        if not meta.signature_matches(credentials.app_secret, body, request.headers.get("x-hub-signature-256")):
            return JSONResponse({"error": "Missing or wrong X-Hub-Signature-256."}, status_code=401)
        try:
            payload = json_of(body)
        except BodyError as error:
            return JSONResponse({"error": error.detail}, status_code=400)
        parsed = platform.parse(payload, platform.account_id(credentials))
        await receive(services, channel, parsed, look_up_names=platform.looks_up_names)
        return PlainTextResponse("EVENT_RECEIVED")

    return endpoint


async def receive(services: Any, channel: Channel, parsed: Parsed, *, look_up_names: bool) -> None:
    """Store what one provider webhook call carries (every provider's route ends here).

    A message the use case refuses (say, a name with control characters) is logged and
    skipped, not answered with an error: the provider would redeliver the whole batch
    forever. ``look_up_names``: the provider sends no name, so a new customer's is read
    from its API afterwards (a job of the delivery worker)."""
    now = services.clock()
    t = services.settings.thresholds
    queued = False
    for inbound in parsed.messages:
        try:
            receipt = await receive_customer_message(services.store, services.events, channel, inbound, now, t)
        except Refused as refused:
            log.warning("channel %s: a %s message was refused: %s", channel.id, channel.type.value, refused)
            continue
        if receipt.duplicate:
            continue
        queued = queued or any(a.media_ref for a in inbound.attachments)
        if look_up_names and inbound.customer.name is None:
            customer = await services.store.customer(channel.org_id, receipt.conversation_id)
            if customer is not None and customer.name is None:
                await services.store.deliveries.schedule(receipt.message_id, now)
                queued = True
    for report in parsed.statuses:
        await record_status(services.store.deliveries, services.store, services.events, channel, report, now)
    for mark in parsed.watermarks:
        await record_watermark(services.store.deliveries, services.store, services.events, channel, mark, now)
    for follow in parsed.follows:
        await record_follow(services.store, services.events, channel, follow.external_id, follow.following, now)
    if queued and services.delivery is not None:
        services.delivery.notify()


async def _connected_channel(
    request: Request, platform: MetaPlatform
) -> tuple[Channel, WhatsAppCredentials | MessengerCredentials] | Response:
    """The channel of the URL with its credentials; 404 for an unknown channel, one of
    another type, or one without credentials (nothing about which)."""
    services = request.app.state.services
    channel_id = request.path_params["channel_id"]
    loaded = await services.credentials.load(channel_id) if is_id(channel_id) else None
    expected = WhatsAppCredentials if platform.channel_type is ChannelType.WHATSAPP else MessengerCredentials
    if loaded is None or loaded[0].type is not platform.channel_type or not isinstance(loaded[1], expected):
        return JSONResponse({"error": "No such channel."}, status_code=404)
    channel, credentials = loaded
    assert isinstance(credentials, (WhatsAppCredentials, MessengerCredentials))  # checked just above
    return channel, credentials
