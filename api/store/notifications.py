"""The ``notifications`` collection: each member's notification center.

Ids are ObjectIds, so they sort by creation: a page is "newest first, older
than the cursor" on ``_id``. Every read and write is scoped to the member
whose notifications they are.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from domain.entities import Notification


class Notifications:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.notifications

    @staticmethod
    def new_id() -> str:
        return str(ObjectId())

    async def add(self, notifications: list[Notification]) -> None:
        await self.collection.insert_many([codec.notification_doc(n) for n in notifications])

    async def get(self, member_id: str, notification_id: str) -> Notification | None:
        doc = await self.collection.find_one({"_id": notification_id, "member_id": member_id})
        return codec.notification(doc) if doc else None

    async def page(self, member_id: str, unread_only: bool, limit: int, older_than: str | None) -> list[Notification]:
        """Up to ``limit`` of the member's notifications, newest first, older than the id ``older_than``."""
        query: dict[str, Any] = {"member_id": member_id}
        if unread_only:
            query["read"] = False
        if older_than is not None:
            query["_id"] = {"$lt": older_than}
        docs = await self.collection.find(query).sort("_id", -1).limit(limit).to_list()
        return [codec.notification(d) for d in docs]

    async def mark_read(self, member_id: str, ids: list[str]) -> int:
        """How many of ``ids`` were the member's and unread."""
        result = await self.collection.update_many(
            {"_id": {"$in": ids}, "member_id": member_id}, {"$set": {"read": True}}
        )
        return result.modified_count
