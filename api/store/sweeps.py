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

    async def oldest_due(self, now: datetime) -> datetime | None:
        """When the longest-waiting due transition fell due (metrics: how late the sweeper is)."""
        doc = await self.conversations.find_one(
            {"next_due_at": {"$lt": ms(now)}}, {"next_due_at": 1}, sort=[("next_due_at", 1)]
        )
        return codec.dt(doc["next_due_at"]) if doc else None
