"""The ``provider_tokens`` collection: a provider's short-lived access token, shared by every instance.

WeChat hands out an access token for ``expires_in`` seconds and, each time a new one is
fetched, retires the previous one (after five minutes): instances that each fetched their
own would keep invalidating each other's. So one document per account holds the token
(sealed, never in clear), when to refresh it and when it expires, and a refresh *lease*:
the instance whose conditional update claims the lease fetches the new token and writes
it under that claim; the others keep using the current token if it is still valid, or
wait and read again. A lease whose holder died simply runs out. When to refresh, and the
sealing, are decided by the caller (:mod:`api.channels.wechat`).

No upsert (nx-27017 ignores ``$setOnInsert`` in upserts, see ``login_attempts``): a missing
document is created by a plain insert that claims the lease; a lost insert race is a lost claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from api.store import codec
from api.store.codec import ms


@dataclass(frozen=True, slots=True)
class StoredToken:
    """One account's token as stored: sealed (None until a first fetch succeeded), and its times."""

    sealed: str | None
    refresh_at: datetime | None
    expires_at: datetime | None


class ProviderTokens:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.provider_tokens

    async def get(self, key: str) -> StoredToken | None:
        doc = await self.collection.find_one({"_id": key})
        if doc is None:
            return None
        return StoredToken(
            sealed=doc.get("token") if isinstance(doc.get("token"), str) else None,
            refresh_at=codec.dt(doc.get("refresh_at")) if doc.get("refresh_at") else None,
            expires_at=codec.dt(doc.get("expires_at")) if doc.get("expires_at") else None,
        )

    async def claim_refresh(self, key: str, holder: str, now: datetime, lease_s: float) -> bool:
        """Whether ``holder`` now holds the refresh lease (for ``lease_s`` from ``now``): only
        one conditional update can take a lease that is free or run out."""
        until = ms(now + timedelta(seconds=lease_s))
        claimed = await self.collection.find_one_and_update(
            {"_id": key, "lease_until": {"$lte": ms(now)}}, {"$set": {"lease": holder, "lease_until": until}}
        )
        if claimed is not None:
            return True
        try:
            await self.collection.insert_one({"_id": key, "lease": holder, "lease_until": until})
        except DuplicateKeyError:
            return False  # there is a document, and its lease is held
        return True

    async def keep(self, key: str, holder: str, sealed: str, refresh_at: datetime, expires_at: datetime) -> bool:
        """Store a freshly fetched token and free the lease, if ``holder`` still holds it."""
        result = await self.collection.update_one(
            {"_id": key, "lease": holder},
            {
                "$set": {"token": sealed, "refresh_at": ms(refresh_at), "expires_at": ms(expires_at), "lease_until": 0},
                "$unset": {"lease": ""},
            },
        )
        return result.matched_count == 1

    async def release(self, key: str, holder: str) -> None:
        """Free the lease without a new token (the fetch failed), so another may try at once."""
        await self.collection.update_one(
            {"_id": key, "lease": holder}, {"$set": {"lease_until": 0}, "$unset": {"lease": ""}}
        )

    async def expire(self, key: str, sealed: str) -> None:
        """The provider refused this very token: it is due for a refresh now. A token another
        instance stored since is left alone (it is newer than the refused one)."""
        await self.collection.update_one({"_id": key, "token": sealed}, {"$set": {"refresh_at": 0, "expires_at": 0}})
