"""The JSON LINE POSTs to a webhook, and its ``X-Line-Signature``.

Shapes, and where they were read (the OpenAPI file ``webhook.yml`` in the repository
line/line-openapi, and LINE's reference pages by URL):

- Request body ``{"destination": <bot user id, U + 32 hex digits>, "events": [...]}``; an empty
  ``events`` array confirms communication (the console's "Verify"):
  https://developers.line.biz/en/reference/messaging-api/#request-body.
- Every event: ``type``, ``source`` (``{type: "user", userId}``; group and room sources add
  ``groupId``/``roomId``), ``timestamp`` in milliseconds, ``mode`` (active | standby),
  ``webhookEventId`` (a ULID), ``deliveryContext: {isRedelivery}``; message and follow events add
  a ``replyToken``: https://developers.line.biz/en/reference/messaging-api/#common-properties.
- ``message`` events (#message-event): ``message.id`` and ``type``; ``text`` with ``text`` and
  ``quoteToken``; ``image``/``video``/``audio`` with ``contentProvider: {type: "line"}`` or
  ``{type: "external", originalContentUrl, previewImageUrl}`` (``duration`` on video and audio,
  ``imageSet`` on images sent together); ``file`` with ``fileName``, ``fileSize``; ``location``
  with ``title``, ``address``, ``latitude``, ``longitude``; ``sticker`` with ``packageId``,
  ``stickerId``, ``stickerResourceType``, ``keywords`` and, for message stickers, ``text``.
- ``follow`` (``follow: {isUnblocked}``) and ``unfollow`` (no reply token): #follow-event, #unfollow-event.
- Signature: the Base64 HMAC-SHA256 digest of the request body keyed by the channel secret
  (https://developers.line.biz/en/docs/messaging-api/receiving-messages/#verifying-signatures).
  :func:`encode` writes non-ASCII characters as UTF-8, so a receiver that verifies a
  re-serialised body instead of the raw bytes fails, as it would in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx

BOT_USER_ID = "U" + "0f3b5c7d9e1a2b4c6d8e0f1a3b5c7d9e"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    """A ULID-shaped id, as ``webhookEventId`` is: 48 bits of milliseconds, 80 random bits."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def user_id() -> str:
    """A LINE user id: ``U`` and 32 hexadecimal digits."""
    return "U" + secrets.token_hex(16)


def message_id() -> str:
    """A LINE message id: a string of digits."""
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def callback(*events: dict[str, Any], destination: str = BOT_USER_ID) -> dict[str, Any]:
    """The request body carrying ``events`` (none: LINE's verification request)."""
    return {"destination": destination, "events": list(events)}


def event(
    type: str,
    user: str,
    *,
    webhook_event_id: str | None = None,
    redelivery: bool = False,
    timestamp: int | None = None,
    mode: str = "active",
    source: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One event of ``type`` from ``user`` in a one-to-one chat (or from ``source``)."""
    base: dict[str, Any] = {
        "type": type,
        "timestamp": timestamp or int(time.time() * 1000),
        "source": source or {"type": "user", "userId": user},
        "mode": mode,
        "webhookEventId": webhook_event_id or ulid(),
        "deliveryContext": {"isRedelivery": redelivery},
    }
    if type in ("message", "follow", "postback"):
        base["replyToken"] = secrets.token_hex(16)
    return base | fields


def message(user: str, content: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A ``message`` event; ``content`` is the message object without its id (one is made)."""
    return event("message", user, message={"id": message_id(), **content}, **options)


def text(user: str, body: str, **options: Any) -> dict[str, Any]:
    return message(user, {"type": "text", "quoteToken": secrets.token_urlsafe(16), "text": body}, **options)


def media(user: str, kind: str, content_id: str, *, external_url: str | None = None, **options: Any) -> dict[str, Any]:
    """An image, video or audio message whose content LINE holds under ``content_id`` (the message
    id), or, with ``external_url``, that the sender's own server holds."""
    assert kind in ("image", "video", "audio"), kind
    provider: dict[str, Any] = {"type": "line"}
    if external_url is not None:
        provider = {"type": "external", "originalContentUrl": external_url, "previewImageUrl": external_url}
    content: dict[str, Any] = {"id": content_id, "type": kind, "contentProvider": provider}
    if kind == "image":
        content["quoteToken"] = secrets.token_urlsafe(16)
    else:
        content["duration"] = 6000
    return event("message", user, message=content, **options)


def file(user: str, content_id: str, file_name: str, file_size: int, **options: Any) -> dict[str, Any]:
    content = {"id": content_id, "type": "file", "fileName": file_name, "fileSize": file_size}
    return event("message", user, message=content, **options)


def location(
    user: str, latitude: float, longitude: float, *, title: str | None = None, address: str | None = None, **options
) -> dict[str, Any]:
    content: dict[str, Any] = {"type": "location", "latitude": latitude, "longitude": longitude}
    content |= ({"title": title} if title else {}) | ({"address": address} if address else {})
    return message(user, content, **options)


def sticker(user: str, *, keywords: list[str] | None = None, text: str | None = None, **options: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "type": "sticker",
        "packageId": "446",
        "stickerId": "1988",
        "stickerResourceType": "MESSAGE" if text else "STATIC",
        "quoteToken": secrets.token_urlsafe(16),
    }
    if keywords is not None:
        content["keywords"] = keywords
    if text is not None:
        content["text"] = text
    return message(user, content, **options)


def follow(user: str, *, unblocked: bool = False, **options: Any) -> dict[str, Any]:
    return event("follow", user, follow={"isUnblocked": unblocked}, **options)


def unfollow(user: str, **options: Any) -> dict[str, Any]:
    return event("unfollow", user, **options)


def redelivered(original: dict[str, Any]) -> dict[str, Any]:
    """The same event as LINE redelivers it: same ``webhookEventId``, ``isRedelivery: true``."""
    return {**original, "deliveryContext": {"isRedelivery": True}}


# -- the signature ----------------------------------------------------------------------


def encode(payload: dict[str, Any]) -> bytes:
    """The body bytes: compact JSON, non-ASCII characters as UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(channel_secret: str, body: bytes) -> str:
    """The ``X-Line-Signature`` header value for ``body``."""
    return base64.b64encode(hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()).decode()


async def signed_post(
    client: httpx.AsyncClient, url: str, payload: dict[str, Any], channel_secret: str
) -> httpx.Response:
    """POST ``payload`` as LINE would: encoded once, signed over exactly those bytes."""
    body = encode(payload)
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": sign(channel_secret, body)}
    return await client.post(url, content=body, headers=headers)
