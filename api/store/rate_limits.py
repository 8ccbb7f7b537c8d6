"""The ``rate_limits`` collection: the web widget's counters (rules in ``domain.widget``).

One counter document per key, its window starting at its first use, as the login
throttle's (:mod:`api.store.login_attempts`), with the window's start handed back so
a refusal can say when to retry.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from api.store import codec
from api.store.codec import ms


class RateLimits:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.rate_limits

    async def count(self, key: str, now: datetime, window_s: float) -> tuple[int, datetime]:
        """Counts one use atomically: (the count in the key's window after it, the window's start).

        Single-document atomic steps, as :meth:`api.store.login_attempts.LoginAttempts.take`
        (no upsert: nx-27017 ignores ``$setOnInsert`` in ``find_one_and_update`` upserts).
        """
        now_ms, fresh_after = ms(now), ms(now - timedelta(seconds=window_s))
        for _ in range(5):
            doc = await self.collection.find_one_and_update(
                {"_id": key, "at": {"$gt": fresh_after}},
                {"$inc": {"n": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if doc:
                return int(doc["n"]), codec.stored_dt(doc["at"])
            stale = await self.collection.find_one_and_update(
                {"_id": key, "at": {"$lte": fresh_after}}, {"$set": {"n": 1, "at": now_ms, "window": window_s}}
            )
            if stale:
                return 1, now
            try:
                await self.collection.insert_one({"_id": key, "n": 1, "at": now_ms, "window": window_s})
                return 1, now
            except DuplicateKeyError:
                continue
        return 1 << 30, now  # never settled under contention: refuse rather than let it through

    async def forget_before(self, moment: datetime) -> int:
        """Counters whose window started before ``moment``; returns how many were deleted."""
        return (await self.collection.delete_many({"at": {"$lt": ms(moment)}})).deleted_count
