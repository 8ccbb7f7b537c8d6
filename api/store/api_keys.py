"""The ``api_keys`` collection: integrations' keys, each stored as its SHA-256 hash.

The key itself is never stored; ``key_hash`` is unique, so authenticating is one
index equality (no comparison of secrets in code). Revoked keys stay (with
``revoked_at``) so the messages and events of their apps still name them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.entities import ApiKey
from domain.enums import ApiKeyScope


class ApiKeys:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.api_keys

    async def create(self, key: ApiKey, key_hash: str) -> ApiKey:
        doc = codec.compact(
            {
                "_id": key.id,
                "org_id": key.org_id,
                "name": key.name,
                "prefix": key.prefix,
                "key_hash": key_hash,
                "scopes": [s.value for s in key.scopes],
                "team_ids": list(key.team_ids),
                "created_at": ms(key.created_at),
                "created_by": key.created_by,
            }
        )
        await self.collection.insert_one(doc)
        return api_key(doc)

    async def used(self, key_hash: str, now: datetime) -> ApiKey | None:
        """The working key with this hash, its ``last_used_at`` moved to ``now`` (never back);
        None for an unknown or revoked key. One command: authentication and the use mark."""
        doc = await self.collection.find_one_and_update(
            {"key_hash": key_hash, "revoked_at": None},
            {"$max": {"last_used_at": ms(now)}},
            projection={"key_hash": 0},
            return_document=ReturnDocument.AFTER,
        )
        return api_key(doc) if doc else None

    async def working(self, key_id: str) -> ApiKey | None:
        """The key while it is not revoked (a subscription re-reading its app's teams)."""
        doc = await self.collection.find_one({"_id": key_id, "revoked_at": None}, {"key_hash": 0})
        return api_key(doc) if doc else None

    async def get(self, org_id: str, key_id: str) -> ApiKey | None:
        doc = await self.collection.find_one({"_id": key_id, "org_id": org_id}, {"key_hash": 0})
        return api_key(doc) if doc else None

    async def of_org(self, org_id: str) -> list[ApiKey]:
        cursor = self.collection.find({"org_id": org_id, "revoked_at": None}, {"key_hash": 0}).sort("created_at", -1)
        return [api_key(d) async for d in cursor]

    async def by_ids(self, org_id: str, ids: list[str]) -> list[ApiKey]:
        """Revoked ones too: what an app did keeps its name."""
        cursor = self.collection.find({"_id": {"$in": ids}, "org_id": org_id}, {"key_hash": 0})
        return [api_key(d) async for d in cursor]

    async def revoke(self, org_id: str, key_id: str, now: datetime) -> ApiKey | None:
        doc = await self.collection.find_one_and_update(
            {"_id": key_id, "org_id": org_id, "revoked_at": None},
            {"$set": {"revoked_at": ms(now)}},
            projection={"key_hash": 0},
            return_document=ReturnDocument.AFTER,
        )
        return api_key(doc) if doc else None


def api_key(doc: dict[str, Any]) -> ApiKey:
    known = {s.value for s in ApiKeyScope}
    return ApiKey(
        id=doc["_id"],
        org_id=doc["org_id"],
        name=doc["name"],
        prefix=doc["prefix"],
        scopes=tuple(ApiKeyScope(s) for s in doc.get("scopes", ()) if s in known),
        team_ids=tuple(doc.get("team_ids", ())),
        created_at=codec.stored_dt(doc["created_at"]),
        created_by=doc.get("created_by"),
        last_used_at=codec.dt(doc.get("last_used_at")),
        revoked_at=codec.dt(doc.get("revoked_at")),
    )
