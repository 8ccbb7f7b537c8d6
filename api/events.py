"""The event log: every conversation change, stored with a monotonic id.

Events live in MongoDB, not in process memory, so every server instance
reads the same ordered stream and a reconnecting client can ask for what it
missed. Ids come from one atomic counter document.
"""

from __future__ import annotations


from typing import Any

from pymongo import ReturnDocument

from api.store import codec
from api.store.codec import ms
from domain.events import Event


class EventLog:
    def __init__(self, db) -> None:
        self.db = db

    async def next_id(self) -> int:
        doc = await self.db.counters.find_one_and_update(
            {"_id": "events"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER)
        return doc["n"]

    async def publish(self, event: Event) -> None:
        event_id = await self.next_id()
        await self.db.events.insert_one(event_doc(event, event_id))


def event_doc(event: Event, event_id: int) -> dict[str, Any]:
    return codec.compact({
        "_id": event_id,
        "org_id": event.conversation.org_id,
        "kind": event.kind.value,
        "at": ms(event.at),
        "actor_id": event.actor_id,
        "previous_status": event.previous_status.value if event.previous_status else None,
        "message_id": event.message_id,
        "owner_before": event.owner_before,
        "conversation": codec.conversation_doc(event.conversation),
    })



