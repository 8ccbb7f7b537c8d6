"""A custom channel adapter as a provider: one agent reply POSTed to the channel's ``outboundUrl``.

The body is the reply as JSON (:func:`payload`), signed as Standard Webhooks says with the
channel's outbound secret (the headers integrators' webhooks carry, :mod:`api.webhooks.signing`).
``webhook-id`` is the message id, the same for every attempt, so an adapter de-duplicates
the resends a lost answer causes. The request goes where integrators' webhooks go, under
the same rules (:class:`api.webhooks.sender.Sender`): the host resolved and checked at every
attempt and the checked address pinned, no redirects, at most 64 KB of the answer read,
``IMBRACE_WEBHOOK_TIMEOUT_S`` in all, private addresses only with ``IMBRACE_WEBHOOK_ALLOW_PRIVATE``.

The answer: 2xx is :class:`~domain.delivery.Sent` (a JSON ``{"messageId": "..."}`` in it is
kept as the adapter's id); 429, 5xx, a timeout or a connection error is
:class:`~domain.delivery.Retry` (``Retry-After`` honoured); any other status, a redirect
included, is :class:`~domain.delivery.Failed` with the adapter's ``{"reason": "..."}``.
The adapter later reports what became of the reply with ``POST /channels/{id}/delivery-status``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.channels.http import retry_after
from api.webhooks.address import refusal_at_creation
from api.webhooks.sender import Answer, Sender
from api.webhooks.signing import headers, key_of
from domain.delivery import Failed, Outcome, Outgoing, Retry, Sent

MAX_ADAPTER_ID = 200
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class AdapterTarget:
    """Where a channel's replies go and the secret they are signed with (``whsec_…``), in clear
    for the one send that needs it."""

    url: str
    secret: str

    def __repr__(self) -> str:  # never the secret, whatever prints this object
        return "AdapterTarget(url=…, secret=…)"


class AdapterChecks:
    """Where an outbound URL may point, judged as a webhook URL is (the domain's ``OutboundChecks``):
    https in production, no private address unless ``IMBRACE_WEBHOOK_ALLOW_PRIVATE``."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @property
    def https_only(self) -> bool:
        return bool(self.settings.production)

    async def url_refusal(self, url: str) -> str | None:
        refused = await refusal_at_creation(url, self.settings.webhook_allow_private)
        return refused.replace("webhooks may not call", "replies may not be sent to") if refused else None


def payload(outgoing: Outgoing) -> dict[str, Any]:
    """The JSON body: what an adapter needs to pass the reply on (documented in README.md)."""
    template = outgoing.template
    return {
        "messageId": outgoing.message_id,
        "conversationId": outgoing.conversation_id,
        "customer": {"externalId": outgoing.recipient},
        "kind": outgoing.kind.value,
        "text": outgoing.text,
        "files": [{"url": f.url, "mimeType": f.mime_type, "name": f.name} for f in outgoing.files],
        "template": (
            {"name": template.name, "language": template.language, "parameters": list(template.parameters)}
            if template is not None
            else None
        ),
        "createdAt": outgoing.created_at.isoformat().replace("+00:00", "Z") if outgoing.created_at else None,
    }


class CustomTransport:
    """Sends to the adapter: the "credentials" the pipeline hands it are the :class:`AdapterTarget`."""

    needs_credentials = True

    def __init__(self, allow_private: bool, timeout_s: float, wall_clock: Callable[[], float] = time.time) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        # webhook-timestamp is checked by adapters against their own clock: real time
        self.wall_clock = wall_clock

    async def send(self, target: AdapterTarget, outgoing: Outgoing) -> Outcome:
        body = json.dumps(payload(outgoing), separators=(",", ":"), ensure_ascii=False).encode()
        signed = headers([key_of(target.secret)], outgoing.message_id, int(self.wall_clock()), body)
        # A client per send: its connections are pooled by the address they were made to, so one
        # shared between adapters' host names could carry a request over another name's TLS session.
        async with Sender(self.allow_private, self.timeout_s) as sender:
            answer = await sender.post(target.url, body, signed)
        return outcome_of(answer)


def outcome_of(answer: Answer) -> Outcome:
    status = answer.status_code
    if status is None:
        error = answer.error or "No answer."
        if error.startswith("Not sent:") and not error.endswith("does not resolve."):
            return Failed(error, "ADDRESS_REFUSED")  # the URL points where replies may not go
        return Retry(error, unknown=True)
    said = _json(answer.response)
    if 200 <= status < 300:
        adapter_id = said.get("messageId")
        ok = isinstance(adapter_id, str) and 0 < len(adapter_id) <= MAX_ADAPTER_ID
        return Sent(adapter_id if ok else None, reports_by_id=False)
    reason = said.get("reason")
    words = reason[:MAX_REASON] if isinstance(reason, str) and reason.strip() else None
    message = f"The adapter answered {status}" + (f": {words}" if words else ".")
    if status == 429 or status >= 500:
        return Retry(message, f"HTTP_{status}", retry_after(answer.retry_after))
    if 300 <= status < 400:
        message = f"The adapter answered {status}: redirects are not followed."
    return Failed(message, f"HTTP_{status}")


def _json(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text) if text else None
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
