"""Facebook Messenger: the page webhook in, the Send API, CDN media and the User Profile API out.

Verification is Meta's shared scheme (:mod:`api.channels.meta`). :func:`parse` reads
``entry[].messaging[]`` for this channel's page: ``message`` events (text, attachments,
quick replies), ``postback`` taps, and ``delivery`` / ``read`` watermarks; echoes of the
page's own messages are skipped. Attachments stay on Meta's CDN until the pipeline copies
them (:meth:`MessengerTransport.fetch_media`, the CDN URL being the ``media_ref``); kinds
the inbox can't show (a location, a shared link, a template) become text an agent can read.
Nothing in a payload is trusted: every value is type-checked and bounded, and a malformed
item is skipped, never raised on.

Documentation relied on:

- https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messages
  (``object: page``, ``entry[].id``/``messaging[]``, ``sender.id`` = PSID, ``timestamp`` in ms, ``message.mid``,
  ``text``, ``quick_reply.payload``, ``attachments[].type`` image/audio/video/file/fallback/… with ``payload.url``,
  ``sticker_id``)
- …/webhook-events/message-echoes (``message.is_echo``), …/message-deliveries (``delivery.watermark``, ``mids``
  optional), …/message-reads (``read.watermark``: everything sent up to it was read), …/messaging_postbacks
- https://developers.facebook.com/docs/messenger-platform/reference/send-api (``POST /me/messages``;
  ``recipient.id``, ``messaging_type`` RESPONSE or MESSAGE_TAG with ``tag``; ``message.text`` up to 2000
  characters, ``message.attachment {type, payload {url, is_reusable}}``; answer ``{recipient_id, message_id}``)
- https://developers.facebook.com/documentation/business-messaging/messenger-platform/error-codes and
  https://developers.facebook.com/docs/graph-api/guides/error-handling (1, 2 temporary; 4, 17, 32, 613 rate
  limits; 10 / 2018278 outside the allowed window; 551 person unavailable)
- https://developers.facebook.com/documentation/business-messaging/messenger-platform/identity/user-profile
  (``GET /<PSID>?fields=first_name,last_name``)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx

from api.channels.http import Answer, outcome_of, request_json
from api.channels.inbound import Media, Parsed
from api.channels.meta import (
    MAX_URL_LENGTH,
    download,
    from_unix,
    graph_error,
    guess_media_type,
    id_of,
    line_of,
    maps_link,
    may_fetch,
    name_from_url,
    text_of,
)
from domain.credentials import MessengerCredentials
from domain.delivery import Failed, MessengerTag, Outcome, Outgoing, Retry, Sent, Watermark
from domain.entities import Attachment
from domain.enums import DeliveryStatus, MessageKind
from domain.usecases.inbound import CustomerDetails, InboundMessage
from domain.validation import MAX_NAME_LENGTH, MAX_TEXT_LENGTH

# Graph codes that mean "later": temporary (1, 2) and rate limits (4, 17, 32, 613).
RETRY_CODES = frozenset({"1", "2", "4", "17", "32", "613"})
MAX_TEXT_UNITS = 2000  # message.text, counted in UTF-16 code units to be safe with emoji

_MEDIA_TYPES = {
    "image": "image/*",
    "video": "video/*",
    "audio": "audio/*",
    "file": "application/octet-stream",
}
_SEND_TYPES = {MessageKind.IMAGE: "image", MessageKind.ATTACHMENT: "file"}
_PSID = re.compile(r"[0-9]{1,40}")


# parse


def parse(payload: Any, page_id: str) -> Parsed:
    """The customer messages and delivery / read watermarks in one webhook call for this page.

    Other objects and other pages are ignored, as are the page's own messages (echoes) and
    anything malformed. Raises nothing for any JSON value.
    """
    parsed = Parsed()
    if not page_id or not isinstance(payload, dict) or payload.get("object") != "page":
        return parsed
    for entry in _dicts(payload.get("entry")):
        if entry.get("id") != page_id:
            continue
        for event in _dicts(entry.get("messaging")):
            sender = event.get("sender")
            psid = id_of(sender.get("id")) if isinstance(sender, dict) else None
            if psid is None or psid == page_id:
                continue
            inbound = _inbound(psid, event)
            if inbound is not None:
                parsed.messages.append(inbound)
            for field, status in (("delivery", DeliveryStatus.DELIVERED), ("read", DeliveryStatus.READ)):
                receipt = event.get(field)
                up_to = from_unix(receipt.get("watermark"), millis=True) if isinstance(receipt, dict) else None
                if up_to is not None:
                    parsed.watermarks.append(Watermark(recipient=psid, status=status, up_to=up_to))
    return parsed


def _inbound(psid: str, event: dict[str, Any]) -> InboundMessage | None:
    """A ``message`` (not an echo) or a ``postback`` tap as a customer message; else None."""
    message, postback = event.get("message"), event.get("postback")
    if isinstance(message, dict):
        if message.get("is_echo") is True:
            return None
        text, attachments = _content(message)
        mid = message.get("mid")
    elif isinstance(postback, dict):
        text = line_of(postback.get("title"), MAX_TEXT_LENGTH) or line_of(postback.get("payload"), MAX_TEXT_LENGTH)
        text, attachments, mid = text or "[Tapped a Messenger button]", (), postback.get("mid")
    else:
        return None
    return InboundMessage(
        customer=CustomerDetails(external_id=psid),
        text=text,
        attachments=attachments,
        provider_message_id=id_of(mid),
        sent_at=from_unix(event.get("timestamp"), millis=True),
    )


def _content(message: dict[str, Any]) -> tuple[str | None, tuple[Attachment, ...]]:
    """The message's text, its files, and a line for each attachment that isn't a file; never both empty."""
    lines = [text_of(message.get("text"))]
    quick_reply = message.get("quick_reply")
    if lines[0] is None and isinstance(quick_reply, dict):
        lines[0] = line_of(quick_reply.get("payload"), MAX_TEXT_LENGTH)
    attachments = []
    for item in _dicts(message.get("attachments")):
        attachment, description = _attachment(item)
        if attachment is not None:
            attachments.append(attachment)
        lines.append(description)
    if not attachments and message.get("sticker_id") is not None and not any(lines):
        lines.append("[Sent a sticker]")
    text = text_of("\n".join(line for line in lines if line))
    if text is None and not attachments:
        text = "[Empty Messenger message]"
    return text, tuple(attachments)


def _attachment(item: dict[str, Any]) -> tuple[Attachment | None, str | None]:
    """A file left on the CDN (image, video, audio, file, stickers as images), or a line describing the rest."""
    kind = line_of(item.get("type"), 40) or "unknown"
    body = item.get("payload")
    payload = body if isinstance(body, dict) else {}
    url = payload.get("url")
    if kind in _MEDIA_TYPES:
        # kept as Meta gave it; whether this server fetches it is fetch_media's call (may_fetch)
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > MAX_URL_LENGTH:
            return None, f"[Messenger {kind} that could not be received]"
        name = name_from_url(url) if kind == "file" else None
        return Attachment(url="", mime_type=guess_media_type(url, _MEDIA_TYPES[kind]), name=name, media_ref=url), None
    if kind == "location":
        coordinates = payload.get("coordinates")
        point = coordinates if isinstance(coordinates, dict) else {}
        title = line_of(item.get("title"))
        lines = ["Shared a location" + (f": {title}" if title else ""), maps_link(point.get("lat"), point.get("long"))]
        return None, "\n".join(line for line in lines if line)
    title = line_of(item.get("title")) or line_of(payload.get("title"))
    link = next(
        (u for u in (item.get("url"), url) if isinstance(u, str) and u.startswith(("https://", "http://"))), None
    )
    if kind == "fallback":
        lines = ["Shared a link" + (f": {title}" if title else ""), line_of(link, 2048)]
    else:
        lines = [f"[Messenger {kind} attachment]" + (f" {title}" if title else ""), line_of(link, 2048)]
    return None, "\n".join(line for line in lines if line)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    """The objects in a JSON array; anything else in it (or instead of it) is skipped."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


# send


class MessengerTransport:
    """Sends agents' messages through the Send API, fetches CDN media and customers' names."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")

    async def send(self, credentials: MessengerCredentials, outgoing: Outgoing) -> Outcome:
        """One stored message as one or more Send API requests, in order.

        Text over Messenger's 2000-character limit goes as several messages, cut at line or
        word boundaries; each file is its own message (text first, as Messenger has no
        captions). The first request's id is reported once every request succeeded;
        otherwise the first refusal is the outcome, and a retry sends everything again
        (at least once).
        """
        messages = _messages(outgoing)
        if isinstance(messages, Failed):
            return messages
        envelope: dict[str, Any] = {"recipient": {"id": outgoing.recipient}, "messaging_type": "RESPONSE"}
        if outgoing.messenger_tag is MessengerTag.HUMAN_AGENT:
            envelope = {**envelope, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        first: str | None = None
        for index, message in enumerate(messages):
            answer = await request_json(
                self._http,
                "POST",
                f"{self._base}/me/messages",
                json={**envelope, "message": message},
                params=_token(credentials),
            )
            if isinstance(answer, Retry):
                return answer
            if not answer.ok:
                return _refusal(answer, credentials)
            mid = id_of(answer.body.get("message_id")) if isinstance(answer.body, dict) else None
            if index == 0:
                first = mid  # a 2xx without an id was still taken: retrying could send it twice
        return Sent(first)

    async def fetch_media(
        self, credentials: MessengerCredentials, media_ref: str, max_bytes: int
    ) -> Media | Retry | Failed:
        """A customer's file from Meta's CDN (the URL is the ``media_ref``): no token is sent,
        only HTTPS (or the Graph base URL's own origin, for tests), at most ``max_bytes``."""
        if not may_fetch(media_ref, self._base):
            return Failed("The attachment's address is not one this server fetches from.")
        return await download(
            self._http, media_ref, max_bytes=max_bytes, base_url=self._base, name=name_from_url(media_ref)
        )

    async def profile_name(self, credentials: MessengerCredentials, psid: str) -> str | None | Retry:
        """ "First Last" from the User Profile API; None when Meta won't say (no permission, unknown
        person: the name just stays unknown), Retry when it can't say right now."""
        if not isinstance(psid, str) or not _PSID.fullmatch(psid):
            return None
        answer = await request_json(
            self._http,
            "GET",
            f"{self._base}/{psid}",
            params={"fields": "first_name,last_name", **_token(credentials)},
        )
        if isinstance(answer, Retry):
            return answer
        if not answer.ok:
            outcome = _refusal(answer, credentials)
            return outcome if isinstance(outcome, Retry) else None
        body = answer.body if isinstance(answer.body, dict) else {}
        parts = [line_of(body.get(field), MAX_NAME_LENGTH) for field in ("first_name", "last_name")]
        return line_of(" ".join(p for p in parts if p), MAX_NAME_LENGTH)


def _messages(outgoing: Outgoing) -> list[dict[str, Any]] | Failed:
    """The Send API ``message`` objects for one stored message."""
    kind, text, files = outgoing.kind, outgoing.text, outgoing.files
    if kind in (MessageKind.TEXT, MessageKind.TEMPLATE):
        return [{"text": part} for part in split_text(text or "")] or Failed("There is no text to send.")
    if kind is MessageKind.CONFERENCE_LINK:
        link = files[0].url if files else None
        if not link or (text and link in text):
            body = text or ""
        else:
            body = f"{text}\n\n{link}" if text else f"Join the video call: {link}"
        return [{"text": part} for part in split_text(body)] or Failed("There is no conference link to send.")
    if kind in _SEND_TYPES:
        if not files:
            return Failed("There is no file to send.")
        texts: list[dict[str, Any]] = [{"text": part} for part in split_text(text or "")]
        attachments = [
            {"attachment": {"type": _SEND_TYPES[kind], "payload": {"url": file.url, "is_reusable": False}}}
            for file in files
        ]
        return texts + attachments
    if kind is MessageKind.WHATSAPP_TEMPLATE:
        return Failed("WhatsApp templates can't be sent on Messenger.")
    return Failed(f"{kind.value} messages can't be sent on Messenger.")


def split_text(text: str, limit: int = MAX_TEXT_UNITS) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 code units, in order, cut after the last
    line break or space that keeps a piece at least half full (else exactly at the limit).
    Whitespace-only text gives no pieces."""
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        end = _fitting(rest, limit)
        if end < len(rest):
            cut = max(rest.rfind("\n", 0, end), rest.rfind(" ", 0, end))
            end = cut + 1 if cut + 1 >= end // 2 else end
        piece, rest = rest[:end].rstrip(), rest[end:].lstrip()
        if piece:
            pieces.append(piece)
    return pieces


def _fitting(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` UTF-16 code units (characters beyond
    U+FFFF, most emoji, take two)."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return max(index, 1)
    return len(text)


def _token(credentials: MessengerCredentials) -> dict[str, str]:
    """The page token travels in the query string, as the Send API documents; ``api.channels.http``
    keeps httpx from logging URLs, and no reason built here ever contains one."""
    return {"access_token": credentials.page_access_token}


def _refusal(answer: Answer, credentials: MessengerCredentials) -> Retry | Failed:
    code, message = graph_error(answer.body, secrets=(credentials.page_access_token, credentials.app_secret))
    return outcome_of(answer, code, message, RETRY_CODES)
