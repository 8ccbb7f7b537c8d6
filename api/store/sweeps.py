"""The sweeper's queries on ``conversations``: what is due, by the ``next_due_at`` index.

Every write that changes what a conversation's next time-driven transition
depends on keeps ``next_due_at`` (int ms) at or before that moment, so what
is due is one range read of the index, however many conversations are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.entities import Conversation


@dataclass(frozen=True, slots=True)
class DueConversation:
    """A due conversation as stored, decoded by the caller one at a time: one document
    no code can read is skipped alone, named by its id."""

    id: Any
    doc: dict[str, Any]

    def conversation(self) -> Conversation:
        return codec.conversation(self.doc)


class Sweeps:
    def __init__(self, db: AsyncDatabase) -> None:
        self.conversations = db.conversations

    async def due(self, now: datetime, limit: int) -> list[DueConversation]:
        """The ``limit`` most overdue. ``$lt``: a transition is due strictly after its moment,
        and stored moments are truncated to the millisecond, so ``next_due_at < ms(now)`` means due."""
        cursor = self.conversations.find({"next_due_at": {"$lt": ms(now)}}).sort("next_due_at", 1).limit(limit)
        return [DueConversation(doc.get("_id"), doc) for doc in await cursor.to_list()]

    async def reschedule(self, conversation: Conversation, moment: datetime | None) -> None:
        """Store the next moment (none: nothing will be due) unless the conversation changed
        since it was read, in which case its writer stored one."""
        if conversation.closed_at is not None:
            claim: dict[str, Any] = {"_id": conversation.id, "closed_at": ms(conversation.closed_at)}
        else:
            claim = {"_id": conversation.id, "closed_at": None, "announced_status": conversation.announced_status,
                     "waiting_since": ms(conversation.waiting_since),
                     "last_customer_message_at": ms(conversation.last_customer_message_at)}
        update = {"$set": {"next_due_at": ms(moment)}} if moment else {"$unset": {"next_due_at": ""}}
        await self.conversations.update_one({**claim, "next_due_at": ms(conversation.next_due_at)}, update)

    async def oldest_due(self, now: datetime) -> datetime | None:
        """When the longest-waiting due transition fell due (metrics: how late the sweeper is)."""
        doc = await self.conversations.find_one({"next_due_at": {"$lt": ms(now)}}, {"next_due_at": 1},
                                                sort=[("next_due_at", 1)])
        return codec.dt(doc["next_due_at"]) if doc else None
