"""The ``members`` collection, and the authenticated caller read with their organization's teams."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from api.store import codec
from api.store.codec import ms
from domain.entities import Member, Team
from domain.enums import OrgRole
from domain.errors import AlreadyStored
from domain.visibility import Viewer


class Members:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.members

    async def create(
        self, org_id: str, email: str, name: str, password_hash: str, role: OrgRole, now: datetime
    ) -> Member:
        doc = {
            "_id": str(ObjectId()),
            "org_id": org_id,
            "email": email,
            "name": name,
            "password_hash": password_hash,
            "role": role.value,
            "created_at": ms(now),
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError as error:
            raise AlreadyStored() from error
        return codec.member(doc)

    async def by_email(self, email: str) -> tuple[Member, str] | None:
        doc = await self.collection.find_one({"email": email})
        return (codec.member(doc), doc["password_hash"]) if doc else None

    async def get(self, org_id: str, member_id: str) -> Member | None:
        doc = await self.collection.find_one({"_id": member_id, "org_id": org_id})
        return codec.member(doc) if doc else None

    async def of_org(self, org_id: str) -> list[Member]:
        return [codec.member(d) async for d in self.collection.find({"org_id": org_id}).sort("name", 1)]

    async def admin_ids(self, org_id: str) -> list[str]:
        """The organization's owners and admins."""
        roles = [OrgRole.OWNER.value, OrgRole.ADMIN.value]
        return [d["_id"] async for d in self.collection.find({"org_id": org_id, "role": {"$in": roles}}, {"_id": 1})]

    async def by_ids(self, org_id: str, ids: list[str]) -> list[Member]:
        cursor = self.collection.find({"_id": {"$in": ids}, "org_id": org_id}, {"password_hash": 0})
        return [codec.member(d) async for d in cursor]

    async def password_hash(self, org_id: str, member_id: str) -> str | None:
        doc = await self.collection.find_one({"_id": member_id, "org_id": org_id}, {"password_hash": 1})
        return doc.get("password_hash") if doc else None

    async def _cut_sessions(self, query: dict, update: dict[str, Any]) -> dict | None:
        """``update`` and one more token version, in one conditional write; the document after."""
        update.setdefault("$inc", {})["token_version"] = 1
        return await self.collection.find_one_and_update(
            query, update, projection={"password_hash": 0}, return_document=ReturnDocument.AFTER
        )

    async def set_password(self, org_id: str, member_id: str, password_hash: str, now: datetime) -> int | None:
        doc = await self._cut_sessions(
            {"_id": member_id, "org_id": org_id},
            {
                "$set": {"password_hash": password_hash, "password_changed_at": ms(now)},
                "$unset": {"reset_hash": "", "reset_expires_at": ""},
            },
        )
        return doc["token_version"] if doc else None

    async def start_password_reset(
        self, org_id: str, member_id: str, reset_hash: str, expires_at: datetime, now: datetime
    ) -> int | None:
        # No password logs in until the reset is completed: an admin resets an
        # account they fear is compromised, so the old password must stop working too.
        doc = await self._cut_sessions(
            {"_id": member_id, "org_id": org_id},
            {"$set": {"password_hash": None, "reset_hash": reset_hash, "reset_expires_at": ms(expires_at)}},
        )
        return doc["token_version"] if doc else None

    async def member_by_reset(self, reset_hash: str, now: datetime) -> Member | None:
        doc = await self.collection.find_one({"reset_hash": reset_hash}, {"password_hash": 0})
        if doc is None or doc.get("reset_expires_at") is None or doc["reset_expires_at"] <= ms(now):
            return None
        return codec.member(doc)

    async def complete_password_reset(
        self, reset_hash: str, password_hash: str, now: datetime
    ) -> tuple[Member, int] | None:
        doc = await self._cut_sessions(
            {"reset_hash": reset_hash, "reset_expires_at": {"$gt": ms(now)}},
            {
                "$set": {"password_hash": password_hash, "password_changed_at": ms(now)},
                "$unset": {"reset_hash": "", "reset_expires_at": ""},
            },
        )
        return (codec.member(doc), doc["token_version"]) if doc else None

    async def deactivate(self, org_id: str, member_id: str, now: datetime) -> tuple[Member, int] | None:
        doc = await self._cut_sessions(
            {"_id": member_id, "org_id": org_id, "deactivated_at": None}, {"$set": {"deactivated_at": ms(now)}}
        )
        return (codec.member(doc), doc["token_version"]) if doc else None

    async def cut_sessions(self, org_id: str, member_id: str) -> int | None:
        doc = await self._cut_sessions({"_id": member_id, "org_id": org_id}, {})
        return doc["token_version"] if doc else None

    async def reactivate(self, org_id: str, member_id: str) -> Member | None:
        doc = await self.collection.find_one_and_update(
            {"_id": member_id, "org_id": org_id},
            {"$unset": {"deactivated_at": ""}},
            projection={"password_hash": 0},
            return_document=ReturnDocument.AFTER,
        )
        return codec.member(doc) if doc else None

    async def set_role(self, org_id: str, member_id: str, role: OrgRole, was: OrgRole) -> Member | None:
        doc = await self.collection.find_one_and_update(
            {"_id": member_id, "org_id": org_id, "role": was.value},
            {"$set": {"role": role.value}},
            projection={"password_hash": 0},
            return_document=ReturnDocument.AFTER,
        )
        return codec.member(doc) if doc else None

    async def owner_count(self, org_id: str) -> int:
        return await self.collection.count_documents(
            {"org_id": org_id, "role": OrgRole.OWNER.value, "deactivated_at": None}
        )

    async def token_versions(self) -> dict[str, int]:
        """Every member whose tokens were ever cut, with the oldest token version still valid.

        Read once when an instance starts (:class:`api.sessions.MemberSessions`);
        members who never had their sessions cut are absent (version 0).
        """
        cursor = self.collection.find({"token_version": {"$gt": 0}}, {"token_version": 1})
        return {d["_id"]: d["token_version"] async for d in cursor}

    async def viewer(self, member_id: str, org_id: str) -> Viewer | None:
        """The caller and every team of their organization, in one MongoDB command
        (None for a deactivated member: belt and braces beside the in-memory check)."""
        pipeline = [
            {"$match": {"_id": member_id, "org_id": org_id}},
            {"$lookup": {"from": "teams", "localField": "org_id", "foreignField": "org_id", "as": "teams"}},
        ]
        rows = await (await self.collection.aggregate(pipeline)).to_list()
        if not rows:
            return None
        doc = rows[0]
        if doc.get("deactivated_at"):
            return None
        teams = tuple(sorted((decoded_team(t) for t in doc.get("teams", [])), key=lambda t: t.name))
        return Viewer(
            member_id=doc["_id"], org_id=doc["org_id"], org_role=OrgRole(doc["role"]), name=doc["name"], teams=teams
        )


def decoded_team(doc: dict) -> Team:
    """The team of a stored document, decoded once while the document stays the same.

    Every request and every subscription reads all teams of its organization;
    sharing the decoded teams saves most of that CPU and lets thousands of
    connected viewers hold one copy. The key is the stored content itself, so
    a changed team is never served stale.
    """
    members = tuple((m["member_id"], m["role"]) for m in doc.get("members", ()))
    return _team(doc["_id"], doc["org_id"], doc["name"], doc["mode"], doc.get("created_at"), members)


@lru_cache(maxsize=4096)
def _team(team_id: str, org_id: str, name: str, mode: str, created_at, members: tuple) -> Team:
    return codec.team(
        {
            "_id": team_id,
            "org_id": org_id,
            "name": name,
            "mode": mode,
            "created_at": created_at,
            "members": [{"member_id": m, "role": r} for m, r in members],
        }
    )
