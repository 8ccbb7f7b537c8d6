"""LINE Messaging API: the signed webhook in, push messages, message content and profiles out.

**Verify.** Every webhook request carries ``X-Line-Signature``: the Base64 HMAC-SHA256 of
the raw body keyed by the channel secret (:func:`signature_matches`). LINE's "Verify"
button in the console sends a signed body whose ``events`` array is empty.

**Parse.** :func:`parse` reads ``events[]`` from one-to-one chats (``source.type: user``):
``message`` events become customer messages (text as it is; image, video, audio and file
left at LINE until the pipeline copies them; location and sticker as text an agent can
read; any other kind as a line saying what arrived), ``follow``/``unfollow`` become
:class:`~api.channels.inbound.Follow`. Group and room chats, and other event types, are
not conversations of this inbox and are skipped. Nothing in a payload is trusted: every
value is type-checked and bounded, and a malformed item is skipped, never raised on.

**Send.** :class:`LineTransport` pushes each stored message with ``POST /v2/bot/message/push``
and an ``X-Line-Retry-Key`` derived from the message id: a resend after an unknown outcome
is answered 409 by LINE and counted as sent, so a reply reaches the customer exactly once.
Push answers carry no id that later reports refer to (LINE sends no delivery or read
receipts for push messages): a delivery stops at SENT.

Documentation relied on (LINE's pages by URL; their OpenAPI files read in the repository
line/line-openapi, ``messaging-api.yml`` and ``webhook.yml``):

- https://developers.line.biz/en/docs/messaging-api/receiving-messages/ and
  https://developers.line.biz/en/reference/messaging-api/#signature-validation (``x-line-signature``:
  Base64 of the HMAC-SHA256 digest of the request body, keyed by the channel secret)
- https://developers.line.biz/en/reference/messaging-api/#request-body (``destination``, ``events``; "the
  LINE Platform may send an empty array ... to confirm communication")
- …/reference/messaging-api/#webhook-event-objects, #message-event, #follow-event, #unfollow-event
  (``type``, ``source {type: user, userId}``, ``timestamp`` in milliseconds, ``mode``, ``webhookEventId`` "an
  ID that uniquely identifies a webhook event ... in ULID format", ``deliveryContext.isRedelivery``,
  ``replyToken``; ``message {id, type}``: ``text``; ``image``/``video``/``audio`` with ``contentProvider
  {type: line | external, originalContentUrl?, previewImageUrl?}``; ``file {fileName, fileSize}``;
  ``location {title?, address?, latitude, longitude}``; ``sticker {packageId, stickerId,
  stickerResourceType, keywords?, text?}``)
- https://developers.line.biz/en/reference/messaging-api/#get-content (``GET
  https://api-data.line.me/v2/bot/message/{messageId}/content`` with the channel access token; the
  binary content) and #verify-video-or-audio-preparation-status (videos and audio are prepared first)
- https://developers.line.biz/en/reference/messaging-api/#get-profile (``GET /v2/bot/profile/{userId}`` →
  ``{displayName, userId, pictureUrl?, statusMessage?, language?}``)
- https://developers.line.biz/en/reference/messaging-api/#send-push-message (``POST /v2/bot/message/push``,
  ``{to, messages[1..5]}``; answer ``{sentMessages: [{id, quoteToken?}]}``), #text-message (``text``, at most
  5,000 characters), #image-message (``originalContentUrl``, ``previewImageUrl``: HTTPS, at most 2,000
  characters; JPEG or PNG)
- https://developers.line.biz/en/docs/messaging-api/retrying-api-request/ (``X-Line-Retry-Key``: a UUID the
  sender generates and sends on the first request already; "once the request is accepted, subsequent
  retried requests are blocked and you'll get the status code 409", with ``x-line-accepted-request-id``
  naming the accepted request; retry on 5xx and timeouts)
- https://developers.line.biz/en/reference/messaging-api/#error-responses (``{message, details?: [{message,
  property}]}``, no error codes) and https://developers.line.biz/en/docs/messaging-api/handling-http-429-errors/
  (429: rate or message limits; a request answered 429 sent nothing, so it may be retried)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import mimetypes
import re
import uuid
from collections.abc import Collection, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from api.channels.http import Answer, outcome_of, request_json
from api.channels.inbound import Follow, Media, Parsed
from api.channels.messenger import split_text
from api.channels.meta import (
    MAX_REASON_LENGTH,
    MAX_URL_LENGTH,
    clip,
    download,
    from_unix,
    guess_media_type,
    id_of,
    line_of,
    maps_link,
    may_fetch,
    name_from_url,
    safe_reason,
    text_of,
)
from domain.credentials import LineCredentials
from domain.delivery import Failed, Outcome, Outgoing, Retry, Sent
from domain.entities import Attachment
from domain.enums import MessageKind
from domain.usecases.inbound import CustomerDetails, InboundMessage
from domain.validation import MAX_NAME_LENGTH

SIGNATURE_HEADER = "X-Line-Signature"
RETRY_KEY_HEADER = "X-Line-Retry-Key"
MAX_MESSAGES_PER_PUSH = 5
MAX_TEXT_UNITS = 5000  # a text message, counted in UTF-16 code units as LINE does
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})

# The namespace of the retry keys: uuid5(namespace, "<message id>/<request number>").
RETRY_KEY_NAMESPACE = uuid.UUID("8f6f7a4e-3c1d-5b7a-9e2f-6a1c0d4b7e31")

_MEDIA_TYPES = {"image": "image/*", "video": "video/*", "audio": "audio/*"}
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")  # 32 bytes in Base64
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")  # documented as U + 32 hex digits; any URL-safe token taken
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")  # digits in practice; safe in a URL path either way
_NO_REASON = "LINE refused the request without saying why."


# verify


def signature_matches(channel_secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Line-Signature``) is the Base64 HMAC-SHA256 of exactly ``body``
    keyed by the channel secret, compared in constant time.

    A missing or malformed header is no signature, and an empty secret verifies nothing:
    anyone can compute an HMAC keyed by the empty string.
    """
    if not channel_secret or not isinstance(header, str) or not _SIGNATURE.fullmatch(header):
        return False
    try:
        given = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(channel_secret.encode("utf-8", "surrogatepass"), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)


# parse


def parse(payload: Any) -> Parsed:
    """The customer messages and follow changes in one webhook call; raises nothing for any JSON value.

    The payload names no account to check against (``destination`` is the bot's user id,
    which the credentials don't carry): the channel secret's signature is what binds it
    to this channel.
    """
    parsed = Parsed()
    if not isinstance(payload, dict):
        return parsed
    for event in _dicts(payload.get("events")):
        source = event.get("source")
        if not isinstance(source, dict) or source.get("type") != "user":
            continue  # group and room chats are not one customer's conversation
        user_id = _user_id(source.get("userId"))
        if user_id is None:
            continue
        kind = event.get("type")
        if kind == "message":
            inbound = _inbound(user_id, event)
            if inbound is not None:
                parsed.messages.append(inbound)
        elif kind in ("follow", "unfollow"):
            parsed.follows.append(Follow(external_id=user_id, following=kind == "follow"))
    return parsed


def _inbound(user_id: str, event: dict[str, Any]) -> InboundMessage | None:
    message = event.get("message")
    if not isinstance(message, dict):
        return None
    text, attachments = _content(message)
    # The webhook event id, not the message id, de-duplicates: LINE documents it as the one id
    # that identifies a webhook event, and a redelivery (deliveryContext.isRedelivery) carries
    # the same one, so it stores nothing new. isRedelivery itself is not a reason to drop an
    # event: LINE redelivers exactly those whose first delivery this server did not take, and
    # dropping them would lose the message. (The message id stays the content's handle.)
    event_id = id_of(event.get("webhookEventId")) or id_of(message.get("id"))
    return InboundMessage(
        customer=CustomerDetails(external_id=user_id),
        text=text,
        attachments=attachments,
        provider_message_id=event_id,
        sent_at=from_unix(event.get("timestamp"), millis=True),
    )


def _content(message: dict[str, Any]) -> tuple[str | None, tuple[Attachment, ...]]:
    """What an agent reads and which files the customer sent; never both empty."""
    kind = line_of(message.get("type"), 40) or "unknown"
    if kind == "text":
        return text_of(message.get("text")) or "[Empty LINE message]", ()
    if kind in _MEDIA_TYPES or kind == "file":
        attachment = _attachment(kind, message)
        if attachment is None:
            return f"[LINE {kind} that could not be received]", ()
        return None, (attachment,)
    if kind == "location":
        place = ", ".join(p for p in (line_of(message.get("title")), line_of(message.get("address"), 500)) if p)
        link = maps_link(message.get("latitude"), message.get("longitude"))
        return text_of("\n".join(p for p in ("Shared a location" + (f": {place}" if place else ""), link) if p)), ()
    if kind == "sticker":
        return _sticker_text(message), ()
    return f"[A LINE {kind} message, which this inbox can't show]", ()


def _attachment(kind: str, message: dict[str, Any]) -> Attachment | None:
    """A file still at LINE (its message id the ``media_ref``), or at the sender's own server
    (``contentProvider.type: external``: that URL is the ``media_ref``); None when neither is usable."""
    provider = message.get("contentProvider")
    provider = provider if isinstance(provider, dict) else {}
    if kind != "file" and provider.get("type") == "external":
        url = provider.get("originalContentUrl")
        # kept as LINE gave it; whether this server fetches it is fetch_media's call (may_fetch)
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > MAX_URL_LENGTH:
            return None
        return Attachment(url="", mime_type=guess_media_type(url, _MEDIA_TYPES[kind]), media_ref=url)
    message_id = message.get("id")
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        return None
    if kind == "file":
        name = line_of(message.get("fileName"), MAX_NAME_LENGTH)
        mime_type = (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"
        return Attachment(url="", mime_type=mime_type, name=name, media_ref=message_id)
    return Attachment(url="", mime_type=_MEDIA_TYPES[kind], media_ref=message_id)


def _sticker_text(message: dict[str, Any]) -> str:
    """A sticker as words: the text of a message sticker, else the sticker's keywords."""
    written = line_of(message.get("text"), 200)
    if written:
        return f"[Sticker] {written}"
    keywords = message.get("keywords")
    words = [w for w in (line_of(k, 40) for k in keywords[:5]) if w] if isinstance(keywords, list) else []
    return f"[Sticker: {', '.join(words)}]" if words else "[Sticker]"


def _user_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _USER_ID.fullmatch(value) else None


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    """The objects in a JSON array; anything else in it (or instead of it) is skipped."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


# send


def retry_key(message_id: str, request: int = 0) -> str:
    """The ``X-Line-Retry-Key`` of a message's ``request``-th push: a UUID derived from the stored
    message's id, so every attempt, by any worker, sends the same one without storing it.
    (LINE remembers an accepted key for a limited time, 24 hours by api-evangelist/line's
    summary of its docs; a reply's retries end within hours.)"""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, f"{message_id}/{request}"))


class LineTransport:
    """Pushes agents' messages, copies customers' files from LINE and reads their display names."""

    def __init__(self, http: httpx.AsyncClient, api_url: str, data_api_url: str) -> None:
        self._http = http
        self._api = api_url.rstrip("/")
        self._data = data_api_url.rstrip("/")

    async def send(self, credentials: LineCredentials, outgoing: Outgoing) -> Outcome:
        """One stored message as push requests of at most five LINE messages each, in order.

        Each request carries its own retry key, so after an unknown outcome the whole message
        is pushed again and LINE answers 409 to each request it already accepted: those count
        as sent, and only what is missing goes out (exactly once). The provider id recorded
        is the first request's ``X-Line-Request-Id`` (or, on a 409, ``X-Line-Accepted-Request-Id``,
        the same request's): the id LINE support asks for.
        """
        messages = _messages(outgoing)
        if isinstance(messages, Failed):
            return messages
        first: str | None = None
        for index in range(0, len(messages), MAX_MESSAGES_PER_PUSH):
            request = index // MAX_MESSAGES_PER_PUSH
            answer = await request_json(
                self._http,
                "POST",
                f"{self._api}/v2/bot/message/push",
                json={"to": outgoing.recipient, "messages": messages[index : index + MAX_MESSAGES_PER_PUSH]},
                headers={**_bearer(credentials), RETRY_KEY_HEADER: retry_key(outgoing.message_id, request)},
            )
            if isinstance(answer, Retry):
                return answer  # the key makes the resend safe, whatever reached LINE
            if answer.status == 409:  # this key was accepted before: the message went out then
                accepted = answer.headers.get("x-line-accepted-request-id")
            elif answer.ok:
                accepted = answer.headers.get("x-line-request-id")
            else:
                return _refusal(answer, credentials)
            if request == 0:
                first = id_of(accepted)
        return Sent(first)

    async def fetch_media(self, credentials: LineCredentials, media_ref: str, max_bytes: int) -> Media | Retry | Failed:
        """A customer's file: from LINE's content endpoint by message id (with the channel access
        token), or from the sender's own HTTPS server for ``contentProvider.type: external``
        (without it, and only to a public address: see :func:`api.channels.meta.may_fetch`)."""
        if media_ref.startswith(("https://", "http://")):
            if not may_fetch(media_ref, self._data):
                return Failed("The file's address is not one this server fetches from.")
            return await download(
                self._http, media_ref, max_bytes=max_bytes, base_url=self._data, name=name_from_url(media_ref)
            )
        if not _MESSAGE_ID.fullmatch(media_ref):
            return Failed("The file's LINE message id is not valid.")
        return await download(
            self._http,
            f"{self._data}/v2/bot/message/{quote(media_ref, safe='')}/content",
            max_bytes=max_bytes,
            base_url=self._data,
            headers=_bearer(credentials),
        )

    async def profile_name(self, credentials: LineCredentials, user_id: str) -> str | None | Retry:
        """The user's LINE display name; None when LINE won't say (the user blocked the account or
        never added it: the name just stays unknown), Retry when it can't say right now."""
        if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
            return None
        answer = await request_json(
            self._http, "GET", f"{self._api}/v2/bot/profile/{user_id}", headers=_bearer(credentials)
        )
        if isinstance(answer, Retry):
            return answer
        if not answer.ok:
            outcome = _refusal(answer, credentials)
            return outcome if isinstance(outcome, Retry) else None
        body = answer.body if isinstance(answer.body, dict) else {}
        return line_of(body.get("displayName"), MAX_NAME_LENGTH)


def _messages(outgoing: Outgoing) -> list[dict[str, Any]] | Failed:
    """LINE message objects for one stored message, in order (the pushes cut them in fives)."""
    kind, text, files = outgoing.kind, outgoing.text, outgoing.files
    if kind in (MessageKind.TEXT, MessageKind.TEMPLATE):
        return _texts(text) or Failed("There is no text to send.")
    if kind is MessageKind.CONFERENCE_LINK:
        link = files[0].url if files else None
        if not link or (text and link in text):
            body = text or ""
        else:
            body = f"{text}\n\n{link}" if text else f"Join the video call: {link}"
        return _texts(body) or Failed("There is no conference link to send.")
    if kind is MessageKind.IMAGE:
        if not files:
            return Failed("There is no file to send.")
        images = [f for f in files if f.mime_type is None or f.mime_type in IMAGE_TYPES]
        others = [f for f in files if f not in images]  # LINE shows JPEG and PNG only: others go as links
        if any(not f.url.startswith("https://") for f in images):
            return Failed("LINE fetches images over HTTPS only: IMBRACE_PUBLIC_URL must be an https:// address.")
        # The stored file serves as its own preview: this server keeps no resized copy. LINE asks for
        # previews of at most 1 MB, so a large photo may show no thumbnail; the image itself is sent.
        pictures = [{"type": "image", "originalContentUrl": f.url, "previewImageUrl": f.url} for f in images]
        return _texts(_with_links(text, others)) + pictures
    if kind is MessageKind.ATTACHMENT:
        if not files:
            return Failed("There is no file to send.")
        return _texts(_with_links(text, files))  # LINE's push sends no documents: the signed link does
    if kind is MessageKind.WHATSAPP_TEMPLATE:
        return Failed("WhatsApp templates can't be sent on LINE.")
    return Failed(f"{kind.value} messages can't be sent on LINE.")


def _texts(text: str | None) -> list[dict[str, Any]]:
    return [{"type": "text", "text": part} for part in split_text(text or "", MAX_TEXT_UNITS)]


def _with_links(text: str | None, files: Collection[Any]) -> str:
    """The agent's text followed by one line per file: its name and its signed link."""
    links = [f"{f.name}: {f.url}" if f.name else f.url for f in files]
    return "\n\n".join(part for part in (text, "\n".join(links)) if part)


def _bearer(credentials: LineCredentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials.channel_access_token}"}


def line_error(body: Any, secrets: Collection[str] = ()) -> str:
    """LINE's ``{message, details: [{message, property}]}`` as one readable line, without URLs or
    secrets (it is stored and shown to agents); a generic sentence for any other body."""
    if not isinstance(body, dict):
        return _NO_REASON
    parts = [safe_reason(body.get("message"), secrets)]
    details = body.get("details")
    for detail in details[:5] if isinstance(details, list) else []:
        if isinstance(detail, dict):
            where, what = line_of(detail.get("property"), 100), safe_reason(detail.get("message"), secrets)
            parts.append(f"{where}: {what}" if where and what else what)
    return clip(" — ".join(p for p in parts if p), MAX_REASON_LENGTH) or _NO_REASON


def _refusal(answer: Answer, credentials: LineCredentials) -> Retry | Failed:
    """429 and 5xx are retried; any other status fails with LINE's words. LINE has no error codes:
    the HTTP status stands in for one."""
    secrets = (credentials.channel_access_token, credentials.channel_secret)
    return outcome_of(answer, str(answer.status), line_error(answer.body, secrets))
