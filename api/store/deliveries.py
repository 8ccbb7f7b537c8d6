"""The delivery pipeline's queries on ``messages``: work still to do on a message, as a job with a lease.

A message with work to do carries ``outbox_due`` (int ms, indexed by a partial
index): an agent reply with a QUEUED delivery, or a customer message whose files
still wait at the provider. While a worker holds it, ``outbox_claim`` (the
worker's token), ``outbox_claimed_at`` and, from the moment the irrevocable step
starts (the HTTP request, the SMTP DATA), ``outbox_sending``. Every write after
the claim is conditional on the token, so a worker whose lease was taken over
changes nothing. Outbound jobs also carry ``outbox_order`` (their conversation's
id) while pending: the worker sends a conversation's replies in ``seq`` order by
asking whether an earlier one is still pending. The rules (when to retry, when a
send's outcome is unknown) are in :mod:`api.delivery`.

Provider status reports update one way of a message (``deliveries.CHANNEL``) under
a condition on its current status, so concurrent reports can only move it forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.delivery import is_final
from domain.entities import Attachment, Delivery, Message
from domain.enums import DeliveryStatus, DeliveryVia

OUTBOX_FIELDS = ("outbox_due", "outbox_claim", "outbox_claimed_at", "outbox_sending", "outbox_order")
_CLAIM_FIELDS = ("outbox_claim", "outbox_claimed_at", "outbox_sending")
# the statuses no receipt moves on from (READ, FAILED): such a reply leaves the receipts index
_NO_MORE_RECEIPTS = tuple(s.value for s in DeliveryStatus if is_final(s))


@dataclass(frozen=True, slots=True)
class Job:
    message: Message
    token: str
    sending: bool  # a worker had started the irrevocable step when its lease ran out

    @property
    def id(self) -> str:
        return self.message.id


def job_fields(message: Message, outbound: bool) -> dict[str, Any]:
    """What makes a newly stored message a job: due at once; ordered with its conversation's
    other replies when it goes out."""
    fields: dict[str, Any] = {"outbox_due": ms(message.created_at)}
    if outbound:
        fields["outbox_order"] = message.conversation_id
    return fields


class Deliveries:
    def __init__(self, db: AsyncDatabase) -> None:
        self.messages = db.messages

    async def claim(self, due_at: datetime, lease_from: datetime, lease_s: float, token: str) -> Job | None:
        """Atomically take the oldest job due at ``due_at``, leased from ``lease_from``:
        only one worker's update can match a given due job."""
        doc = await self.messages.find_one_and_update(
            {"outbox_due": {"$lte": ms(due_at)}},
            {
                "$set": {
                    "outbox_due": ms(lease_from + timedelta(seconds=lease_s)),
                    "outbox_claim": token,
                    "outbox_claimed_at": ms(lease_from),
                }
            },
            sort=[("outbox_due", 1)],
            return_document=ReturnDocument.BEFORE,
        )
        if doc is None:
            return None
        return Job(message=codec.message(doc), token=token, sending=bool(doc.get("outbox_sending")))

    async def due_ids(self, due_at: datetime, limit: int) -> list[str]:
        """The oldest jobs due at ``due_at``, to be claimed one by one (concurrently): one read
        finds a batch, instead of one serial claim round trip per job."""
        cursor = self.messages.find({"outbox_due": {"$lte": ms(due_at)}}, {"_id": 1}).sort("outbox_due", 1).limit(limit)
        return [doc["_id"] async for doc in cursor]

    async def claim_id(
        self, message_id: str, due_at: datetime, lease_from: datetime, lease_s: float, token: str
    ) -> Job | None:
        """Claim this job if it is still due (another worker may have taken it since it was listed)."""
        doc = await self.messages.find_one_and_update(
            {"_id": message_id, "outbox_due": {"$lte": ms(due_at)}},
            {
                "$set": {
                    "outbox_due": ms(lease_from + timedelta(seconds=lease_s)),
                    "outbox_claim": token,
                    "outbox_claimed_at": ms(lease_from),
                }
            },
            return_document=ReturnDocument.BEFORE,
        )
        if doc is None:
            return None
        return Job(message=codec.message(doc), token=token, sending=bool(doc.get("outbox_sending")))

    async def earlier_pending(self, job: Job) -> tuple[datetime, bool] | None:
        """The conversation's earliest reply still pending before this one: when it is due, and
        whether a worker holds it right now (None: there is none)."""
        # Equality on one indexed field, the rest judged here: nx-27017 scans the whole
        # collection for a compound index's range (measured: 25 ms at 20,000 messages, against
        # 1 ms), and a conversation has only a few replies pending at a time.
        pending = await self.messages.find(
            {"outbox_order": job.message.conversation_id}, {"seq": 1, "outbox_due": 1, "outbox_claim": 1}
        ).to_list(None)
        earlier = [doc for doc in pending if doc["seq"] < job.message.seq and "outbox_due" in doc]
        if not earlier:
            return None
        first = min(earlier, key=lambda doc: doc["seq"])
        return codec.stored_dt(first["outbox_due"]), "outbox_claim" in first

    async def defer(self, job: Job, until: datetime) -> bool:
        """Hand the job back, due again at ``until`` (an earlier reply of its conversation goes first)."""
        result = await self.messages.update_one(
            {"_id": job.id, "outbox_claim": job.token},
            {"$set": {"outbox_due": ms(until)}, "$unset": {f: "" for f in _CLAIM_FIELDS}},
        )
        return result.matched_count == 1

    async def drop(self, job: Job) -> None:
        """Nothing left to do: the message stops being a job."""
        await self.messages.update_one(
            {"_id": job.id, "outbox_claim": job.token}, {"$unset": {f: "" for f in OUTBOX_FIELDS}}
        )

    async def schedule(self, message_id: str, due: datetime) -> None:
        """Make a stored message a job (a look-up to do after the webhook was answered), unless it is one."""
        await self.messages.update_one(
            {"_id": message_id, "outbox_due": {"$exists": False}}, {"$set": {"outbox_due": ms(due)}}
        )

    async def mark_sending(self, job: Job, marker: str) -> bool:
        """False when the lease was lost (then nothing may be sent)."""
        result = await self.messages.update_one(
            {"_id": job.id, "outbox_claim": job.token}, {"$set": {"outbox_sending": marker}}
        )
        return result.matched_count == 1

    async def was_sending(self, job: Job) -> bool:
        doc = await self.messages.find_one({"_id": job.id, "outbox_claim": job.token}, {"outbox_sending": 1})
        return bool(doc and doc.get("outbox_sending"))

    async def record(
        self,
        job: Job,
        delivery: Delivery,
        retry_at: datetime | None,
        extra: dict[str, Any] | None = None,
        *,
        finish: bool = True,
    ) -> tuple[Message | None, bool]:
        """Store one way's outcome under the claim; with ``finish`` (the job's last way) the job is
        then due again at ``retry_at``, or done, else it stays claimed for its next way. ``extra``
        sets more fields of the message in the same write (the email's Message-ID, the provider
        key a status report finds it by).

        Only that way is written, and only while it is still QUEUED: a report that moved it on
        meanwhile (the web widget saying DELIVERED or READ while the worker records SENT) is
        kept, and only the job's fields change. Returns the message as stored after the write
        (None: the lease was lost) and whether the outcome was written."""
        path = f"deliveries.{delivery.via.value}"
        job_update: dict[str, Any] = {"$set": dict(extra or {})}
        if finish and retry_at is not None:
            job_update["$set"]["outbox_due"] = ms(retry_at)
            job_update["$unset"] = {f: "" for f in _CLAIM_FIELDS}
        elif finish:
            job_update["$unset"] = {f: "" for f in OUTBOX_FIELDS}
        claimed = {"_id": job.id, "outbox_claim": job.token}
        doc = await self.messages.find_one_and_update(
            {**claimed, f"{path}.status": DeliveryStatus.QUEUED.value},
            {**job_update, "$set": {**job_update["$set"], path: codec.delivery_doc(delivery)}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return codec.message(doc), True
        if not job_update["$set"]:
            del job_update["$set"]
        if not job_update:  # nothing to change: read it, still under the claim
            doc = await self.messages.find_one(claimed)
            return (codec.message(doc) if doc else None), False
        doc = await self.messages.find_one_and_update(claimed, job_update, return_document=ReturnDocument.AFTER)
        status = ((doc or {}).get("deliveries") or {}).get(delivery.via.value, {}).get("status")
        if doc is not None and "receipt_pending" in doc and status in _NO_MORE_RECEIPTS:
            # the widget said READ before this worker recorded SENT: nothing will move it any more
            await self.messages.update_one({"_id": job.id}, {"$unset": {"receipt_pending": ""}})
        return (codec.message(doc) if doc else None), False

    async def keep_files(self, job: Job, attachments: tuple[Attachment, ...], retry_at: datetime | None) -> bool:
        """A customer message's files as copied so far; due again at ``retry_at`` for the rest, or done."""
        update: dict[str, Any] = {"$set": {"attachments": [codec.attachment_doc(a) for a in attachments]}}
        if retry_at is not None:
            update["$set"]["outbox_due"] = ms(retry_at)
            update["$unset"] = {f: "" for f in _CLAIM_FIELDS}
        else:
            update["$unset"] = {f: "" for f in OUTBOX_FIELDS}
        result = await self.messages.update_one({"_id": job.id, "outbox_claim": job.token}, update)
        return result.matched_count == 1

    @staticmethod
    def sent_fields(channel_id: str, conversation_id: str, provider_message_id: str | None) -> dict[str, str]:
        """What a sent reply keeps for the provider's later reports: the key a status report finds
        it by (unique per channel), and ``receipt_pending`` (its conversation) while a
        watermark may still move it (until READ or FAILED)."""
        fields = {"receipt_pending": conversation_id}
        if provider_message_id:
            fields["provider_key"] = codec.provider_key(channel_id, provider_message_id)
        return fields

    async def report(
        self,
        query: dict[str, Any],
        status: DeliveryStatus,
        allowed_from: tuple[DeliveryStatus, ...],
        at: datetime,
        error_code: str | None,
        error_message: str | None,
    ) -> Message | None:
        """Move one message's CHANNEL delivery to ``status`` if it is in ``allowed_from``; the message after."""
        path = f"deliveries.{DeliveryVia.CHANNEL.value}"
        changes: dict[str, Any] = {f"{path}.status": status.value, f"{path}.at": ms(at)}
        if error_code is not None:
            changes[f"{path}.error_code"] = error_code
        if error_message is not None:
            changes[f"{path}.last_error"] = error_message
        update: dict[str, Any] = {"$set": changes}
        if status.value in _NO_MORE_RECEIPTS:  # no watermark moves it any more
            update["$unset"] = {"receipt_pending": ""}
        doc = await self.messages.find_one_and_update(
            {**query, f"{path}.status": {"$in": [s.value for s in allowed_from]}},
            update,
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None and "receipt_pending" not in doc and "$unset" not in update:
            # the web widget's stream can report DELIVERED before the worker has recorded SENT
            # (and with it ``receipt_pending``): keep the reply where a later READ looks for it
            doc["receipt_pending"] = doc["conversation_id"]
            await self.messages.update_one({"_id": doc["_id"]}, {"$set": {"receipt_pending": doc["conversation_id"]}})
        return codec.message(doc) if doc else None

    async def report_by_provider_id(
        self,
        channel_id: str,
        provider_message_id: str,
        status: DeliveryStatus,
        allowed_from: tuple[DeliveryStatus, ...],
        at: datetime,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> Message | None:
        query = {"provider_key": codec.provider_key(channel_id, provider_message_id)}
        return await self.report(query, status, allowed_from, at, error_code, error_message)

    async def report_by_id(
        self, message_id: str, status: DeliveryStatus, allowed_from: tuple[DeliveryStatus, ...], at: datetime
    ) -> Message | None:
        return await self.report({"_id": message_id}, status, allowed_from, at, None, None)

    async def report_in_channel(
        self,
        channel_id: str,
        message_id: str,
        status: DeliveryStatus,
        allowed_from: tuple[DeliveryStatus, ...],
        at: datetime,
        error_message: str | None = None,
    ) -> Message | None:
        """A custom adapter's report on a reply of its channel, by our message id."""
        query = {"_id": message_id, "channel_id": channel_id}
        return await self.report(query, status, allowed_from, at, None, error_message)

    async def channel_status(self, channel_id: str, message_id: str) -> DeliveryStatus | None:
        """Where the CHANNEL delivery of the channel's reply ``message_id`` stands; None: no such reply."""
        doc = await self.messages.find_one({"_id": message_id, "channel_id": channel_id}, {"deliveries": 1})
        status = (((doc or {}).get("deliveries") or {}).get(DeliveryVia.CHANNEL.value) or {}).get("status")
        return DeliveryStatus(status) if isinstance(status, str) else None

    async def up_to(
        self, conversation_id: str, up_to: datetime, allowed_from: tuple[DeliveryStatus, ...], limit: int = 200
    ) -> list[str]:
        """Ids of the conversation's replies written by ``up_to`` whose CHANNEL delivery may move."""
        # the replies still awaiting a receipt, by one indexed field (see earlier_pending on nx-27017)
        cursor = self.messages.find(
            {"receipt_pending": conversation_id},
            {"_id": 1, "created_at": 1, "deliveries": 1},
        ).limit(limit)
        wanted = {s.value for s in allowed_from}
        found = [
            doc
            async for doc in cursor
            if doc.get("created_at", 0) <= ms(up_to)
            and ((doc.get("deliveries") or {}).get(DeliveryVia.CHANNEL.value) or {}).get("status") in wanted
        ]
        return [doc["_id"] for doc in sorted(found, key=lambda doc: doc["created_at"], reverse=True)]

    async def email_ids_before(self, message: Message, limit: int) -> list[str]:
        """Message-IDs of the conversation's emails that went out before ``message``, newest first."""
        cursor = (
            self.messages.find(
                {
                    "conversation_id": message.conversation_id,
                    "seq": {"$lt": message.seq},
                    "email_message_id": {"$exists": True},
                },
                {"email_message_id": 1},
            )
            .sort("seq", -1)
            .limit(limit)
        )
        return [doc["email_message_id"] async for doc in cursor if isinstance(doc.get("email_message_id"), str)]

    async def queued(self, via: str) -> int:
        """Deliveries of one way waiting or leased: the ``count`` command on the partial index
        (``count_documents`` is an aggregation that nx-27017 runs in Python over every message)."""
        query = {"outbox_due": {"$gte": 0}, f"deliveries.{via}.status": DeliveryStatus.QUEUED.value}
        reply = await self.messages.database.command({"count": "messages", "query": query})
        return reply["n"]
