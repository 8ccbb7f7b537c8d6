"""The email outbox's queries on ``messages``: a reply's EMAIL delivery as a job with a lease.

A message with an EMAIL delivery still to send carries ``outbox_due`` (int ms,
indexed by a partial index), and while a worker holds it, ``outbox_claim``
(the worker's token), ``outbox_claimed_at`` and, from the moment the body goes
out, ``outbox_sending``. Every write after the claim is conditional on the
token, so a worker whose lease was taken over changes nothing. The rules
(when to retry, when a send is unknown) are in :mod:`api.outbox`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.entities import Delivery, Message

OUTBOX_FIELDS = ("outbox_due", "outbox_claim", "outbox_claimed_at", "outbox_sending")


@dataclass(frozen=True, slots=True)
class EmailJob:
    message: Message
    token: str
    sending: bool  # a worker had started sending the body when the lease ran out

    @property
    def id(self) -> str:
        return self.message.id


class Deliveries:
    def __init__(self, db: AsyncDatabase) -> None:
        self.messages = db.messages

    async def claim(self, due_at: datetime, lease_from: datetime, lease_s: float, token: str) -> EmailJob | None:
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
        return EmailJob(message=codec.message(doc), token=token, sending=bool(doc.get("outbox_sending")))

    async def drop(self, job: EmailJob) -> None:
        """Nothing to send (no queued EMAIL delivery): the message stops being a job."""
        await self.messages.update_one(
            {"_id": job.id, "outbox_claim": job.token}, {"$unset": {f: "" for f in OUTBOX_FIELDS}}
        )

    async def mark_sending(self, job: EmailJob, email_message_id: str) -> bool:
        """False when the lease was lost."""
        result = await self.messages.update_one(
            {"_id": job.id, "outbox_claim": job.token}, {"$set": {"outbox_sending": email_message_id}}
        )
        return result.matched_count == 1

    async def was_sending(self, job: EmailJob) -> bool:
        doc = await self.messages.find_one({"_id": job.id, "outbox_claim": job.token}, {"outbox_sending": 1})
        return bool(doc and doc.get("outbox_sending"))

    async def record(
        self, job: EmailJob, deliveries: tuple[Delivery, ...], retry_at: datetime | None, email_message_id: str | None
    ) -> bool:
        """Store the deliveries in one update under the claim: due again at ``retry_at``,
        or done (``email_message_id`` kept for the thread of later emails). False when
        the lease was lost."""
        update: dict[str, Any] = {"$set": {"deliveries": [codec.delivery_doc(d) for d in deliveries]}}
        if retry_at is not None:
            update["$set"]["outbox_due"] = ms(retry_at)
            update["$unset"] = {f: "" for f in OUTBOX_FIELDS if f != "outbox_due"}
        else:
            update["$unset"] = {f: "" for f in OUTBOX_FIELDS}
            if email_message_id is not None:
                update["$set"]["email_message_id"] = email_message_id
        result = await self.messages.update_one({"_id": job.id, "outbox_claim": job.token}, update)
        return result.matched_count == 1

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

    async def queued(self) -> int:
        """Jobs waiting or leased: the ``count`` command on the partial index (``count_documents``
        is an aggregation that nx-27017 runs in Python over every message)."""
        reply = await self.messages.database.command({"count": "messages", "query": {"outbox_due": {"$gte": 0}}})
        return reply["n"]
