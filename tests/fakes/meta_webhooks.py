"""The JSON Meta POSTs to a webhook (WhatsApp Cloud API and Messenger), and its signature.

Shapes, and where they were read:

- WhatsApp ``messages`` webhook: ``{"object": "whatsapp_business_account", "entry": [{"id":
  WABA_ID, "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
  "metadata": {"display_phone_number", "phone_number_id"}, "contacts": [{"profile": {"name"},
  "wa_id"}], "messages": [{"from", "id", "timestamp", "type", <type>: {...}}]}}]}]}``, with a
  string ``timestamp`` in Unix seconds. Per type: ``text: {body}``; ``image|video|audio|
  sticker|document: {id, mime_type, sha256, caption?, filename?}``; ``location: {latitude,
  longitude, name?, address?}``; ``contacts: [{name: {formatted_name, ...}, phones: [...]}]``;
  ``interactive: {type: "button_reply", button_reply: {id, title}}`` or ``{type:
  "list_reply", list_reply: {id, title, description}}``; ``button: {text, payload}`` with
  ``context: {from, id}`` (a template's quick-reply button). Read in repo We-are-Sybil/m
  whatsapp_api_knowledge_base/webhook_notification_payloads_example.md (a copy of Meta's
  "Webhook notification payload examples") and
  https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages.
- Unsupported message: ``type: "unsupported"``, ``errors: [{code: 131051, title: "Message
  type unknown", message, error_data: {details: "Message type is currently not
  supported."}}]``, ``unsupported: {type}``:
  https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/unsupported
  and whatsapp-api-js's ServerUnsupportedMessage type (older payloads said ``type: "unknown"``).
- Statuses: ``value.statuses: [{id, status: sent|delivered|read|failed, timestamp,
  recipient_id, pricing?, errors?: [{code, title, message, error_data: {details}, href}]}]``:
  https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status
  and .../messages/errors (the error object's fields).
- Messenger: ``{"object": "page", "entry": [{"id": PAGE_ID, "time", "messaging": [event]}]}``;
  a message ``{sender: {id: PSID}, recipient: {id: PAGE_ID}, timestamp, message: {mid, text?,
  attachments?: [{type, payload: {url}}]}}``; an echo swaps sender and recipient and adds
  ``is_echo: true, app_id``; ``delivery: {mids?, watermark}`` (no ``timestamp`` in the
  documented example, and ``mids`` "may not be present"); ``read: {watermark}``:
  https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messages,
  .../message-echoes, .../message-deliveries, .../message-reads (times in milliseconds).
- Signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the app
  secret>``, computed over "an escaped unicode version of the payload, with lowercase hex
  digits" (``äöå`` -> ``\\u00e4\\u00f6\\u00e5``): Meta's "Validating payloads"
  (https://developers.facebook.com/docs/graph-api/webhooks/getting-started, as quoted on
  stackoverflow.com/questions/73736871). Meta also escapes ``/`` as ``\\/`` (the echo
  example's ``"https:\\/\\/www.facebook.com..."``); :func:`encode` does both, so a receiver
  that verifies a re-serialised body instead of the raw bytes fails, as it would in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from base64 import b64encode
from typing import Any

import httpx

WABA_ID = "102290129340398"
DISPLAY_PHONE_NUMBER = "15550783881"
APP_ID = 1517776481860111  # the app_id of echoes of messages our app sent (a number, as Meta sends it)

MEDIA_TYPES = ("image", "video", "audio", "sticker", "document")


def _wamid() -> str:
    return "wamid." + b64encode(secrets.token_bytes(30)).decode()


def _now_s() -> int:
    return int(time.time())


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- WhatsApp ---------------------------------------------------------------------------


def whatsapp_envelope(
    phone_number_id: str,
    value: dict[str, Any],
    *,
    waba_id: str = WABA_ID,
    display_phone_number: str = DISPLAY_PHONE_NUMBER,
) -> dict[str, Any]:
    """A ``messages``-field notification whose ``value`` holds messages, statuses or errors."""
    metadata = {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}
    value = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


def button_reply(button_id: str, title: str) -> dict[str, Any]:
    """The ``interactive`` object of a tapped reply button."""
    return {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}


def list_reply(row_id: str, title: str, description: str | None = None) -> dict[str, Any]:
    """The ``interactive`` object of a chosen list row."""
    reply = {"id": row_id, "title": title} | ({"description": description} if description is not None else {})
    return {"type": "list_reply", "list_reply": reply}


def whatsapp_error(code: int, title: str, details: str, *, message: str | None = None) -> dict[str, Any]:
    """One object of a webhook's ``errors`` array."""
    return {
        "code": code,
        "title": title,
        "message": message or title,
        "error_data": {"details": details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


_DEFAULT_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "sticker": "image/webp",
    "document": "application/pdf",
}

UNDELIVERABLE = whatsapp_error(131026, "Message undeliverable", "Message Undeliverable.")
UNSUPPORTED = whatsapp_error(131051, "Message type unknown", "Message type is currently not supported.")


def whatsapp_message(
    phone_number_id: str,
    wa_id: str,
    name: str,
    *,
    type: str = "text",
    text: str | None = None,
    media_id: str | None = None,
    mime_type: str | None = None,
    sha256: str | None = None,
    caption: str | None = None,
    filename: str | None = None,
    location: dict[str, Any] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    interactive: dict[str, Any] | None = None,
    button: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    wamid: str | None = None,
    timestamp: int | None = None,
    waba_id: str = WABA_ID,
    display_phone_number: str = DISPLAY_PHONE_NUMBER,
) -> dict[str, Any]:
    """The notification of one message from ``wa_id`` to the business number ``phone_number_id``.

    ``type`` is text, image, video, audio, sticker, document, location, contacts, interactive
    (pass :func:`button_reply` or :func:`list_reply`), button (pass ``{"text", "payload"}``, and
    ``context={"from": ..., "id": <template's wamid>}``) or unsupported.
    """
    message: dict[str, Any] = {"from": wa_id, "id": wamid or _wamid(), "timestamp": str(timestamp or _now_s())}
    if context is not None:
        message["context"] = context
    message["type"] = type
    if type == "text":
        message["text"] = {"body": text if text is not None else "Hello"}
    elif type in MEDIA_TYPES:
        assert media_id is not None, f"a {type} message needs media_id"
        media: dict[str, Any] = {
            "mime_type": mime_type or _DEFAULT_MIME[type],
            "sha256": sha256 or b64encode(hashlib.sha256(media_id.encode()).digest()).decode(),
            "id": media_id,
        }
        if caption is not None:
            media["caption"] = caption
        if filename is not None:
            media["filename"] = filename
        message[type] = media
    elif type == "location":
        message["location"] = location or {
            "latitude": 52.52,
            "longitude": 13.405,
            "name": "Office",
            "address": "Berlin",
        }
    elif type == "contacts":
        message["contacts"] = contacts or [
            {"name": {"formatted_name": "Ada Lovelace", "first_name": "Ada"}, "phones": [{"phone": "+15551234567"}]}
        ]
    elif type == "interactive":
        message["interactive"] = interactive or button_reply("yes", "Yes")
    elif type == "button":
        message["button"] = button or {"text": "Yes", "payload": "YES_PAYLOAD"}
    elif type == "unsupported":
        message["errors"] = [UNSUPPORTED]
        message["unsupported"] = {"type": "edit"}
    else:
        raise ValueError(f"unknown WhatsApp message type {type!r}")
    value = {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]}
    return whatsapp_envelope(phone_number_id, value, waba_id=waba_id, display_phone_number=display_phone_number)


def whatsapp_status(
    phone_number_id: str,
    wamid: str,
    status: str,
    recipient_id: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    timestamp: int | None = None,
    waba_id: str = WABA_ID,
    display_phone_number: str = DISPLAY_PHONE_NUMBER,
) -> dict[str, Any]:
    """The status notification (sent, delivered, read or failed) of the message ``wamid``.

    A failed status carries ``errors`` (by default :data:`UNDELIVERABLE`); build others with
    :func:`whatsapp_error`.
    """
    assert status in ("sent", "delivered", "read", "failed"), status
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp or _now_s()),
        "recipient_id": recipient_id,
    }
    if status == "failed":
        entry["errors"] = errors if errors is not None else [UNDELIVERABLE]
    elif status in ("sent", "delivered"):
        entry["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    value = {"statuses": [entry]}
    return whatsapp_envelope(phone_number_id, value, waba_id=waba_id, display_phone_number=display_phone_number)


# -- Messenger --------------------------------------------------------------------------


def messenger_envelope(page_id: str, event: dict[str, Any], *, time_ms: int | None = None) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": page_id, "time": time_ms or _now_ms(), "messaging": [event]}]}


def messenger_attachment(kind: str, url: str) -> dict[str, Any]:
    """One of a message's ``attachments``: image, video, audio or file, at a CDN ``url``."""
    return {"type": kind, "payload": {"url": url}}


def messenger_message(
    page_id: str,
    psid: str,
    *,
    text: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    mid: str | None = None,
    timestamp: int | None = None,
    is_echo: bool = False,
    app_id: int = APP_ID,
) -> dict[str, Any]:
    """A message from ``psid`` to the page; with ``is_echo``, one the page sent to ``psid``.

    An echo's ``app_id`` says which app sent it: :data:`APP_ID` for ours, another for a
    person answering in the Page inbox or a second app.
    """
    assert text is not None or attachments, "a Messenger message has text or attachments"
    message: dict[str, Any] = {"mid": mid or "m_" + secrets.token_urlsafe(32)}
    if is_echo:
        message = {"is_echo": True, "app_id": app_id, **message}
    if text is not None:
        message["text"] = text
    if attachments:
        message["attachments"] = attachments
    sender, recipient = (page_id, psid) if is_echo else (psid, page_id)
    at = timestamp or _now_ms()
    event = {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": at, "message": message}
    return messenger_envelope(page_id, event, time_ms=at)


def messenger_delivery(page_id: str, psid: str, watermark_ms: int, mids: list[str] | None = None) -> dict[str, Any]:
    """``psid`` received every page message sent before ``watermark_ms`` (and ``mids``, when given)."""
    delivery: dict[str, Any] = {"watermark": watermark_ms}
    if mids is not None:
        delivery = {"mids": mids, **delivery}
    return messenger_envelope(page_id, {"sender": {"id": psid}, "recipient": {"id": page_id}, "delivery": delivery})


def messenger_read(page_id: str, psid: str, watermark_ms: int, *, timestamp: int | None = None) -> dict[str, Any]:
    """``psid`` read every page message sent up to ``watermark_ms``."""
    event = {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": timestamp or _now_ms(),
        "read": {"watermark": watermark_ms},
    }
    return messenger_envelope(page_id, event)


# -- the signature ----------------------------------------------------------------------


def encode(payload: dict[str, Any]) -> bytes:
    """The body bytes as Meta sends them: compact JSON, non-ASCII and ``/`` escaped."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value for ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


async def signed_post(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    app_secret: str,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``payload`` as Meta would: encoded once, signed over exactly those bytes."""
    body = encode(payload)
    signed = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(app_secret, body), **(headers or {})}
    return await client.post(url, content=body, headers=signed)
