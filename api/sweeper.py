"""Time-driven transitions: SOON_TO_BE, OVERDUE and inactivity auto-close.

Statuses are always computed at query time; the sweeper only *announces*
them (events, notifications) and persists inactivity closes. It is driven by
stored timestamps, so after downtime it catches up, and each transition is
claimed with one conditional update on ``announced_status``, so with several
instances exactly one announces it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from api.periodic import Periodic
from api.store import codec
from api.store.codec import ms
from api.store.query import to_mongo
from domain.enums import ClosedReason, ConversationStatus, EventKind
from domain.events import Event
from domain.status import Thresholds, closed_at, due_for_announcement, unannounced_transition

log = logging.getLogger("imbrace.sweeper")
BATCH = 500


class Sweeper:
    def __init__(self, db, events, thresholds: Thresholds, interval_s: float, clock) -> None:
        self.db = db
        self.events = events
        self.thresholds = thresholds
        self.interval_s = interval_s
        self.clock = clock

    def start(self) -> None:
        self._periodic = Periodic("sweeper", lambda: self.sweep(self.clock()), self.interval_s)
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def sweep(self, now: datetime) -> int:
        """Announce every time-driven transition due at ``now``; returns how many this instance claimed."""
        due = to_mongo(due_for_announcement(now, self.thresholds))
        claimed = 0
        for doc in await self.db.conversations.find(due).limit(BATCH).to_list():
            claimed += await self._announce(codec.conversation(doc), now)
        return claimed

    async def _announce(self, conversation, now: datetime) -> int:
        transition = unannounced_transition(conversation, now, self.thresholds)
        if transition is None:
            return 0
        previous, status = transition
        claim = {"_id": conversation.id, "closed_at": None,
                 "announced_status": conversation.announced_status}
        update: dict = {"$set": {"announced_status": status.value}}
        if status is ConversationStatus.CLOSED:
            update["$set"].update({"closed_at": ms(closed_at(conversation, now, self.thresholds)),
                                   "closed_reason": ClosedReason.INACTIVITY.value, "participants": [],
                                   "updated_at": ms(now)})
            update["$unset"] = {"owner_id": "", "waiting_since": ""}
        doc = await self.db.conversations.find_one_and_update(claim, update, return_document=True)
        if doc is None:
            return 0
        kind = EventKind.CLOSED if status is ConversationStatus.CLOSED else EventKind.STATUS_CHANGED
        await self.events.publish(Event(kind=kind, conversation=codec.conversation(doc), at=now,
                                        previous_status=previous, new_status=status,
                                        owner_before=conversation.owner_id))
        return 1
