"""The ``events`` collection (the event log) and the ``counters`` document that numbers it.

Every conversation change is stored as one document with a monotonic id,
taken from one atomic counter before the insert; ``seq`` is an indexed copy
of ``_id`` (nx-27017 scans the whole collection for a range on ``_id``, but
runs a range on an indexed field in SQL). Readers get the documents as
stored: the hub routes them by their fields and subscribers decode them with
:func:`event_from_doc`.

Some kinds carry no conversation, only news every instance must act on:
``TEAMS_CHANGED`` (subscribers re-read their teams), ``API_KEY_REVOKED``
(instances forget the key and close its WebSockets), ``MEMBER_TOKENS_REVOKED``
and ``TOKEN_REVOKED`` (instances refuse a member's older tokens, or one token,
and close the WebSockets opened with them: :mod:`api.sessions`), ``NOTIFIED``
and ``AVAILABILITY`` (a member's availability or online state); see
:func:`is_conversation_event`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.enums import ConversationStatus, EventKind
from domain.events import Event

TEAMS_CHANGED = "TEAMS_CHANGED"
API_KEY_REVOKED = "API_KEY_REVOKED"
MEMBER_TOKENS_REVOKED = "MEMBER_TOKENS_REVOKED"
TOKEN_REVOKED = "TOKEN_REVOKED"
NOTIFIED = "NOTIFIED"  # notifications about no conversation; like TEAMS_CHANGED, not a conversation event
AVAILABILITY = "AVAILABILITY"  # a member's availability or online state changed; not a conversation event
WATCH_AWAIT_MS = 200
WATCH_IDLE_S = 0.02  # least time between two empty change-stream reads


class EventStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.events
        self.counters = db.counters

    async def next_id(self) -> int:
        doc = await self.counters.find_one_and_update(
            {"_id": "events"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None  # an upsert returning the document AFTER always has one
        return doc["n"]

    async def append(self, event: Event, event_id: int, notified: dict[str, str]) -> None:
        await self.collection.insert_one(event_doc(event, event_id, notified))

    async def append_teams_changed(self, event_id: int, org_id: str, at: datetime) -> None:
        await self.collection.insert_one(
            {"_id": event_id, "seq": event_id, "org_id": org_id, "kind": TEAMS_CHANGED, "at": ms(at)}
        )

    async def issued_id(self) -> int:
        """The last id the counter handed out (its event may still be on its way, or deleted since)."""
        doc = await self.counters.find_one({"_id": "events"})
        return doc["n"] if doc else 0

    async def append_api_key_revoked(self, event_id: int, org_id: str, key_id: str, at: datetime) -> None:
        await self.collection.insert_one(
            {
                "_id": event_id,
                "seq": event_id,
                "org_id": org_id,
                "kind": API_KEY_REVOKED,
                "key_id": key_id,
                "at": ms(at),
            }
        )

    async def append_notice(self, event_id: int, org_id: str, kind: str, at: datetime, **fields: Any) -> None:
        """News about no conversation for every instance (``MEMBER_TOKENS_REVOKED``, ``TOKEN_REVOKED``)."""
        await self.collection.insert_one(
            {"_id": event_id, "seq": event_id, "org_id": org_id, "kind": kind, "at": ms(at), **fields}
        )

    async def newest_id(self) -> int:
        last = await self.collection.find_one({}, sort=[("seq", -1)], projection={"_id": 1})
        return last["_id"] if last else 0

    async def of_org_between(self, org_id: str, after: int, up_to: int) -> list[dict]:
        cursor = self.collection.find({"org_id": org_id, "seq": {"$gt": after, "$lte": up_to}}).sort("seq", 1)
        return await cursor.to_list()

    async def of_conversation_between(self, org_id: str, conversation_id: str, after: int, up_to: int) -> list[dict]:
        cursor = self.collection.find(
            {"conversation_id": conversation_id, "seq": {"$gt": after, "$lte": up_to}, "org_id": org_id}
        ).sort("seq", 1)
        return await cursor.to_list()

    async def of_org_page(self, org_id: str, after: int, up_to: int, limit: int) -> list[dict]:
        """At most ``limit`` of :meth:`of_org_between` (a webhook catching up reads in pages)."""
        query = {"org_id": org_id, "seq": {"$gt": after, "$lte": up_to}}
        return await self.collection.find(query).sort("seq", 1).limit(limit).to_list()

    async def concerning(self, org_id: str, after: int, up_to: int, limit: int) -> list[dict]:
        """The organization's events in (``after``, ``up_to``], oldest first, at most ``limit``,
        with only what says whom they concern (kind, the conversation's team, the team before)."""
        query = {"org_id": org_id, "seq": {"$gt": after, "$lte": up_to}}
        projection = {"_id": 1, "kind": 1, "conversation.team_id": 1, "team_before": 1}
        docs = await self.collection.find(query, projection).sort("seq", 1).limit(limit).to_list()
        for doc in docs:
            # nx-27017 difference: a dotted projection comes back as a flat key
            # ("conversation.team_id": …) where MongoDB nests it ({"conversation": {"team_id": …}}).
            if "conversation.team_id" in doc:
                doc["conversation"] = {"team_id": doc.pop("conversation.team_id")}
        return docs

    async def oldest_id_of(self, org_id: str) -> int | None:
        """The organization's oldest event still kept (a replay can't start before it)."""
        first = await self.collection.find_one({"org_id": org_id}, sort=[("seq", 1)], projection={"_id": 1})
        return first["_id"] if first else None

    async def append_notified(self, event_id: int, org_id: str, at: datetime, notified: dict[str, str]) -> None:
        """Notifications about no conversation (a webhook disabled), pushed to the members they name."""
        await self.collection.insert_one(
            {"_id": event_id, "seq": event_id, "org_id": org_id, "kind": NOTIFIED, "at": ms(at), "notified": notified}
        )

    async def append_availability(
        self, event_id: int, org_id: str, at: datetime, member_id: str, availability: str, online: bool
    ) -> None:
        """A member's availability or online state changed: their id and states, nothing private."""
        await self.collection.insert_one(
            {
                "_id": event_id,
                "seq": event_id,
                "org_id": org_id,
                "kind": AVAILABILITY,
                "at": ms(at),
                "member_id": member_id,
                "availability": availability,
                "online": online,
            }
        )

    async def after(self, event_id: int, limit: int) -> list[dict]:
        return await self.collection.find({"seq": {"$gt": event_id}}).sort("seq", 1).limit(limit).to_list()

    async def follow_inserts(self, on_insert: Callable[[], None], stopping: Callable[[], bool]) -> None:
        """Calls ``on_insert`` for every event inserted, by any instance, until ``stopping()``.

        Raises where the deployment has no change streams (standalone MongoDB).
        Each read waits at most ``WATCH_AWAIT_MS``, so this returns by itself soon
        after ``stopping()``: cancelling it in the middle of a ``getMore`` leaves
        nx-27017's cursor open and hangs the client's close.
        """
        async with await self.collection.watch(
            [{"$match": {"operationType": "insert"}}], max_await_time_ms=WATCH_AWAIT_MS
        ) as stream:
            while not stopping():
                asked = time.monotonic()
                if await stream.try_next() is not None:
                    on_insert()
                elif (idle := asked + WATCH_IDLE_S - time.monotonic()) > 0:
                    # nx-27017 ignores maxAwaitTimeMS and answers an empty getMore at
                    # once: without this pause the watcher would send thousands of
                    # getMores a second, each holding the embedded database's only lock.
                    await asyncio.sleep(idle)

    async def forget_typing_before(self, moment: datetime) -> int:
        """Typing indicators older than ``moment``: they only travel to the other instances' hubs."""
        return (await self.collection.delete_many({"at": {"$lt": ms(moment)}, "kind": "TYPING"})).deleted_count

    async def forget_before(self, moment: datetime, holds: dict[str, int] | None = None) -> int:
        """Events older than ``moment``; returns how many were deleted.

        ``holds`` (organization id -> event id) keeps an organization's events after that id
        however old: a webhook's endpoint that was down gets them all when it is back.
        """
        cutoff = {"$lt": ms(moment)}
        if not holds:
            return (await self.collection.delete_many({"at": cutoff})).deleted_count
        deleted = (await self.collection.delete_many({"at": cutoff, "org_id": {"$nin": list(holds)}})).deleted_count
        for org_id, kept_after in holds.items():
            query = {"at": cutoff, "org_id": org_id, "seq": {"$lte": kept_after}}
            deleted += (await self.collection.delete_many(query)).deleted_count
        return deleted


def event_doc(event: Event, event_id: int, notified: dict[str, str]) -> dict[str, Any]:
    return codec.compact(
        {
            "_id": event_id,
            "seq": event_id,
            "org_id": event.conversation.org_id,
            "kind": event.kind.value,
            "at": ms(event.at),
            "actor_id": event.actor_id,
            "actor_app": True if event.by_app else None,
            "previous_status": event.previous_status.value if event.previous_status else None,
            "new_status": event.new_status.value if event.new_status else None,
            "message_id": event.message_id,
            "owner_before": event.owner_before,
            "team_before": event.team_before,
            "note": event.note,
            "conversation": codec.conversation_doc(event.conversation),
            # a copy of the conversation's id, indexed: a widget visitor's stream replays its own
            "conversation_id": event.conversation.id,
            "notified": notified or None,
            "line_id": event.line_id,
            "typing": event.typing,
        }
    )


def event_from_doc(doc: dict) -> Event:
    return Event(
        id=doc["_id"],
        kind=EventKind(doc["kind"]),
        conversation=codec.conversation(doc["conversation"]),
        at=codec.stored_dt(doc["at"]),
        actor_id=doc.get("actor_id"),
        previous_status=ConversationStatus(doc["previous_status"]) if doc.get("previous_status") else None,
        new_status=ConversationStatus(doc["new_status"]) if doc.get("new_status") else None,
        message_id=doc.get("message_id"),
        owner_before=doc.get("owner_before"),
        line_id=doc.get("line_id"),
        team_before=doc.get("team_before"),
        note=doc.get("note"),
        typing=doc.get("typing"),
        by_app=bool(doc.get("actor_app")),
    )


def teams_concerned(doc: dict) -> tuple[str, ...]:
    """The teams whose members may be told of a conversation event: the conversation's team,
    and its team before a transfer (whose members learn it is gone). The hub routes live
    events by them; a webhook limited to teams skips the others' events without running
    its subscription."""
    team_id = (doc.get("conversation") or {}).get("team_id")
    before = doc.get("team_before")
    return tuple(t for t in (team_id, before) if t)


def is_conversation_event(doc: dict) -> bool:
    """An event about a conversation (what :func:`event_from_doc` decodes), not a
    ``TEAMS_CHANGED``, ``API_KEY_REVOKED`` or ``NOTIFIED`` notice."""
    return "conversation" in doc
