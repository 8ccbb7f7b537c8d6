"""The email-fallback outbox: a worker that delivers queued reply emails.

``sendMessage`` stores a reply with an EMAIL delivery ``QUEUED`` and an
``outbox_due`` time (int ms) in the same document write, so the job is as
durable as the message. Any number of server instances run this worker:

1. **Claim** one due job with a single ``find_one_and_update``: it sets a fresh
   claim token and pushes ``outbox_due`` forward by the lease. Only one
   worker's update can match a given due job, so no two workers hold it at
   once; a job whose worker died becomes due again when its lease ends.
2. **Send** it with aiosmtplib. Right before the message body is transmitted
   (envelope accepted) the worker records ``outbox_sending`` (the email's
   Message-ID) under its claim token.
3. **Record** the outcome under the claim token (a worker whose lease was
   taken over can't overwrite anything): SENT; or, after an error,
   ``attempts`` + 1, ``last_error`` and a retry after
   ``email_backoff_s * 2**(attempts - 1)``; or FAILED once
   ``email_max_attempts`` is reached or the server refuses permanently (5xx).
   The ``deliveries`` array is rewritten whole in that same update. Each
   status change (QUEUED to SENT or FAILED) is published as a ``DELIVERY``
   event; a rescheduled attempt only updates ``attempts``/``last_error``.

Exactly-once, as far as SMTP allows: SMTP can't be asked whether it took a
message, so a job found with ``outbox_sending`` still set (its worker died, or
lost the connection, during the DATA exchange or before recording the result)
is *not* sent again: it is marked FAILED with "delivery unknown". A crash at
any earlier point (claimed, connecting, envelope) leaves nothing sent and the
job is simply retried when the lease expires. The unknown window is one DATA
round trip plus one database write. Every email carries the same Message-ID
on every attempt, so even a duplicate would be recognizable to mail clients.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from pymongo.errors import PyMongoError

from api.mailer import DeliveryError, Letter, Mailer, compose, header_message_id
from api.store.deliveries import Deliveries, EmailJob
from domain.entities import Attachment, Delivery, Message
from domain.enums import DeliveryStatus, DeliveryVia, EventKind
from domain.events import Event

log = logging.getLogger("imbrace.outbox")

MAX_BACKOFF_S = 3600.0
UNKNOWN = (
    "Interrupted while the SMTP server was receiving the email; it may have been delivered, so it is not sent again."
)


class Outbox:
    """Claims due email jobs and delivers them; ``start()`` runs it in the background."""

    def __init__(
        self, services, *, poll_s: float = 0.2, lease_s: float | None = None, mailer: Mailer | None = None
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.mailer = mailer or Mailer(self.settings)
        self.poll_s = poll_s
        # A lease must outlive any attempt, or a second worker could take over a
        # job still being sent; attempts are cut off at half the lease.
        self.lease_s = lease_s if lease_s is not None else max(30.0, 6 * self.settings.smtp_timeout_s + 5)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def jobs(self) -> Deliveries:
        return self.services.store.deliveries

    # background loop

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="email-outbox")

    async def stop(self, timeout_s: float | None = None) -> None:
        """Finish the job in hand (bounded), then stop polling."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        wait = timeout_s if timeout_s is not None else self.settings.smtp_timeout_s + 1
        try:
            await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly unreachable: keep polling
                log.exception("email outbox pass failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.poll_s)
            except TimeoutError:
                pass

    # one pass

    async def run_once(self, now: datetime | None = None) -> int:
        """Process every job due at ``now``; returns how many were handled (none once stopping)."""
        now = now or self.services.clock()
        handled = 0
        while not self._stopping.is_set():
            job = await self.claim(now)
            if job is None:
                break
            await self.process(job)
            handled += 1
        return handled

    async def claim(self, now: datetime) -> EmailJob | None:
        """Atomically take the oldest due job. The lease runs from the real clock, so
        a long pass can't hand out leases that are already over."""
        return await self.jobs.claim(now, max(now, self.services.clock()), self.lease_s, secrets.token_hex(12))

    async def process(self, job: EmailJob) -> None:
        message = job.message
        delivery = _email_delivery(message)
        if delivery is None or delivery.status is not DeliveryStatus.QUEUED:
            await self.jobs.drop(job)
            return
        attempts = delivery.attempts + 1
        if job.sending:
            await self._record(job, message, DeliveryStatus.FAILED, attempts, UNKNOWN)
            return
        try:
            async with asyncio.timeout(self.lease_s / 2):
                letter = await self._letter(message)
                email = compose(letter, self.settings)
                await self.mailer.send(email, before_data=lambda: self._mark_sending(job, message))
        except DeliveryError as error:
            await self._failed_attempt(job, message, attempts, error)
        except TimeoutError:
            await self._failed_attempt(
                job, message, attempts, DeliveryError(f"Timed out after {self.lease_s / 2:g} s", uncertain=True)
            )
        except PyMongoError as error:
            await self._failed_attempt(job, message, attempts, DeliveryError(f"{type(error).__name__}: {error}"))
        except ValueError as error:  # the email can't be built from what is stored: it never will be
            await self._failed_attempt(
                job, message, attempts, DeliveryError(f"{type(error).__name__}: {error}", permanent=True)
            )
        else:
            await self._record(job, message, DeliveryStatus.SENT, attempts, None)

    async def _failed_attempt(self, job: EmailJob, message: Message, attempts: int, error: DeliveryError) -> None:
        if error.uncertain and await self._was_sending(job):
            await self._record(job, message, DeliveryStatus.FAILED, attempts, UNKNOWN)
        elif error.permanent or attempts >= self.settings.email_max_attempts:
            await self._record(job, message, DeliveryStatus.FAILED, attempts, error.reason)
        else:
            backoff = min(self.settings.email_backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)
            await self._record(
                job,
                message,
                DeliveryStatus.QUEUED,
                attempts,
                error.reason,
                retry_at=self.services.clock() + timedelta(seconds=backoff),
            )

    async def _mark_sending(self, job: EmailJob, message: Message) -> None:
        """Last step before the body goes out; without it (lost claim) nothing is sent."""
        if not await self.jobs.mark_sending(job, header_message_id(message.id)):
            raise DeliveryError("Lease lost before sending; another worker has the job.")

    async def _was_sending(self, job: EmailJob) -> bool:
        return await self.jobs.was_sending(job)

    async def _record(
        self,
        job: EmailJob,
        message: Message,
        status: DeliveryStatus,
        attempts: int,
        error: str | None,
        retry_at: datetime | None = None,
    ) -> None:
        now = self.services.clock()
        email = Delivery(via=DeliveryVia.EMAIL, status=status, attempts=attempts, last_error=error, at=now)
        deliveries = tuple(email if d.via is DeliveryVia.EMAIL else d for d in message.deliveries)
        recorded = await self.jobs.record(
            job,
            deliveries,
            retry_at if status is DeliveryStatus.QUEUED else None,
            header_message_id(message.id) if status is DeliveryStatus.SENT else None,
        )
        if not recorded:
            log.warning("email job %s: lease lost before recording %s", job.id, status.value)
            return
        if status is DeliveryStatus.FAILED:
            self.services.metrics.email_failures.inc()
        log.info(
            "email job %s: %s after %d attempt(s)%s", job.id, status.value, attempts, f" ({error})" if error else ""
        )
        await self._refresh_last_message(message, deliveries)
        if status is not DeliveryStatus.QUEUED:  # a rescheduled attempt is no status change
            await self._publish(message, now)

    async def _refresh_last_message(self, message: Message, deliveries: tuple[Delivery, ...]) -> None:
        """The conversation's copy of its newest message shows the same deliveries.

        Replaces the copy only while no newer message's is there (``seq`` at most
        this one's): a reply whose own copy is not written yet gets it from here, and
        that later write, seeing the same ``seq``, leaves this fresher one alone.
        """
        try:
            await self.services.store.offer_last_message(replace(message, deliveries=deliveries), same_seq=True)
        except PyMongoError:
            log.exception("email job %s: conversation's copy of the message not updated", message.id)

    async def _publish(self, message: Message, now: datetime) -> None:
        """Tell subscribers; the outcome is already stored, so a failure here is only logged."""
        try:
            conversation = await self.services.store.conversation(message.org_id, message.conversation_id)
            if conversation is not None and self.services.events is not None:
                await self.services.events.publish(
                    Event(kind=EventKind.DELIVERY, conversation=conversation, at=now, message_id=message.id)
                )
        except PyMongoError:
            log.exception("email job %s: delivery event not published", message.id)

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
        org = await store.organization(message.org_id)
        return Letter(
            message_id=message.id,
            conversation_id=conversation.id,
            kind=message.kind,
            text=message.text,
            attachments=self._customer_links(message.attachments),
            created_at=message.created_at,
            agent_name=agent.name if agent else None,
            org_name=org.name if org else None,
            to_email=to_email,
            to_name=customer.name if customer else conversation.customer_name,
            previous=await self._previous_ids(message),
        )

    def _customer_links(self, attachments: tuple[Attachment, ...]) -> tuple[Attachment, ...]:
        """Stored files as signed links: the customer has no member token to open ``/files/{id}``."""
        links, now = self.services.links, self.services.clock()
        return tuple(replace(a, url=links.path(a.file_id, now)) if a.file_id and links else a for a in attachments)

    async def _previous_ids(self, message: Message) -> tuple[str, ...]:
        """Message-IDs of the conversation's earlier emails that went out, oldest first."""
        return tuple(reversed(await self.jobs.email_ids_before(message, 20)))


def _email_delivery(message: Message) -> Delivery | None:
    return next((d for d in message.deliveries if d.via is DeliveryVia.EMAIL), None)
