"""The ``teams`` collection: each team keeps its memberships in the document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from api.store import codec
from api.store.codec import ms
from domain.entities import Team
from domain.enums import TeamMode, TeamRole
from domain.errors import AlreadyStored


class Teams:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.teams

    async def create(self, org_id: str, name: str, mode: TeamMode, now: datetime) -> Team:
        doc: dict[str, Any] = {
            "_id": str(ObjectId()),
            "org_id": org_id,
            "name": name,
            "mode": mode.value,
            "members": [],
            "created_at": ms(now),
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError as error:
            raise AlreadyStored() from error
        return codec.team(doc)

    async def get(self, org_id: str, team_id: str) -> Team | None:
        doc = await self.collection.find_one({"_id": team_id, "org_id": org_id})
        return codec.team(doc) if doc else None

    async def by_id(self, team_id: str) -> Team | None:
        """For the event log, which holds a conversation already scoped to its organization."""
        doc = await self.collection.find_one({"_id": team_id})
        return codec.team(doc) if doc else None

    async def of_org(self, org_id: str) -> tuple[Team, ...]:
        return tuple([codec.team(d) async for d in self.collection.find({"org_id": org_id}).sort("name", 1)])

    async def set_member(self, org_id: str, team_id: str, member_id: str, role: TeamRole) -> Team | None:
        # Two single-document steps, each atomic: drop any old role, then add the new one.
        # $addToSet, not $push: nx-27017 stores sub-documents pushed with $push as JSON strings.
        await self.collection.update_one(
            {"_id": team_id, "org_id": org_id}, {"$pull": {"members": {"member_id": member_id}}}
        )
        doc = await self.collection.find_one_and_update(
            {"_id": team_id, "org_id": org_id},
            {"$addToSet": {"members": {"member_id": member_id, "role": role.value}}},
            return_document=ReturnDocument.AFTER,
        )
        return codec.team(doc) if doc else None

    async def remove_member(self, org_id: str, team_id: str, member_id: str) -> Team | None:
        doc = await self.collection.find_one_and_update(
            {"_id": team_id, "org_id": org_id},
            {"$pull": {"members": {"member_id": member_id}}},
            return_document=ReturnDocument.AFTER,
        )
        return codec.team(doc) if doc else None

    async def rename(self, org_id: str, team_id: str, name: str) -> Team | None:
        """Raises :class:`AlreadyStored` when another team of the organization has the name.

        An update, then a read: nx-27017's ``findAndModify`` answers a unique-index violation
        with no document instead of error 11000 (see docs/embedded-server.md), which would
        read as "no such team"."""
        try:
            result = await self.collection.update_one({"_id": team_id, "org_id": org_id}, {"$set": {"name": name}})
        except DuplicateKeyError as error:
            raise AlreadyStored() from error
        return await self.get(org_id, team_id) if result.matched_count else None

    async def set_mode(self, org_id: str, team_id: str, mode: TeamMode) -> Team | None:
        doc = await self.collection.find_one_and_update(
            {"_id": team_id, "org_id": org_id}, {"$set": {"mode": mode.value}}, return_document=ReturnDocument.AFTER
        )
        return codec.team(doc) if doc else None

    async def delete(self, org_id: str, team_id: str) -> bool:
        return (await self.collection.delete_one({"_id": team_id, "org_id": org_id})).deleted_count > 0
