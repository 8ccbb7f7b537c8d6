"""The ``login_attempts`` collection: the login throttle's counters (rules in ``domain.throttle``).

One counter document per key, its window starting at its first attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from api.store import codec
from api.store.codec import ms


class LoginAttempts:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.login_attempts

    async def take(self, key: str, now: datetime, window_s: float) -> int:
        """Counts one attempt atomically and returns the count after it.

        Each step is a single-document atomic update, so concurrent attempts each
        get their own count. No upsert: nx-27017 ignores ``$setOnInsert`` in
        ``find_one_and_update`` upserts, so a missing counter is created by a plain
        insert, and a lost insert race (duplicate ``_id``) counts on the winner's.
        """
        now_ms, fresh_after = ms(now), ms(now - timedelta(seconds=window_s))
        for _ in range(5):
            doc = await self.collection.find_one_and_update(
                {"_id": key, "at": {"$gt": fresh_after}},
                {"$inc": {"n": 1}, "$set": {"last": now_ms}},
                return_document=ReturnDocument.AFTER,
            )
            if doc:
                return int(doc["n"])
            stale = await self.collection.find_one_and_update(
                {"_id": key, "at": {"$lte": fresh_after}}, {"$set": {"n": 1, "at": now_ms, "last": now_ms}}
            )
            if stale:
                return 1
            try:
                await self.collection.insert_one({"_id": key, "n": 1, "at": now_ms, "last": now_ms})
                return 1
            except DuplicateKeyError:
                continue
        return 1 << 30  # never settled under contention: refuse rather than let it through

    async def give_back(self, keys: list[str], now: datetime, window_s: float) -> None:
        await self.collection.update_many(
            {"_id": {"$in": keys}, "at": {"$gt": ms(now - timedelta(seconds=window_s))}, "n": {"$gt": 0}},
            {"$inc": {"n": -1}},
        )

    async def recent(self, key: str, now: datetime, window_s: float) -> tuple[int, datetime | None]:
        doc = await self.collection.find_one({"_id": key, "at": {"$gt": ms(now - timedelta(seconds=window_s))}})
        if not doc:
            return 0, None
        return int(doc.get("n", 0)), codec.dt(doc.get("last"))

    async def forget_before(self, moment: datetime) -> int:
        """Counters whose window started before ``moment``; returns how many were deleted."""
        return (await self.collection.delete_many({"at": {"$lt": ms(moment)}})).deleted_count
