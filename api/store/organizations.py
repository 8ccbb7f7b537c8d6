"""The ``organizations`` collection."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.entities import Organization


class Organizations:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.organizations

    async def create(self, name: str, now: datetime) -> Organization:
        doc = {"_id": str(ObjectId()), "name": name, "created_at": ms(now)}
        await self.collection.insert_one(doc)
        return codec.organization(doc)

    async def any(self) -> bool:
        return await self.collection.find_one({}, {"_id": 1}) is not None

    async def get(self, org_id: str) -> Organization | None:
        doc = await self.collection.find_one({"_id": org_id})
        return codec.organization(doc) if doc else None
