"""The ``revoked_tokens`` collection: members' tokens ended one by one (``logout``).

One document per token id (the JWT's ``jti``), kept until the token would have
expired anyway; after that the token is refused for its ``exp`` and the
document is only history, deleted by retention (:mod:`api.retention`).
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from api.store import codec
from api.store.codec import ms


class RevokedTokens:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.revoked_tokens

    async def revoke(self, org_id: str, member_id: str, token_id: str, expires_at: datetime, now: datetime) -> None:
        """Idempotent: logging out twice with the same token stores it once."""
        doc = {
            "_id": token_id,
            "org_id": org_id,
            "member_id": member_id,
            "expires_at": ms(expires_at),
            "at": ms(now),
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            pass

    async def live(self, now: datetime) -> dict[str, datetime]:
        """Token id -> expiry of every revoked token that has not expired yet."""
        cursor = self.collection.find({"expires_at": {"$gt": ms(now)}}, {"expires_at": 1})
        return {d["_id"]: codec.stored_dt(d["expires_at"]) async for d in cursor}

    async def forget_before(self, moment: datetime) -> int:
        """Revocations of tokens that expired before ``moment``: those tokens are refused anyway."""
        return (await self.collection.delete_many({"expires_at": {"$lt": ms(moment)}})).deleted_count
