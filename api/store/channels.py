"""The ``channels`` collection, with what webhooks need served from memory for a short while.

A channel document may hold ``credentials``, its provider credentials sealed into
one opaque token (``api/channels/credentials.py``; never a clear field), and
``credential_hints``, what may be shown of them. A web widget's channel also holds
``widget_key`` (public, unique), ``widget_origins``, ``widget_verified`` and, when
identity verification is on, ``widget_secret``, its identity secret sealed the same way
(``api/widget/secrets.py``). A channel served by a custom adapter may hold ``outbound_url``
and ``outbound_secret``, the secret its replies are signed with, sealed the same way.
Only :meth:`Channels.read` (behind the webhook- and widget-facing readers) loads the
tokens and the ingest key's hash; every other read leaves them out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.entities import Channel, WidgetSettings
from domain.enums import ChannelType
from domain.widget import ChannelChanges

# How long a channel (its team, type, ingest-key hash and sealed credentials) is served
# from this process's memory: a channel change or removal, a new ingest key or new
# credentials made on another instance take effect within this bound on every
# instance; a change made through this process's store at once. Only found channels are kept.
CHANNEL_CACHE_S = 10.0
CACHED_CHANNELS = 10_000

# Left out of every read that doesn't need them.
_SECRETS: dict[str, Any] = {"ingest_key_hash": 0, "credentials": 0, "widget_secret": 0, "outbound_secret": 0}
# Origins some widget allows, as the CORS preflight asks (kept like channels; bounded).
KNOWN_ORIGINS_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Cached:
    """A channel as the webhooks read it: the entity, its ingest key's hash and its sealed credentials."""

    channel: Channel
    key_hash: str
    credentials: str | None
    widget_secret: str | None = None
    outbound_secret: str | None = None


class Channels:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.channels
        self._cache: dict[str, tuple[float, Cached]] = {}
        self._by_widget_key: dict[str, str] = {}  # widget key -> channel id (checked against the channel)
        self._known_origins: dict[str, tuple[float, bool]] = {}

    async def create(
        self,
        org_id: str,
        team_id: str,
        type_: ChannelType,
        name: str,
        key_hash: str,
        now: datetime,
        *,
        channel_id: str | None = None,
        credentials: str | None = None,
        credential_hints: dict[str, str] | None = None,
        widget: WidgetSettings | None = None,
        widget_secret: str | None = None,
        outbound_url: str | None = None,
        outbound_secret: str | None = None,
    ) -> Channel:
        doc: dict[str, Any] = {
            "_id": channel_id or str(ObjectId()),
            "org_id": org_id,
            "team_id": team_id,
            "type": type_.value,
            "name": name,
            "ingest_key_hash": key_hash,
            "created_at": ms(now),
        }
        if credentials is not None:
            doc |= {
                "credentials": credentials,
                "credential_hints": credential_hints or {},
                "credentials_updated_at": ms(now),
            }
        if widget is not None:
            doc |= codec.widget_fields(widget)
            if widget_secret is not None:
                doc["widget_secret"] = widget_secret
        if outbound_url is not None and outbound_secret is not None:
            doc |= {"outbound_url": outbound_url, "outbound_secret": outbound_secret}
        await self.collection.insert_one(doc)
        self._cache.pop(doc["_id"], None)
        self._known_origins.clear()
        return codec.channel(doc)

    async def get(self, org_id: str, channel_id: str) -> Channel | None:
        doc = await self.collection.find_one({"_id": channel_id, "org_id": org_id}, _SECRETS)
        return codec.channel(doc) if doc else None

    async def set_credentials(
        self, org_id: str, channel_id: str, token: str, hints: dict[str, str], now: datetime
    ) -> Channel | None:
        """Replaces the organization's channel's sealed credentials; None when it has no such channel."""
        doc = await self.collection.find_one_and_update(
            {"_id": channel_id, "org_id": org_id},
            {"$set": {"credentials": token, "credential_hints": hints, "credentials_updated_at": ms(now)}},
            projection=_SECRETS,
            return_document=ReturnDocument.AFTER,
        )
        self._cache.pop(channel_id, None)
        return codec.channel(doc) if doc else None

    async def update(self, org_id: str, channel_id: str, changes: ChannelChanges, now: datetime) -> Channel | None:
        """A new name, new widget settings, a new sealed identity secret, a new outbound URL or
        secret, or none; None when the organization has no such channel."""
        to_set: dict[str, Any] = {"updated_at": ms(now)}
        if changes.name is not None:
            to_set["name"] = changes.name
        if changes.team_id is not None:
            to_set["team_id"] = changes.team_id
        if changes.widget is not None:
            to_set |= codec.widget_fields(changes.widget)
        if changes.identity_secret is not None:
            to_set["widget_secret"] = changes.identity_secret
        if changes.outbound_url is not None:
            to_set["outbound_url"] = changes.outbound_url
        if changes.outbound_secret is not None:
            to_set["outbound_secret"] = changes.outbound_secret
        update: dict[str, Any] = {"$set": to_set}
        to_unset: dict[str, Any] = {}
        if changes.clear_identity_secret:
            to_unset["widget_secret"] = ""
        if changes.clear_outbound:
            to_unset |= {"outbound_url": "", "outbound_secret": ""}
        if to_unset:
            update["$unset"] = to_unset
        doc = await self.collection.find_one_and_update(
            {"_id": channel_id, "org_id": org_id}, update, projection=_SECRETS, return_document=ReturnDocument.AFTER
        )
        self._cache.pop(channel_id, None)
        self._known_origins.clear()
        return codec.channel(doc) if doc else None

    async def set_disabled(self, org_id: str, channel_id: str, disabled_at: datetime | None) -> Channel | None:
        """Disables the channel from ``disabled_at``, or enables it (None); None when the organization
        has no such channel. This process forgets its copy at once; others within ``CHANNEL_CACHE_S``."""
        update: dict[str, Any] = (
            {"$set": {"disabled_at": ms(disabled_at)}} if disabled_at is not None else {"$unset": {"disabled_at": ""}}
        )
        doc = await self.collection.find_one_and_update(
            {"_id": channel_id, "org_id": org_id}, update, projection=_SECRETS, return_document=ReturnDocument.AFTER
        )
        self._cache.pop(channel_id, None)
        return codec.channel(doc) if doc else None

    async def set_ingest_key_hash(self, org_id: str, channel_id: str, key_hash: str, now: datetime) -> Channel | None:
        """Replaces the ingest key's hash: the old key stops working here at once, elsewhere within
        ``CHANNEL_CACHE_S``."""
        doc = await self.collection.find_one_and_update(
            {"_id": channel_id, "org_id": org_id},
            {"$set": {"ingest_key_hash": key_hash, "ingest_key_rotated_at": ms(now)}},
            projection=_SECRETS,
            return_document=ReturnDocument.AFTER,
        )
        self._cache.pop(channel_id, None)
        return codec.channel(doc) if doc else None

    async def move_team(self, org_id: str, from_team: str, to_team: str) -> int:
        """Every channel of ``from_team`` now brings its customers to ``to_team``; how many moved."""
        ids = [d["_id"] async for d in self.collection.find({"org_id": org_id, "team_id": from_team}, {"_id": 1})]
        if not ids:
            return 0
        await self.collection.update_many({"_id": {"$in": ids}, "org_id": org_id}, {"$set": {"team_id": to_team}})
        for channel_id in ids:
            self._cache.pop(channel_id, None)
        return len(ids)

    async def any_of_team(self, org_id: str, team_id: str) -> bool:
        return await self.collection.find_one({"org_id": org_id, "team_id": team_id}, {"_id": 1}) is not None

    async def by_widget_key(self, key: str) -> Cached | None:
        """The channel whose widget has this key (every widget session asks; served like :meth:`read`).
        A key rotated away on this instance stops working at once, on others within ``CHANNEL_CACHE_S``."""
        channel_id = self._by_widget_key.get(key)
        if channel_id is None:
            doc = await self.collection.find_one({"widget_key": key}, {"_id": 1})
            if doc is None:
                return None
            channel_id = doc["_id"]
            if len(self._by_widget_key) >= CACHED_CHANNELS:
                self._by_widget_key.clear()
            self._by_widget_key[key] = channel_id
        found = await self.read(channel_id)
        if found is None or found.channel.widget is None or found.channel.widget.key != key:
            self._by_widget_key.pop(key, None)
            return None
        return found

    async def widget_origin_known(self, origin: str) -> bool:
        """Whether some web widget allows ``origin`` (a CORS preflight carries no widget key).
        Answers, yes or no, are kept for ``CHANNEL_CACHE_S``."""
        cached = self._known_origins.get(origin)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # `$in`, not equality: nx-27017 answers an equality on an indexed array field from the
        # index's whole-value entries, so it never matches one element (see docs/embedded-server.md)
        known = await self.collection.find_one({"widget_origins": {"$in": [origin]}}, {"_id": 1}) is not None
        if len(self._known_origins) >= KNOWN_ORIGINS_CACHED:
            self._known_origins.clear()
        self._known_origins[origin] = (time.monotonic() + CHANNEL_CACHE_S, known)
        return known

    async def read(self, channel_id: str) -> Cached | None:
        """Every webhook call asks; served from memory for up to ``CHANNEL_CACHE_S``."""
        cached = self._cache.get(channel_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        doc = await self.collection.find_one({"_id": channel_id})
        if doc is None:
            self._cache.pop(channel_id, None)
            return None
        found = Cached(
            codec.channel(doc),
            doc["ingest_key_hash"],
            doc.get("credentials"),
            doc.get("widget_secret"),
            doc.get("outbound_secret"),
        )
        if len(self._cache) >= CACHED_CHANNELS:
            self._cache.clear()
        self._cache[channel_id] = (time.monotonic() + CHANNEL_CACHE_S, found)
        return found

    async def with_key_hash(self, channel_id: str) -> tuple[Channel, str] | None:
        found = await self.read(channel_id)
        return (found.channel, found.key_hash) if found else None

    async def credentials_token(self, channel_id: str) -> tuple[Channel, str | None] | None:
        """The channel and its sealed credentials (None: it has none)."""
        found = await self.read(channel_id)
        return (found.channel, found.credentials) if found else None

    async def outbound_token(self, channel_id: str) -> tuple[Channel, str | None] | None:
        """The channel and its sealed outbound secret (None: it has no adapter URL)."""
        found = await self.read(channel_id)
        return (found.channel, found.outbound_secret) if found else None

    async def of_org(self, org_id: str) -> list[Channel]:
        found = self.collection.find({"org_id": org_id}, _SECRETS).sort("name", 1)
        return [codec.channel(d) async for d in found]
