"""Fans the shared event log out to this process's subscribers, in id order.

One reader per process follows the ``events`` collection: woken at once by
local publishes, by a change stream when the deployment has one (replica
set, or the embedded server), and otherwise by a short poll. It hands every
event, in id order and without gaps, to each subscriber's queue. Ids are
taken from a counter before the insert, so two instances can commit 6 before
5; the reader waits briefly for a missing id before moving past it.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("imbrace.hub")

POLL_INTERVAL_S = 0.25
GAP_WAIT_S = 2.0
QUEUE_LIMIT = 10_000
WATCH_AWAIT_MS = 200


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False


class EventHub:
    def __init__(self, db) -> None:
        self.db = db
        self.dispatched_id = 0
        self.subscriptions: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._gap_since: float | None = None
        self._stopping = False

    async def start(self) -> None:
        last = await self.db.events.find_one({}, sort=[("seq", -1)], projection={"_id": 1})
        self.dispatched_id = last["_id"] if last else 0
        self._tasks = [asyncio.create_task(self._follow(), name="event-hub"),
                       asyncio.create_task(self._watch(), name="event-hub-watch")]

    async def stop(self) -> None:
        # The watcher ends by itself within one await period: cancelling it
        # mid-getMore leaves the embedded server's cursor open and hangs close().
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def wake(self) -> None:
        self._wake.set()

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    async def replay(self, org_id: str, after: int, up_to: int) -> list[dict]:
        """Stored events a reconnecting client missed (kept for the retention period)."""
        cursor = self.db.events.find({"org_id": org_id, "seq": {"$gt": after, "$lte": up_to}}).sort("seq", 1)
        return await cursor.to_list()

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
        # By `seq`, an indexed copy of `_id`: nx-27017 runs a range on `_id` as a
        # Python scan of the whole collection, but a range on an indexed field in SQL.
        docs = await self.db.events.find({"seq": {"$gt": self.dispatched_id}}).sort("seq", 1).limit(1000).to_list()
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

    def _deliver(self, doc: dict) -> None:
        for subscription in list(self.subscriptions):
            try:
                subscription.queue.put_nowait(doc)
            except asyncio.QueueFull:
                subscription.overflowed = True

    async def _watch(self) -> None:
        """Wake on inserts by other instances, where change streams exist."""
        try:
            async with await self.db.events.watch([{"$match": {"operationType": "insert"}}],
                                                  max_await_time_ms=WATCH_AWAIT_MS) as stream:
                while not self._stopping:
                    if await stream.try_next() is not None:
                        self._wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # standalone MongoDB has no change streams: polling covers it
            log.info("no change stream on events (%s); polling every %.2fs", error, POLL_INTERVAL_S)
