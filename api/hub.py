"""Fans the shared event log out to this process's subscribers, in id order.

One reader per process follows the event log (:mod:`api.store.events`): woken at once by
local publishes, by a change stream when the deployment has one (replica
set, or the embedded server), and otherwise by a short poll. It hands every
event, in id order and without gaps, to each subscriber's queue, as one
:class:`DispatchedEvent` shared by all of them. Ids are taken from a counter
before the insert, so two instances can commit 6 before 5; the reader waits
briefly for a missing id before moving past it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from api.metrics import Metrics
from api.store.events import (
    AVAILABILITY,
    NOTIFIED,
    TEAMS_CHANGED,
    EventStore,
    event_from_doc,
    is_conversation_event,
    teams_concerned,
)
from domain.enums import EventKind
from domain.events import Event

log = logging.getLogger("imbrace.hub")

POLL_INTERVAL_S = 0.25
GAP_WAIT_S = 2.0
QUEUE_LIMIT = 10_000
NEWEST_KEPT = 20_000  # conversations whose newest dispatched state is remembered


class DispatchedEvent:
    """One stored event on its way to subscribers, with the work done for it once.

    The hub hands the same object to every queue that may care, so what one
    subscriber works out is there for the next: the decoded event, verdicts
    per judgment key (:func:`domain.events.judgment_key`), the payload per
    delivered kind (whose shared results let equal operations share an
    execution), and the loading of its message and of its system line.
    """

    __slots__ = ("doc", "_event", "verdicts", "payloads", "message", "line")

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self._event: Event | None = None
        self.verdicts: dict[tuple, Any] = {}
        self.payloads: dict[Any, Any] = {}
        self.message: asyncio.Future | None = None
        self.line: asyncio.Future | None = None  # the system line the change wrote, if any

    @property
    def event(self) -> Event:
        """The stored document decoded, once, when first asked for."""
        if self._event is None:
            self._event = event_from_doc(self.doc)
        return self._event


class Subscription:
    """One subscriber's queue, and what it is interested in.

    ``team_ids`` are the teams whose conversations it may see (None: the whole
    organization); ``member_id``, when set, asks only for events that notify
    that member; ``conversation_id``, only for one conversation's events (a web
    widget visitor's own); ``topic``, only for one kind of news about no conversation
    (AVAILABILITY). The hub hands each event only to the subscriptions
    that may care about it, so the cost of an event grows with its audience, not
    with every connected client.
    """

    def __init__(
        self,
        org_id: str,
        team_ids: frozenset[str] | None,
        member_id: str | None,
        conversation_id: str | None = None,
        topic: str | None = None,
    ) -> None:
        self.org_id = org_id
        self.topic = topic
        self.team_ids = team_ids
        self.member_id = member_id
        self.conversation_id = conversation_id
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False


class Audience:
    """Subscriptions indexed by organization, team, notified member, conversation and topic."""

    def __init__(self) -> None:
        self.by_org: dict[str, set[Subscription]] = {}
        self.whole_org: dict[str, set[Subscription]] = {}
        self.by_team: dict[tuple[str, str], set[Subscription]] = {}
        self.by_member: dict[str, set[Subscription]] = {}
        self.by_conversation: dict[str, set[Subscription]] = {}
        self.by_topic: dict[tuple[str, str], set[Subscription]] = {}

    def add(self, subscription: Subscription) -> None:
        self.by_org.setdefault(subscription.org_id, set()).add(subscription)
        for bucket in self._buckets(subscription):
            bucket.add(subscription)

    def remove(self, subscription: Subscription) -> None:
        _discard(self.by_org, subscription.org_id, subscription)
        for index, key in self._keys(subscription):
            _discard(index, key, subscription)

    def of(self, doc: dict) -> set[Subscription]:
        """Who may care about an event: whoever sees the whole organization, the conversation's team
        (and its team before a transfer), the notified members; everyone of the organization for a
        team change."""
        org_id = doc.get("org_id", "")  # "" (no such organization or team) where missing
        if doc.get("kind") == TEAMS_CHANGED:  # a visitor's stream doesn't depend on teams
            return {s for s in self.by_org.get(org_id, ()) if s.conversation_id is None and s.topic is None}
        if doc.get("kind") == AVAILABILITY:  # the organization's availability subscribers
            return set(self.by_topic.get((org_id, AVAILABILITY), ()))
        if doc.get("kind") == NOTIFIED:  # notifications about no conversation: the members they name
            return {s for m in doc.get("notified") or () for s in self.by_member.get(m, ()) if s.org_id == org_id}
        if not is_conversation_event(doc):
            return set()  # news for the instance (see EventHub.observe), not for subscribers
        conversation = doc.get("conversation") or {}
        found = set(self.whole_org.get(org_id, ()))
        for team_id in teams_concerned(doc):  # a transfer's old team too: its subscribers learn it is gone
            found.update(self.by_team.get((org_id, team_id), ()))
        for member_id in doc.get("notified") or ():
            found.update(s for s in self.by_member.get(member_id, ()) if s.org_id == org_id)
        found.update(s for s in self.by_conversation.get(conversation.get("_id", ""), ()) if s.org_id == org_id)
        return found

    def _buckets(self, subscription: Subscription):
        for index, key in self._keys(subscription):
            yield index.setdefault(key, set())

    def _keys(self, subscription: Subscription):
        if subscription.topic is not None:
            yield self.by_topic, (subscription.org_id, subscription.topic)
        elif subscription.conversation_id is not None:
            yield self.by_conversation, subscription.conversation_id
        elif subscription.member_id is not None:
            yield self.by_member, subscription.member_id
        elif subscription.team_ids is None:
            yield self.whole_org, subscription.org_id
        else:
            for team_id in subscription.team_ids:
                yield self.by_team, (subscription.org_id, team_id)


def _replays(doc: dict) -> bool:
    return doc.get("kind") != EventKind.TYPING.value


def _discard(index: dict, key, subscription: Subscription) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.discard(subscription)
        if not bucket:
            del index[key]


class EventHub:
    def __init__(self, events: EventStore, metrics: Metrics | None = None) -> None:
        self.events = events
        self._delivered = (metrics or Metrics()).events_delivered
        self.dispatched_id = 0
        self.audience = Audience()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._gap_since: float | None = None
        self._stopping = False
        # conversation id -> (event id, conversation as stored in that event), for the
        # newest event dispatched: lets a subscriber behind in its queue judge an
        # older event against what the conversation has become since.
        self._newest: OrderedDict[str, tuple[int, dict]] = OrderedDict()
        self._watchers: dict[str, list[Callable[[dict], None]]] = {}

    async def start(self) -> None:
        self.dispatched_id = await self.events.newest_id()
        self._tasks = [
            asyncio.create_task(self._follow(), name="event-hub"),
            asyncio.create_task(self._watch(), name="event-hub-watch"),
        ]

    async def stop(self) -> None:
        # The watcher ends by itself within one await period (see
        # EventStore.follow_inserts): cancelling it mid-getMore hangs close().
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def wake(self) -> None:
        self._wake.set()

    def observe(self, kind: str, callback: Callable[[dict], None]) -> None:
        """Call ``callback`` with every event of ``kind`` this instance dispatches, whichever
        instance wrote it: how something is made to hold on every instance (a revoked
        API key refused everywhere at once). It runs in the reader's loop: keep it short."""
        self._watchers.setdefault(kind, []).append(callback)

    def subscribe(
        self,
        org_id: str,
        team_ids: frozenset[str] | None = None,
        member_id: str | None = None,
        conversation_id: str | None = None,
        topic: str | None = None,
    ) -> Subscription:
        subscription = Subscription(org_id, team_ids, member_id, conversation_id, topic)
        self.audience.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.audience.remove(subscription)

    def follow_teams(self, subscription: Subscription, team_ids: frozenset[str] | None) -> None:
        """After the subscriber re-read its teams (a TEAMS_CHANGED event)."""
        self.audience.remove(subscription)
        subscription.team_ids = team_ids
        self.audience.add(subscription)

    async def replay(self, org_id: str, after: int, up_to: int) -> list[DispatchedEvent]:
        """Stored events a reconnecting client missed (kept for the retention period); typing
        indicators are never replayed (they only mean something live)."""
        return [DispatchedEvent(doc) for doc in await self.events.of_org_between(org_id, after, up_to) if _replays(doc)]

    async def replay_conversation(
        self, org_id: str, conversation_id: str, after: int, up_to: int
    ) -> list[DispatchedEvent]:
        """One conversation's stored events after ``after`` (a widget visitor resuming)."""
        found = await self.events.of_conversation_between(org_id, conversation_id, after, up_to)
        return [DispatchedEvent(doc) for doc in found if _replays(doc)]

    async def _follow(self) -> None:
        # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that
        # arrives with its timeout, and stop() would wait forever.
        while not self._stopping:
            try:
                async with asyncio.timeout(POLL_INTERVAL_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._dispatch_new()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage must not kill the reader; it resumes from its id
                log.warning("event hub could not read events; retrying", exc_info=True)
                await asyncio.sleep(POLL_INTERVAL_S)

    async def _dispatch_new(self) -> None:
        docs = await self.events.after(self.dispatched_id, 1000)
        for doc in docs:
            if doc["_id"] != self.dispatched_id + 1 and not self._gap_expired():
                await asyncio.sleep(0.02)
                self._wake.set()
                return
            self._gap_since = None
            self.dispatched_id = doc["_id"]
            self._deliver(doc)
        if len(docs) == 1000:
            self._wake.set()

    def _gap_expired(self) -> bool:
        """A missing id is a publish still in flight, or one that died between counter and insert."""
        now = time.monotonic()
        if self._gap_since is None:
            self._gap_since = now
        return now - self._gap_since > GAP_WAIT_S

    def newer_state(self, doc: dict) -> dict | None:
        """The conversation as a later dispatched event left it, if one has been
        dispatched since ``doc``; None when ``doc`` is the newest known."""
        conversation = doc.get("conversation")
        newest = self._newest.get(conversation["_id"]) if conversation else None
        if newest is None or newest[0] <= doc["_id"]:
            return None
        return newest[1]

    def _remember(self, doc: dict) -> None:
        conversation = doc.get("conversation")
        if conversation is None:
            return
        self._newest[conversation["_id"]] = (doc["_id"], conversation)
        self._newest.move_to_end(conversation["_id"])
        if len(self._newest) > NEWEST_KEPT:
            self._newest.popitem(last=False)

    def _deliver(self, doc: dict) -> None:
        for callback in self._watchers.get(doc.get("kind", ""), ()):
            try:
                callback(doc)
            except Exception:  # noqa: BLE001 - one watcher's bug must not stop the reader
                log.exception("event watcher failed on %s", doc.get("kind"))
        if doc.get("kind") != EventKind.TYPING.value:  # says nothing of the conversation's state
            self._remember(doc)
        teams_changed = doc.get("kind") == TEAMS_CHANGED
        dispatched = DispatchedEvent(doc)
        delivered = 0
        for subscription in self.audience.of(doc):
            if teams_changed and subscription.member_id is None and subscription.conversation_id is None:
                # Until it has re-read its teams, it may care about any team's events.
                self.follow_teams(subscription, None)
            try:
                subscription.queue.put_nowait(dispatched)
                delivered += 1
            except asyncio.QueueFull:
                subscription.overflowed = True
        if delivered:
            self._delivered.inc(delivered)

    async def _watch(self) -> None:
        """Wake on inserts by other instances, where change streams exist."""
        try:
            await self.events.follow_inserts(self._wake.set, lambda: self._stopping)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # standalone MongoDB has no change streams: polling covers it
            log.info("no change stream on events (%s); polling every %.2fs", error, POLL_INTERVAL_S)
