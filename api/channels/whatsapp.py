"""WhatsApp Cloud API: the ``messages`` webhook in, the Messages API and media out.

Verification is Meta's shared scheme (:mod:`api.channels.meta`). :func:`parse` reads
``entry[].changes[].value`` for this channel's phone number: ``messages`` (with the sender's
``contacts[].profile.name``) and ``statuses``. Every message a customer sends becomes
something an agent can read, including kinds this inbox can't show natively (a location
becomes a line and a map link, an unsupported kind a sentence saying what arrived): a message
is never dropped in silence. Media stays at Meta until the pipeline fetches it by its media
id (:meth:`WhatsAppTransport.fetch_media`). Nothing in a payload is trusted: every value is
type-checked and bounded, and a malformed item is skipped, never raised on.

Documentation relied on:

- https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
  (payload structure, ``metadata.phone_number_id``, ``contacts[].profile.name`` / ``wa_id``)
- …/webhooks/reference/messages/{text,image,document,location,contacts,interactive,button,reaction,unsupported}
  (per-type payloads: captions, ``document.filename``, ``location.latitude``/``longitude``/``name``/``address``,
  ``contacts[].name.formatted_name``/``phones[].phone``, ``interactive.button_reply``/``list_reply``,
  ``button.text``, ``reaction.emoji`` absent when removed, ``unsupported.type`` with ``errors``)
- …/webhooks/reference/messages/status (``statuses[]``: sent, delivered, read, failed with ``errors[]``)
- https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/{text,image,document}-messages
  and …/template-messages (``POST /<PHONE_NUMBER_ID>/messages``; answer ``messages[0].id``; captions ≤ 1024)
- https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
  (130429 throughput, 131016 service unavailable, 131048 spam rate limit, 131056 pair rate limit,
  80007 rate limit, 131047 re-engagement: 24 h passed, 131026 undeliverable)
- Retrieve media URL (``GET /<MEDIA_ID>`` → ``url``, ``mime_type``, ``file_size``; download the URL with
  the same bearer token; the URL lasts 5 minutes)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx

from api.channels.http import Answer, outcome_of, request_json
from api.channels.inbound import Media, Parsed
from api.channels.meta import (
    code_of,
    download,
    from_unix,
    graph_error,
    id_of,
    line_of,
    maps_link,
    media_type_of,
    safe_reason,
    text_of,
)
from domain.credentials import WhatsAppCredentials
from domain.delivery import Failed, Outcome, Outgoing, Retry, Sent, StatusReport
from domain.entities import Attachment
from domain.enums import DeliveryStatus, MessageKind
from domain.usecases.inbound import CustomerDetails, InboundMessage
from domain.validation import MAX_NAME_LENGTH, MAX_TEXT_LENGTH

# Graph / WhatsApp codes that mean "later": rate limits (130429, 131048, 131056, 80007, 4),
# service unavailable (131016), and Graph's temporary errors (1, 2).
RETRY_CODES = frozenset({"130429", "131016", "131048", "131056", "80007", "1", "2", "4"})
MAX_BODY_LENGTH = 4096  # text.body
MAX_CAPTION_LENGTH = 1024  # image / document caption

_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}
_MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_LINK = re.compile(r"(?i)\bhttps?://")
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_WA_ID = re.compile(r"[0-9]{5,20}")


# parse


def parse(payload: Any, phone_number_id: str) -> Parsed:
    """The customer messages and delivery statuses in one webhook call for this phone number.

    Other objects, other fields and other phone numbers (one app may serve several) are
    ignored; so is anything malformed. Raises nothing for any JSON value.
    """
    parsed = Parsed()
    if not phone_number_id or not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return parsed
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            if not isinstance(metadata, dict) or metadata.get("phone_number_id") != phone_number_id:
                continue
            names = _profile_names(value.get("contacts"))
            for message in _dicts(value.get("messages")):
                inbound = _inbound(message, names)
                if inbound is not None:
                    parsed.messages.append(inbound)
            for status in _dicts(value.get("statuses")):
                report = _status_report(status)
                if report is not None:
                    parsed.statuses.append(report)
    return parsed


def _inbound(message: dict[str, Any], names: dict[str, str]) -> InboundMessage | None:
    """One customer message; None only when it names no sender (there is nobody to file it under)."""
    wa_id = id_of(message.get("from"))
    if wa_id is None:
        return None
    kind = line_of(message.get("type"), 40) or "unknown"
    text, attachments = _content(kind, message)
    return InboundMessage(
        customer=CustomerDetails(
            external_id=wa_id,
            name=names.get(wa_id),
            phone="+" + wa_id if _WA_ID.fullmatch(wa_id) else None,
        ),
        text=text,
        attachments=attachments,
        provider_message_id=id_of(message.get("id")),
        sent_at=from_unix(message.get("timestamp")),
    )


def _content(kind: str, message: dict[str, Any]) -> tuple[str | None, tuple[Attachment, ...]]:
    """What an agent reads and which files the customer sent; never both empty."""
    body = message.get(kind)
    part = body if isinstance(body, dict) else {}
    attachments: tuple[Attachment, ...] = ()
    if kind == "text":
        text = text_of(part.get("body"))
    elif kind in _MEDIA_KINDS:
        text = text_of(part.get("caption")) if kind in ("image", "video", "document") else None
        media_id = id_of(part.get("id"))
        if media_id is not None:
            name = line_of(part.get("filename"), MAX_NAME_LENGTH) if kind == "document" else None
            attachments = (
                Attachment(url="", mime_type=media_type_of(part.get("mime_type")), name=name, media_ref=media_id),
            )
        elif text is None:
            text = f"[WhatsApp {kind} that could not be received]"
    elif kind == "location":
        text = _location_text(part)
    elif kind == "contacts":
        text = _contacts_text(body)
    elif kind == "interactive":
        subtype = line_of(part.get("type"), 40) or "unknown"
        text = _interactive_text(part) or f"[Unsupported WhatsApp message: interactive {subtype}]"
    elif kind == "button":
        text = line_of(part.get("text"), MAX_TEXT_LENGTH) or line_of(part.get("payload"), MAX_TEXT_LENGTH)
    elif kind == "reaction":
        emoji = line_of(part.get("emoji"), 20)
        text = f"Reacted {emoji} to a message" if emoji else "Removed a reaction from a message"
    elif kind == "system":
        text = text_of(part.get("body"))
    else:
        text = _unsupported_text(kind, message)
    if text is None and not attachments:
        text = f"[Empty WhatsApp {kind} message]"
    return text, attachments


def _location_text(location: dict[str, Any]) -> str:
    place = ", ".join(p for p in (line_of(location.get("name")), line_of(location.get("address"), 500)) if p)
    link = maps_link(location.get("latitude"), location.get("longitude"))
    lines = ["Shared a location" + (f": {place}" if place else ""), link]
    return "\n".join(line for line in lines if line)


def _contacts_text(contacts: Any) -> str | None:
    lines = []
    for contact in _dicts(contacts):
        name = contact.get("name")
        names = name if isinstance(name, dict) else {}
        label = line_of(names.get("formatted_name")) or line_of(
            " ".join(n for n in (names.get("first_name"), names.get("last_name")) if isinstance(n, str))
        )
        phones = [p for p in (line_of(phone.get("phone"), 40) for phone in _dicts(contact.get("phones"))) if p]
        line = ": ".join(p for p in (label, ", ".join(phones[:10])) if p)
        if line:
            lines.append(line)
    if not lines:
        return None
    return text_of("\n".join(["Shared a contact:" if len(lines) == 1 else "Shared contacts:", *lines]))


def _interactive_text(interactive: dict[str, Any]) -> str | None:
    """The reply the customer picked: its title, and a list row's description under it."""
    subtype = interactive.get("type")
    reply = interactive.get(subtype) if subtype in ("button_reply", "list_reply") else None
    if not isinstance(reply, dict):
        return None  # flows (nfm_reply) and other kinds: described as unsupported
    title = line_of(reply.get("title"), MAX_TEXT_LENGTH)
    description = line_of(reply.get("description"), MAX_TEXT_LENGTH)
    return text_of("\n".join(p for p in (title, description) if p))


def _unsupported_text(kind: str, message: dict[str, Any]) -> str:
    """What arrived, when the inbox can't show it: the kind Meta names, else its error title."""
    detail = message.get("unsupported")
    named = line_of(detail.get("type"), 40) if isinstance(detail, dict) else None
    if named is None and kind in ("unsupported", "unknown"):
        named = next((line_of(e.get("title"), 80) for e in _dicts(message.get("errors")) if e.get("title")), None)
    return f"[Unsupported WhatsApp message: {named or kind}]"


def _profile_names(contacts: Any) -> dict[str, str]:
    names = {}
    for contact in _dicts(contacts):
        wa_id, profile = id_of(contact.get("wa_id")), contact.get("profile")
        name = line_of(profile.get("name"), MAX_NAME_LENGTH) if isinstance(profile, dict) else None
        if wa_id and name:
            names[wa_id] = name
    return names


def _status_report(status: dict[str, Any]) -> StatusReport | None:
    """One ``statuses[]`` item; unknown statuses (``played``, ``deleted`` …) are not ours to report."""
    provider_id, reported = id_of(status.get("id")), status.get("status")
    if provider_id is None or not isinstance(reported, str) or reported not in _STATUSES:
        return None
    code = message = None
    error = next(_dicts(status.get("errors")), None)
    if error is not None:
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        code = code_of(error.get("code"))
        parts = [safe_reason(v) for v in (error.get("title") or error.get("message"), details)]
        message = " — ".join(dict.fromkeys(p for p in parts if p)) or None
    return StatusReport(
        provider_message_id=provider_id,
        status=_STATUSES[reported],
        at=from_unix(status.get("timestamp")),
        error_code=code,
        error_message=message,
    )


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    """The objects in a JSON array; anything else in it (or instead of it) is skipped."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


# send


class WhatsAppTransport:
    """Sends agents' messages through the Messages API and fetches customers' media."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")

    async def send(self, credentials: WhatsAppCredentials, outgoing: Outgoing) -> Outcome:
        """One stored message as one or more Messages API requests, in order.

        Several files are several requests. The first request's id is reported as ``Sent``
        once every request succeeded; otherwise the first refusal is the outcome. A retry
        sends the whole message again, files that already arrived included: delivery is
        at least once, never "some files silently missing".
        """
        requests = _requests(outgoing)
        if isinstance(requests, Failed):
            return requests
        first: str | None = None
        for index, body in enumerate(requests):
            outcome = await self._post(credentials, outgoing.recipient, body)
            if not isinstance(outcome, Sent):
                return outcome
            if index == 0:
                first = outcome.provider_message_id
        return Sent(first)

    async def _post(self, credentials: WhatsAppCredentials, to: str, content: dict[str, Any]) -> Outcome:
        answer = await request_json(
            self._http,
            "POST",
            f"{self._base}/{credentials.phone_number_id}/messages",
            json={"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **content},
            headers=_bearer(credentials),
        )
        if isinstance(answer, Retry):
            return answer
        if not answer.ok:
            return _refusal(answer, credentials)
        messages = answer.body.get("messages") if isinstance(answer.body, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        # a 2xx is Meta's word that the message was taken, id or not: retrying could send it twice
        return Sent(id_of(first.get("id")) if isinstance(first, dict) else None)

    async def fetch_media(
        self, credentials: WhatsAppCredentials, media_ref: str, max_bytes: int
    ) -> Media | Retry | Failed:
        """A customer's file by its media id: ask Graph for its URL, then download it with the
        same bearer token. Refused before any download when Meta's ``file_size`` is over
        ``max_bytes``; the download itself stops past ``max_bytes`` too."""
        if not isinstance(media_ref, str) or not _MEDIA_ID.fullmatch(media_ref):
            # the id becomes a URL path next to the token: never let it point elsewhere in the Graph API
            return Failed("Not a WhatsApp media id.")
        answer = await request_json(self._http, "GET", f"{self._base}/{media_ref}", headers=_bearer(credentials))
        if isinstance(answer, Retry):
            return answer
        if not answer.ok:
            return _refusal(answer, credentials)
        about = answer.body if isinstance(answer.body, dict) else {}
        url = about.get("url")
        if not isinstance(url, str):
            return Retry("The provider's answer about the media had no download address.")
        size = about.get("file_size")
        size = int(size) if isinstance(size, str) and size.isdigit() and len(size) < 20 else size
        if isinstance(size, int) and not isinstance(size, bool) and size > max_bytes:
            return Failed(f"The file is too large ({size} bytes; the limit is {max_bytes}).")
        return await download(
            self._http,
            url,
            max_bytes=max_bytes,
            base_url=self._base,
            headers=_bearer(credentials),
            mime_type=media_type_of(about.get("mime_type")),
        )


def _requests(outgoing: Outgoing) -> list[dict[str, Any]] | Failed:
    """The Messages API bodies (without the common fields) for one stored message."""
    kind, text, files = outgoing.kind, outgoing.text, outgoing.files
    if kind in (MessageKind.TEXT, MessageKind.TEMPLATE):
        return [_text(text)] if text else Failed("There is no text to send.")
    if kind is MessageKind.CONFERENCE_LINK:
        link = files[0].url if files else None
        if link and text and link not in text:
            joined = f"{text}\n\n{link}"
            return [_text(joined, preview=True)] if len(joined) <= MAX_BODY_LENGTH else [_text(text), _text(link, True)]
        if text or link:
            return [_text(text or f"Join the video call: {link}", preview=True)]
        return Failed("There is no conference link to send.")
    if kind in (MessageKind.IMAGE, MessageKind.ATTACHMENT):
        if not files:
            return Failed("There is no file to send.")
        caption = text if text and len(text) <= MAX_CAPTION_LENGTH else None
        requests = [_text(text)] if text and caption is None else []
        for index, file in enumerate(files):
            if kind is MessageKind.IMAGE:
                media: dict[str, Any] = {"link": file.url}
            else:
                media = {"link": file.url, "filename": file.name or "file"}
            if index == 0 and caption:
                media["caption"] = caption
            kind_name = "image" if kind is MessageKind.IMAGE else "document"
            requests.append({"type": kind_name, kind_name: media})
        return requests
    if kind is MessageKind.WHATSAPP_TEMPLATE:
        template = outgoing.template
        if template is None:
            return Failed("The WhatsApp template is missing.")
        call: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
        if template.parameters:
            parameters = [{"type": "text", "text": value} for value in template.parameters]
            call["components"] = [{"type": "body", "parameters": parameters}]
        return [{"type": "template", "template": call}]
    return Failed(f"{kind.value} messages can't be sent on WhatsApp.")


def _text(body: str, preview: bool | None = None) -> dict[str, Any]:
    """A text message; link previews on when the text carries a link (or asked for)."""
    show = bool(_LINK.search(body)) if preview is None else preview
    return {"type": "text", "text": {"body": body, "preview_url": True} if show else {"body": body}}


def _bearer(credentials: WhatsAppCredentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials.access_token}"}


def _refusal(answer: Answer, credentials: WhatsAppCredentials) -> Retry | Failed:
    code, message = graph_error(answer.body, secrets=(credentials.access_token, credentials.app_secret))
    return outcome_of(answer, code, message, RETRY_CODES)
