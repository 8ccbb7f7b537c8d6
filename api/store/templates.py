"""The ``templates`` collection: canned replies, for every channel or for one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.codec import ms
from domain.entities import MessageTemplate
from domain.enums import ChannelType


class Templates:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.templates

    async def create(
        self,
        org_id: str,
        name: str,
        body: str,
        channel: ChannelType | None,
        now: datetime,
        *,
        whatsapp_name: str | None = None,
        whatsapp_language: str | None = None,
    ) -> MessageTemplate:
        doc = codec.compact(
            {
                "_id": str(ObjectId()),
                "org_id": org_id,
                "name": name,
                "body": body,
                "channel": channel.value if channel else None,
                "created_at": ms(now),
                "whatsapp_name": whatsapp_name,
                "whatsapp_language": whatsapp_language,
            }
        )
        await self.collection.insert_one(doc)
        return codec.template(doc)

    async def get(self, org_id: str, template_id: str) -> MessageTemplate | None:
        doc = await self.collection.find_one({"_id": template_id, "org_id": org_id})
        return codec.template(doc) if doc else None

    async def of_org(self, org_id: str, channel: ChannelType | None) -> list[MessageTemplate]:
        query: dict[str, Any] = {"org_id": org_id}
        if channel is not None:
            query["$or"] = [{"channel": channel.value}, {"channel": None}]
        return [codec.template(d) async for d in self.collection.find(query).sort("name", 1)]

    async def update(
        self, org_id: str, template_id: str, values: dict[str, Any], cleared: tuple[str, ...], now: datetime
    ) -> MessageTemplate | None:
        """Sets ``values`` (the entity's field names; a channel as its enum) and unsets ``cleared``;
        None when the organization has no such template."""
        stored = {k: v.value if isinstance(v, ChannelType) else v for k, v in values.items()}
        update: dict[str, Any] = {"$set": {**stored, "updated_at": ms(now)}}
        if cleared:
            update["$unset"] = {name: "" for name in cleared}
        doc = await self.collection.find_one_and_update(
            {"_id": template_id, "org_id": org_id}, update, return_document=ReturnDocument.AFTER
        )
        return codec.template(doc) if doc else None

    async def delete(self, org_id: str, template_id: str) -> MessageTemplate | None:
        doc = await self.collection.find_one_and_delete({"_id": template_id, "org_id": org_id})
        return codec.template(doc) if doc else None
