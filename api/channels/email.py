"""The email fallback as a transport: a web-widget reply to an offline customer goes out by SMTP.

Exactly-once, as far as SMTP allows: SMTP can't be asked whether it took a message,
so the pipeline marks the job "sending" right before the message body is transmitted
(envelope accepted), and a job found with that mark after its worker died, or lost
the connection during the DATA exchange, is *not* sent again: it is FAILED with
"delivery unknown" (``resend_when_unknown = False``). A crash at any earlier point
leaves nothing sent and the job is simply retried. Every email carries the same
Message-ID on every attempt, so even a duplicate would be recognizable to mail clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from api.mailer import DeliveryError, Letter, Mailer, compose, header_message_id
from domain.delivery import Failed, Outcome, Retry, RetryPolicy, Sent
from domain.entities import Attachment, Message
from domain.enums import DeliveryVia

MAX_BACKOFF_S = 3600.0
UNKNOWN = (
    "Interrupted while the SMTP server was receiving the email; it may have been delivered, so it is not sent again."
)


class EmailTransport:
    via = DeliveryVia.EMAIL
    label = "email"
    resend_when_unknown = False
    unknown_reason = UNKNOWN

    def __init__(self, services: Any, mailer: Mailer | None = None) -> None:
        self.services = services
        self.settings = services.settings
        self.mailer = mailer or Mailer(self.settings)
        self.policy = RetryPolicy(
            max_attempts=self.settings.email_max_attempts,
            base_s=self.settings.email_backoff_s,
            max_backoff_s=MAX_BACKOFF_S,
        )

    @property
    def attempt_timeout_s(self) -> float:
        return 6 * self.settings.smtp_timeout_s

    async def deliver(self, message: Message, mark_sending: Callable[[str], Awaitable[bool]]) -> Outcome:
        async def before_data() -> None:
            if not await mark_sending(header_message_id(message.id)):
                raise DeliveryError("Lease lost before sending; another worker has the job.")

        try:
            letter = await self._letter(message)
            await self.mailer.send(compose(letter, self.settings), before_data=before_data)
        except DeliveryError as error:
            return Failed(error.reason) if error.permanent else Retry(error.reason, unknown=error.uncertain)
        except ValueError as error:  # the email can't be built from what is stored: it never will be
            return Failed(f"{type(error).__name__}: {error}")
        except TimeoutError:
            return Retry("Timed out talking to the SMTP server.", unknown=True)
        return Sent(header_message_id(message.id))

    def sent_fields(self, message: Message, sent: Sent) -> dict[str, Any]:
        """The Message-ID is kept so the conversation's later emails thread under it."""
        return {"email_message_id": sent.provider_message_id} if sent.provider_message_id else {}

    async def _letter(self, message: Message) -> Letter:
        store = self.services.store
        conversation = await store.conversation(message.org_id, message.conversation_id)
        if conversation is None:
            raise DeliveryError("The conversation no longer exists.", permanent=True)
        customer = await store.customer(message.org_id, conversation.customer_id)
        to_email = (customer.email if customer else None) or conversation.customer_email
        if not to_email:
            raise DeliveryError("The customer has no email address.", permanent=True)
        agent = await store.member(message.org_id, message.sender_member_id) if message.sender_member_id else None
        app = await store.api_key(message.org_id, message.sender_app_id) if message.sender_app_id else None
        org = await store.organization(message.org_id)
        return Letter(
            message_id=message.id,
            conversation_id=conversation.id,
            kind=message.kind,
            text=message.text,
            attachments=self._customer_links(message.attachments),
            created_at=message.created_at,
            agent_name=agent.name if agent else app.name if app else None,  # an app signs with its key's name
            org_name=org.name if org else None,
            to_email=to_email,
            to_name=customer.name if customer else conversation.customer_name,
            previous=tuple(reversed(await store.deliveries.email_ids_before(message, 20))),
        )

    def _customer_links(self, attachments: tuple[Attachment, ...]) -> tuple[Attachment, ...]:
        """Stored files as signed links: the customer has no member token to open ``/files/{id}``."""
        links, now = self.services.links, self.services.clock()
        return tuple(replace(a, url=links.path(a.file_id, now)) if a.file_id and links else a for a in attachments)
