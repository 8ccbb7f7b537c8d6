"""Time-driven transitions: SOON_TO_BE, OVERDUE and inactivity auto-close.

Statuses are always computed at query time; the sweeper only *announces*
them (events, notifications) and persists inactivity closes. It is driven by
stored timestamps, so after downtime it catches up, and each transition is
claimed with one conditional update on ``announced_status``, so with several
instances exactly one announces it.

It reads only what is due: every write that changes a conversation's waiting,
last customer message, announced status or closing keeps ``next_due_at`` (int
ms, indexed) at or before :func:`domain.status.next_transition_at`, so a sweep
is one range scan of that index however many conversations are stored. Early is
allowed (the domain rule decides each one exactly); a conversation found with
nothing to announce gets its next moment stored.
"""

from __future__ import annotations

import logging
from datetime import datetime

from api.metrics import Metrics
from api.periodic import Periodic
from api.store.mongo import MongoStore
from domain import changes
from domain.changes import OPEN, as_read
from domain.criteria import Criteria, all_of
from domain.entities import Conversation
from domain.enums import ClosedReason, ConversationStatus, EventKind, SystemAction
from domain.events import Event
from domain.status import Thresholds, closed_at, next_transition_at, unannounced_transition
from domain.usecases.lines import write_line

log = logging.getLogger("imbrace.sweeper")
BATCH = 500


class Sweeper:
    def __init__(
        self,
        store: MongoStore,
        events,
        thresholds: Thresholds,
        interval_s: float,
        clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.thresholds = thresholds
        self.interval_s = interval_s
        self.clock = clock
        self.metrics = metrics or Metrics()

    def start(self) -> None:
        self._periodic = Periodic("sweeper", self._sweep_now, self.interval_s)
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _sweep_now(self) -> None:
        await self.sweep(self.clock())
        self.metrics.sweeper_last_success.set_to_current_time()

    async def sweep(self, now: datetime) -> int:
        """Announce every time-driven transition due at ``now``; returns how many this instance claimed.

        Each conversation is judged on its own: one that can't be decoded or
        announced (a corrupt document) is logged with its id and skipped, so it
        can't stop the announcements of every other conversation, in every
        organization, on every sweep.
        """
        claimed = 0
        for due in await self.store.sweeps.due(now, BATCH):
            try:
                claimed += await self._announce(due.conversation(), now)
            except Exception:
                log.exception("sweeper: skipped conversation %s", due.id)
        return claimed

    async def _announce(self, conversation: Conversation, now: datetime) -> int:
        # Claimed only if nothing the decision rests on changed since it was read:
        # a reply, a new customer message or a close in between makes it fail, and
        # the next sweep judges the conversation afresh.
        claim = all_of(OPEN, as_read(conversation, "announced_status", "waiting_since", "last_customer_message_at"))
        transition = unannounced_transition(conversation, now, self.thresholds)
        if transition is None:
            await self._reschedule(conversation, claim)
            return 0
        previous, status = transition
        if status is ConversationStatus.CLOSED:  # the owner stays: see domain.changes.close
            at = closed_at(conversation, now, self.thresholds)
            assert at is not None  # set for every CLOSED conversation
            change = changes.numbered(changes.close(ClosedReason.INACTIVITY, at, now))  # with its history line
        else:
            after = changes.effect(changes.announce(status.value, None), conversation)
            change = changes.announce(status.value, next_transition_at(after, self.thresholds))
        updated = await self.store.change_conversation(conversation.id, change.provided(claim))
        if updated is None:
            return 0
        kind = EventKind.CLOSED if status is ConversationStatus.CLOSED else EventKind.STATUS_CHANGED
        line = await write_line(self.store, updated, SystemAction.CLOSED, now) if kind is EventKind.CLOSED else None
        await self.events.publish(
            Event(
                kind=kind,
                conversation=updated,
                at=now,
                previous_status=previous,
                new_status=status,
                owner_before=conversation.owner_id,
                line_id=line.id if line else None,
            )
        )
        return 1

    async def _reschedule(self, conversation: Conversation, claim: Criteria) -> None:
        """Nothing due yet (stored early, or a closed conversation): store the next moment,
        unless the conversation changed since it was read (its writer stored one)."""
        if conversation.closed_at is not None:
            claim = as_read(conversation, "closed_at")
        still = all_of(claim, as_read(conversation, "next_due_at"))
        moment = next_transition_at(conversation, self.thresholds)
        await self.store.change_conversation(conversation.id, changes.reschedule(moment).provided(still))
