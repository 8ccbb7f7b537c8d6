"""The ``channels`` collection, with the ingest key's hash served from memory for a short while."""

from __future__ import annotations

import time
from datetime import datetime

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.entities import Channel
from domain.enums import ChannelType

# How long a channel (its team, type and ingest-key hash) is served from this
# process's memory: a channel change or removal, or a new ingest key, takes effect
# within this bound on every instance. Only found channels are kept.
CHANNEL_CACHE_S = 10.0


class Channels:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.channels
        self._cache: dict[str, tuple[float, tuple[Channel, str]]] = {}

    async def create(
        self, org_id: str, team_id: str, type_: ChannelType, name: str, key_hash: str, now: datetime
    ) -> Channel:
        doc = {
            "_id": str(ObjectId()),
            "org_id": org_id,
            "team_id": team_id,
            "type": type_.value,
            "name": name,
            "ingest_key_hash": key_hash,
            "created_at": ms(now),
        }
        await self.collection.insert_one(doc)
        return codec.channel(doc)

    async def with_key_hash(self, channel_id: str) -> tuple[Channel, str] | None:
        """Every webhook call asks; served from memory for up to ``CHANNEL_CACHE_S``."""
        cached = self._cache.get(channel_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        doc = await self.collection.find_one({"_id": channel_id})
        if doc is None:
            self._cache.pop(channel_id, None)
            return None
        found = (codec.channel(doc), doc["ingest_key_hash"])
        if len(self._cache) >= 10_000:
            self._cache.clear()
        self._cache[channel_id] = (time.monotonic() + CHANNEL_CACHE_S, found)
        return found

    async def of_org(self, org_id: str) -> list[Channel]:
        return [codec.channel(d) async for d in self.collection.find({"org_id": org_id}).sort("name", 1)]
