"""The delivery worker: claims due jobs with a lease and carries each out.

Any number of server instances run it on one database:

1. **Claim** one due job with a single ``find_one_and_update``: it sets a fresh claim
   token and pushes ``outbox_due`` forward by the lease. Only one worker's update can
   match a given due job; a job whose worker died becomes due again when its lease ends.
2. **Order**: a reply waits while an earlier reply of the same conversation is
   pending: it is handed back, due just after that one's retry, or (while a worker
   is sending that one) looked at again a moment later. Different conversations go
   out concurrently (``IMBRACE_DELIVERY_CONCURRENCY`` jobs at once); due jobs are
   found a batch per read and claimed concurrently.
3. **Send** each QUEUED delivery of the message through its transport, which
   marks the job "sending" right before its irrevocable step.
4. **Record** the outcome under the claim token (a worker whose lease was taken over
   changes nothing): SENT with the provider's id; FAILED with its code and message;
   or, for a retryable outcome, ``attempts`` + 1 and a new due time from
   :func:`domain.delivery.next_attempt_at` (backoff with jitter, ``Retry-After``
   honoured), FAILED once the attempts run out. A job found "sending" after its
   worker died has an unknown outcome: a transport that may resend (Meta) sends
   again, one that may not (SMTP) records FAILED "delivery unknown".
   Each status change is published as a DELIVERY event; a rescheduled attempt only
   updates ``attempts`` / ``lastError``.

Customer messages with something left to fetch are jobs too: files still at the
provider are copied into the file store, and a Messenger customer's name is read
from the Graph API (:meth:`DeliveryWorker.enrich`), after the webhook was answered,
and survive a restart the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo.errors import PyMongoError

from api.store.deliveries import Deliveries, Job
from domain.delivery import Failed, Outcome, Retry, RetryPolicy, Sent, next_attempt_at
from domain.entities import Attachment, Delivery, Message
from domain.enums import DeliveryStatus, DeliveryVia, SenderKind
from domain.usecases.customers import learn_name
from domain.usecases.delivery import announce

log = logging.getLogger("imbrace.delivery")

# A reply handed back behind an earlier one waiting for its retry becomes due this long
# after it; behind one a worker is sending right now, it is looked at again this soon.
ORDER_GAP = timedelta(milliseconds=1)
ORDER_RECHECK = timedelta(milliseconds=50)
# Files a customer sent: tried again this long after a failed copy, for at most a day.
FILE_RETRY = timedelta(seconds=30)
FILE_GIVE_UP = timedelta(days=1)


class Transport(Protocol):
    via: DeliveryVia
    label: str
    policy: RetryPolicy
    resend_when_unknown: bool
    unknown_reason: str

    @property
    def attempt_timeout_s(self) -> float: ...
    async def deliver(self, message: Message, mark_sending: Any) -> Outcome: ...
    def sent_fields(self, message: Message, sent: Sent) -> dict[str, Any]: ...


class FileSource(Protocol):
    async def fetch_media(self, credentials: Any, media_ref: str, max_bytes: int) -> Any: ...


class DeliveryWorker:
    """Claims due jobs and carries them out; ``start()`` runs it in the background."""

    def __init__(
        self,
        services: Any,
        transports: Mapping[DeliveryVia, Transport],
        *,
        file_sources: Mapping[Any, FileSource] | None = None,
        poll_s: float = 0.2,
        lease_s: float | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.services = services
        self.transports = transports
        self.file_sources = file_sources or {}
        self.poll_s = poll_s
        # A lease must outlive any attempt, or a second worker could take over a job
        # still being sent; attempts are cut off at half the lease.
        longest = max((t.attempt_timeout_s for t in transports.values()), default=30.0)
        self.lease_s = lease_s if lease_s is not None else max(30.0, 2 * longest + 5)
        self.concurrency = concurrency or services.settings.delivery_concurrency
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    @property
    def jobs(self) -> Deliveries:
        return self.services.store.deliveries

    # background loop

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="delivery-worker")

    def notify(self) -> None:
        """A job was just queued in this process: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Finish the jobs in hand (bounded), then stop claiming."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        wait = timeout_s if timeout_s is not None else self.lease_s / 2 + 1
        try:
            await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            task.cancel()
            for running in list(self._running):
                running.cancel()
            await asyncio.gather(task, *self._running, return_exceptions=True)

    async def _loop(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        try:
            while not self._stopping.is_set():
                await slots.acquire()
                free = 1
                while free < self.concurrency and not slots.locked():  # every free slot, at once
                    await slots.acquire()
                    free += 1
                if self._stopping.is_set():
                    for _ in range(free):
                        slots.release()
                    break
                self._wake.clear()
                try:
                    jobs = await self.claim_batch(self.services.clock(), free)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database may be briefly unreachable: keep polling
                    log.exception("delivery claim failed")
                    jobs = []
                for _ in range(free - len(jobs)):
                    slots.release()
                for job in jobs:
                    task = asyncio.create_task(self._guarded(job))
                    self._running.add(task)
                    task.add_done_callback(functools.partial(self._finished, slots))
                if not jobs:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_s)
                    except TimeoutError:
                        pass
        finally:
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    def _finished(self, slots: asyncio.Semaphore, task: asyncio.Task) -> None:
        """A job ended: its slot is free, and whatever it left due (a follower) may be claimed."""
        self._running.discard(task)
        slots.release()
        self._wake.set()

    async def claim_batch(self, now: datetime, limit: int) -> list[Job]:
        """Up to ``limit`` due jobs: one read lists them, concurrent conditional updates claim
        them (a job another worker took in between is simply not ours)."""
        ids = await self.jobs.due_ids(now, limit)
        if not ids:
            return []
        lease_from = max(now, self.services.clock())
        claimed = await asyncio.gather(
            *(self.jobs.claim_id(i, now, lease_from, self.lease_s, secrets.token_hex(12)) for i in ids)
        )
        return [job for job in claimed if job is not None]

    async def _guarded(self, job: Job) -> None:
        try:
            await self.process(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery job %s failed; it is tried again when its lease ends", job.id)

    # one pass (tests and the benchmark drive it directly)

    async def run_once(self, now: datetime | None = None) -> int:
        """Process every job due at ``now`` one after another; returns how many were claimed."""
        now = now or self.services.clock()
        handled = 0
        while not self._stopping.is_set():
            job = await self.claim(now)
            if job is None:
                break
            await self.process(job)
            handled += 1
        return handled

    async def claim(self, now: datetime) -> Job | None:
        """Atomically take the oldest due job. The lease runs from the real clock, so
        a long pass can't hand out leases that are already over."""
        return await self.jobs.claim(now, max(now, self.services.clock()), self.lease_s, secrets.token_hex(12))

    async def process(self, job: Job) -> None:
        message = job.message
        if message.sender_kind is SenderKind.CUSTOMER:
            await self.enrich(job)
            return
        queued = [d for d in message.deliveries if d.status is DeliveryStatus.QUEUED and d.via in self.transports]
        if not queued:
            await self.jobs.drop(job)
            return
        earlier = await self.jobs.earlier_pending(job)
        if earlier is not None:
            due, held = earlier
            now = self.services.clock()
            # behind one being sent right now: look again shortly; behind one waiting for
            # its retry: just after that retry
            await self.jobs.defer(job, now + ORDER_RECHECK if held else max(due, now) + ORDER_GAP)
            return
        # Usually one way; a web-widget reply to an offline visitor goes two (the widget's
        # history, and email). The job ends with its last way, due again at the earliest retry.
        retry_at: datetime | None = None
        for index, delivery in enumerate(queued):
            done = await self._attempt(job, message, delivery, index == len(queued) - 1, retry_at)
            if done is None:
                return  # lease lost: the worker that has it now carries on
            message, retry_at = done

    async def _attempt(
        self, job: Job, message: Message, delivery: Delivery, final: bool, earlier_retry: datetime | None
    ) -> tuple[Message, datetime | None] | None:
        transport = self.transports[delivery.via]
        attempts = delivery.attempts + 1
        if job.sending and not transport.resend_when_unknown:
            outcome: Outcome = Failed(transport.unknown_reason)
            return await self._record(job, message, transport, outcome, attempts, final, earlier_retry)

        async def mark_sending(marker: str) -> bool:
            return await self.jobs.mark_sending(job, marker)

        try:
            async with asyncio.timeout(min(transport.attempt_timeout_s, self.lease_s / 2)):
                outcome = await transport.deliver(message, mark_sending)
        except TimeoutError:
            limit = min(transport.attempt_timeout_s, self.lease_s / 2)
            outcome = Retry(f"Timed out after {limit:g} s.", unknown=True)
        except PyMongoError as error:
            outcome = Retry(f"{type(error).__name__}: {error}")
        if (
            isinstance(outcome, Retry)
            and outcome.unknown
            and not transport.resend_when_unknown
            and await self.jobs.was_sending(job)
        ):
            outcome = Failed(transport.unknown_reason)
        return await self._record(job, message, transport, outcome, attempts, final, earlier_retry)

    async def _record(
        self,
        job: Job,
        message: Message,
        transport: Transport,
        outcome: Outcome,
        attempts: int,
        final: bool = True,
        earlier_retry: datetime | None = None,
    ) -> tuple[Message, datetime | None] | None:
        """Store one way's outcome; with the job's last way, end the job or make it due again at
        the earliest retry of its ways. Returns the message as stored and that retry time."""
        now = self.services.clock()
        retry_at = None
        extra: dict[str, Any] = {}
        if isinstance(outcome, Sent):
            delivery = Delivery(
                via=transport.via,
                status=DeliveryStatus.SENT,
                attempts=attempts,
                at=now,
                provider_message_id=outcome.provider_message_id,
            )
            extra = transport.sent_fields(message, outcome)
        elif (
            isinstance(outcome, Retry)
            and (retry_at := next_attempt_at(outcome, attempts, now, transport.policy)) is not None
        ):
            delivery = Delivery(
                via=transport.via,
                status=DeliveryStatus.QUEUED,
                attempts=attempts,
                last_error=outcome.reason,
                error_code=outcome.code,
                at=now,
            )
        else:
            reason = outcome.reason if isinstance(outcome, Retry) else outcome.message  # type: ignore[union-attr]
            delivery = Delivery(
                via=transport.via,
                status=DeliveryStatus.FAILED,
                attempts=attempts,
                last_error=reason,
                error_code=outcome.code,  # type: ignore[union-attr]
                at=now,
            )
        pending = min((t for t in (retry_at, earlier_retry) if t is not None), default=None)
        updated, written = await self.jobs.record(job, delivery, pending, extra, finish=final)
        if updated is None:
            log.warning("delivery job %s: lease lost before recording %s", job.id, delivery.status.value)
            return None
        if not written:  # a status report moved this way on meanwhile (the widget's DELIVERED/READ): it stands
            log.info(
                "delivery %s %s: reported past QUEUED meanwhile; %s not recorded",
                job.id,
                transport.label,
                delivery.status.value,
            )
            return updated, pending
        if delivery.status is DeliveryStatus.FAILED:
            self.services.metrics.delivery_failures.labels(transport.label).inc()
        log.info(
            "delivery %s %s: %s after %d attempt(s)%s",
            job.id,
            transport.label,
            delivery.status.value,
            attempts,
            f" ({delivery.error_code or ''} {delivery.last_error})" if delivery.last_error else "",
        )
        if delivery.status is not DeliveryStatus.QUEUED:  # a rescheduled attempt is no status change
            try:
                await announce(self.services.store, self.services.events, updated, now)
            except PyMongoError:  # the outcome is stored; only the announcement is lost
                log.exception("delivery %s: event not published", job.id)
        return updated, pending

    # customer files waiting at the provider

    async def enrich(self, job: Job) -> None:
        """What a webhook left for later on a customer message: the customer's name (Messenger
        sends none), and each file the customer sent, copied from the provider into the file store."""
        message = job.message
        loaded = await self.services.credentials.load(message.channel_id) if message.channel_id else None
        source = self.file_sources.get(loaded[0].type) if loaded else None
        now = self.services.clock()
        names = source is not None and loaded is not None and hasattr(source, "profile_name")
        ask_again = names and await self._learn_name(message, source, loaded[1], now)  # type: ignore[index]
        if ask_again and not any(a.media_ref for a in message.attachments):
            await self.jobs.defer(job, now + FILE_RETRY)
            return
        pending = [a for a in message.attachments if a.media_ref]
        if not pending:
            await self.jobs.drop(job)
            return
        give_up = now - message.created_at > FILE_GIVE_UP
        attachments: list[Attachment] = []
        waiting = False
        for a in message.attachments:
            if not a.media_ref:
                attachments.append(a)
                continue
            result = (
                await source.fetch_media(loaded[1], a.media_ref, self.services.settings.messaging.max_upload_bytes)
                if source is not None and loaded is not None and loaded[1] is not None
                else Failed("The channel has no provider credentials.")
            )
            if isinstance(result, Retry) and not give_up:
                waiting = True
                attachments.append(a)
            elif isinstance(result, (Retry, Failed)):
                reason = result.reason if isinstance(result, Retry) else result.message
                log.warning("message %s: a customer's file was not copied: %s", message.id, reason)
                attachments.append(replace(a, media_ref=None, name=a.name or "File not received"))
            else:
                saved = await self.services.files.save(
                    message.org_id,
                    message.conversation_id,
                    a.name or result.name or "file",
                    result.mime_type or a.mime_type or "application/octet-stream",
                    result.data,
                )
                attachments.append(saved)
        if waiting:
            await self.jobs.keep_files(job, tuple(attachments), now + FILE_RETRY)
            return
        if await self.jobs.keep_files(job, tuple(attachments), None):
            updated = replace(message, attachments=tuple(attachments))
            await announce(self.services.store, self.services.events, updated, now)

    async def _learn_name(self, message: Message, source: Any, credentials: Any, now: datetime) -> bool:
        """Look the customer's name up once, if still unknown; True when it is worth asking again later."""
        customer = await self.services.store.customer(message.org_id, message.conversation_id)
        if customer is None or customer.name is not None or credentials is None:
            return False
        name = await source.profile_name(credentials, customer.external_id)
        if isinstance(name, Retry):
            return now - message.created_at < FILE_GIVE_UP
        if isinstance(name, str):
            await learn_name(self.services.store, self.services.events, customer, name, now)
        return False
