"""The event log: every conversation change, stored with a monotonic id.

Events live in MongoDB, not in process memory, so every server instance
reads the same ordered stream and a reconnecting client can ask for what it
missed. Ids come from one atomic counter document. Notifications are decided
and stored here, once, by the instance that makes the change; the event
names their recipients so every instance can push them to connected members.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bson import ObjectId

from pymongo import ReturnDocument

from api.metrics import Metrics
from api.store import codec
from api.store.codec import ms
from domain.entities import Team
from domain.enums import ConversationStatus, EventKind, SenderKind
from domain.events import Event
from domain.notifications import needs_team, recipients
from domain.status import Thresholds, status_of

TEAMS_CHANGED = "TEAMS_CHANGED"


class EventLog:
    def __init__(self, db, thresholds: Thresholds, metrics: Metrics | None = None) -> None:
        self.db = db
        self.thresholds = thresholds
        self.metrics = metrics or Metrics()
        self.on_publish = None

    async def next_id(self) -> int:
        doc = await self.db.counters.find_one_and_update(
            {"_id": "events"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER)
        return doc["n"]

    async def publish(self, event: Event) -> int:
        conversation = event.conversation
        if event.new_status is None:
            event = replace(event, new_status=status_of(conversation, event.at, self.thresholds))
        team_doc = await self.db.teams.find_one({"_id": conversation.team_id}) if needs_team(event) else None
        sender = SenderKind.CUSTOMER if event.actor_id is None else SenderKind.MEMBER
        notified = await self._notify(event, codec.team(team_doc) if team_doc else None, sender)
        event_id = await self.next_id()
        await self.db.events.insert_one(event_doc(event, event_id, notified))
        self.metrics.published(event.kind.value)
        self._wake()
        return event_id

    async def publish_teams_changed(self, org_id: str, at) -> None:
        """Subscribers of the organization re-read their teams: a removed member stops seeing at once."""
        event_id = await self.next_id()
        await self.db.events.insert_one({"_id": event_id, "seq": event_id, "org_id": org_id, "kind": TEAMS_CHANGED,
                                         "at": ms(at)})
        self.metrics.published(TEAMS_CHANGED)
        self._wake()

    async def _notify(self, event: Event, team: Team | None, sender: SenderKind) -> dict[str, str]:
        found = [r for r in recipients(event, team, sender) if r.member_id != event.actor_id]
        if not found:
            return {}
        docs = [{"_id": codec_id(), "org_id": event.conversation.org_id, "member_id": r.member_id,
                 "kind": r.kind.value, "conversation_id": event.conversation.id, "created_at": ms(event.at),
                 "read": False} for r in found]
        await self.db.notifications.insert_many(docs)
        return {d["member_id"]: d["_id"] for d in docs}

    def _wake(self) -> None:
        if self.on_publish is not None:
            self.on_publish()


def codec_id() -> str:
    return str(ObjectId())


def event_doc(event: Event, event_id: int, notified: dict[str, str]) -> dict[str, Any]:
    return codec.compact({
        "_id": event_id,
        "seq": event_id,
        "org_id": event.conversation.org_id,
        "kind": event.kind.value,
        "at": ms(event.at),
        "actor_id": event.actor_id,
        "previous_status": event.previous_status.value if event.previous_status else None,
        "new_status": event.new_status.value if event.new_status else None,
        "message_id": event.message_id,
        "owner_before": event.owner_before,
        "conversation": codec.conversation_doc(event.conversation),
        "notified": notified or None,
    })


def event_from_doc(doc: dict) -> Event:
    return Event(
        id=doc["_id"], kind=EventKind(doc["kind"]), conversation=codec.conversation(doc["conversation"]),
        at=codec.dt(doc["at"]), actor_id=doc.get("actor_id"),
        previous_status=ConversationStatus(doc["previous_status"]) if doc.get("previous_status") else None,
        new_status=ConversationStatus(doc["new_status"]) if doc.get("new_status") else None,
        message_id=doc.get("message_id"), owner_before=doc.get("owner_before"),
    )
