"""The MongoDB implementation of the domain's store ports.

Every write that decides something (join, grab, close, send) is one
conditional single-document update, so concurrent callers can't both win.
A conversation's changes are described in :mod:`domain.changes` and compiled
by :mod:`api.store.changes`; this module only decides how many commands a
change takes (a copy of the newest message riding along, or offered after).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from api.store import changes, codec
from api.store.api_keys import ApiKeys
from api.store.channels import Channels
from api.store.codec import ms
from api.store.deliveries import Deliveries, job_fields
from api.store.events import EventStore
from api.store.login_attempts import LoginAttempts
from api.store.members import Members
from api.store.notifications import Notifications
from api.store.organizations import Organizations
from api.store.provider_tokens import ProviderTokens
from api.store.rate_limits import RateLimits
from api.store.sessions import RevokedTokens
from api.store.sweeps import Sweeps
from api.store.teams import Teams
from api.store.templates import Templates
from api.store.webhooks import Webhooks
from domain import changes as domain_changes
from domain.changes import Change
from domain.entities import (
    ApiKey,
    Channel,
    Conversation,
    Customer,
    Location,
    Member,
    Message,
    MessageTemplate,
    Organization,
    Team,
    WidgetSettings,
)
from domain.enums import ChannelType, DeliveryStatus, OrgRole, TeamMode, TeamRole
from domain.errors import AlreadyStored
from domain.messages import HIDDEN_FROM_CUSTOMERS
from domain.visibility import Viewer
from domain.widget import ChannelChanges, VisitorDetails

AFTER = ReturnDocument.AFTER
BEFORE = ReturnDocument.BEFORE

CUSTOMER_IDS_CACHED = 100_000


def _with_copy(update: dict[str, Any], message: Message) -> dict[str, Any]:
    """``update`` also making ``message`` the conversation's ``last_message``."""
    return {**update, "$set": {**update.get("$set", {}), "last_message": codec.last_message_doc(message)}}


class MongoStore:
    """Conversations, messages and customers here; every other collection in its own
    module, reached through this object so one store is handed to every caller."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self._organizations = Organizations(db)
        self._members = Members(db)
        self._teams = Teams(db)
        self._channels = Channels(db)
        self._templates = Templates(db)
        self.login_attempts = LoginAttempts(db)
        self.rate_limits = RateLimits(db)
        self.events = EventStore(db)
        self.notifications = Notifications(db)
        self.deliveries = Deliveries(db)
        self.sweeps = Sweeps(db)
        self.provider_tokens = ProviderTokens(db)
        self.api_keys = ApiKeys(db)
        self.revoked_tokens = RevokedTokens(db)
        self.webhooks = Webhooks(db)
        # (channel id, external id) -> customer id never changes once stored (customers
        # are not deleted), so it is kept without expiry, the least recently used dropped.
        self._customer_ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._external_ids: dict[str, str] = {}

    async def ping(self) -> None:
        await self.db.command("ping")

    @staticmethod
    def new_id() -> str:
        """ObjectId hex: unique across instances and roughly ordered by creation time."""
        return str(ObjectId())

    # organizations, members, teams, channels, templates, login throttle: each in its
    # own module; the one-line methods keep the ports' names on this one object.

    async def create_organization(self, name: str, now: datetime) -> Organization:
        return await self._organizations.create(name, now)

    async def any_organization(self) -> bool:
        return await self._organizations.any()

    async def organization(self, org_id: str) -> Organization | None:
        return await self._organizations.get(org_id)

    async def create_member(
        self, org_id: str, email: str, name: str, password_hash: str, role: OrgRole, now: datetime
    ) -> Member:
        return await self._members.create(org_id, email, name, password_hash, role, now)

    async def member_by_email(self, email: str) -> tuple[Member, str] | None:
        return await self._members.by_email(email)

    async def member(self, org_id: str, member_id: str) -> Member | None:
        return await self._members.get(org_id, member_id)

    async def members(self, org_id: str) -> list[Member]:
        return await self._members.of_org(org_id)

    async def org_admin_ids(self, org_id: str) -> list[str]:
        return await self._members.admin_ids(org_id)

    async def members_by_ids(self, org_id: str, ids: list[str]) -> list[Member]:
        return await self._members.by_ids(org_id, ids)

    async def viewer(self, member_id: str, org_id: str) -> Viewer | None:
        return await self._members.viewer(member_id, org_id)

    # --- accounts (domain.usecases.accounts) ---

    async def password_hash(self, org_id: str, member_id: str) -> str | None:
        return await self._members.password_hash(org_id, member_id)

    async def set_password(self, org_id: str, member_id: str, password_hash: str, now: datetime) -> int | None:
        return await self._members.set_password(org_id, member_id, password_hash, now)

    async def start_password_reset(
        self, org_id: str, member_id: str, reset_hash: str, expires_at: datetime, now: datetime
    ) -> int | None:
        return await self._members.start_password_reset(org_id, member_id, reset_hash, expires_at, now)

    async def member_by_reset(self, reset_hash: str, now: datetime) -> Member | None:
        return await self._members.member_by_reset(reset_hash, now)

    async def complete_password_reset(
        self, reset_hash: str, password_hash: str, now: datetime
    ) -> tuple[Member, int] | None:
        return await self._members.complete_password_reset(reset_hash, password_hash, now)

    async def deactivate(self, org_id: str, member_id: str, now: datetime) -> tuple[Member, int] | None:
        return await self._members.deactivate(org_id, member_id, now)

    async def cut_sessions(self, org_id: str, member_id: str) -> int | None:
        return await self._members.cut_sessions(org_id, member_id)

    async def reactivate(self, org_id: str, member_id: str) -> Member | None:
        return await self._members.reactivate(org_id, member_id)

    async def set_role(self, org_id: str, member_id: str, role: OrgRole, was: OrgRole) -> Member | None:
        return await self._members.set_role(org_id, member_id, role, was)

    async def owner_count(self, org_id: str) -> int:
        return await self._members.owner_count(org_id)

    async def token_versions(self) -> dict[str, int]:
        return await self._members.token_versions()

    async def revoke_token(
        self, org_id: str, member_id: str, token_id: str, expires_at: datetime, now: datetime
    ) -> None:
        await self.revoked_tokens.revoke(org_id, member_id, token_id, expires_at, now)

    async def create_team(self, org_id: str, name: str, mode: TeamMode, now: datetime) -> Team:
        return await self._teams.create(org_id, name, mode, now)

    async def team(self, org_id: str, team_id: str) -> Team | None:
        return await self._teams.get(org_id, team_id)

    async def team_by_id(self, team_id: str) -> Team | None:
        return await self._teams.by_id(team_id)

    async def teams(self, org_id: str) -> tuple[Team, ...]:
        return await self._teams.of_org(org_id)

    async def create_api_key(self, key: ApiKey, key_hash: str) -> ApiKey:
        return await self.api_keys.create(key, key_hash)

    async def api_key(self, org_id: str, key_id: str) -> ApiKey | None:
        return await self.api_keys.get(org_id, key_id)

    async def api_keys_of(self, org_id: str) -> list[ApiKey]:
        return await self.api_keys.of_org(org_id)

    async def revoke_api_key(self, org_id: str, key_id: str, now: datetime) -> ApiKey | None:
        return await self.api_keys.revoke(org_id, key_id, now)

    async def set_team_member(self, org_id: str, team_id: str, member_id: str, role: TeamRole) -> Team | None:
        return await self._teams.set_member(org_id, team_id, member_id, role)

    async def remove_team_member(self, org_id: str, team_id: str, member_id: str) -> Team | None:
        return await self._teams.remove_member(org_id, team_id, member_id)

    async def create_channel(
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
    ) -> Channel:
        return await self._channels.create(
            org_id,
            team_id,
            type_,
            name,
            key_hash,
            now,
            channel_id=channel_id,
            credentials=credentials,
            credential_hints=credential_hints,
            widget=widget,
            widget_secret=widget_secret,
        )

    async def update_channel(
        self, org_id: str, channel_id: str, changes: ChannelChanges, now: datetime
    ) -> Channel | None:
        return await self._channels.update(org_id, channel_id, changes, now)

    async def widget_channel(self, widget_key: str) -> tuple[Channel, str | None] | None:
        """The channel with this widget key and its sealed identity secret (cached briefly)."""
        found = await self._channels.by_widget_key(widget_key)
        return (found.channel, found.widget_secret) if found else None

    async def widget_origin_known(self, origin: str) -> bool:
        return await self._channels.widget_origin_known(origin)

    async def channel(self, channel_id: str) -> Channel | None:
        """Served from memory for a few seconds (see ``CHANNEL_CACHE_S``): every reply asks."""
        found = await self._channels.with_key_hash(channel_id)
        return found[0] if found else None

    async def channel_with_key_hash(self, channel_id: str) -> tuple[Channel, str] | None:
        return await self._channels.with_key_hash(channel_id)

    async def channels(self, org_id: str) -> list[Channel]:
        return await self._channels.of_org(org_id)

    async def org_channel(self, org_id: str, channel_id: str) -> Channel | None:
        return await self._channels.get(org_id, channel_id)

    async def set_channel_credentials(
        self, org_id: str, channel_id: str, credentials: str, credential_hints: dict[str, str], now: datetime
    ) -> Channel | None:
        return await self._channels.set_credentials(org_id, channel_id, credentials, credential_hints, now)

    async def channel_credentials_token(self, channel_id: str) -> tuple[Channel, str | None] | None:
        """The channel and its sealed provider credentials, for webhooks and deliveries (cached briefly)."""
        return await self._channels.credentials_token(channel_id)

    async def create_template(
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
        return await self._templates.create(
            org_id, name, body, channel, now, whatsapp_name=whatsapp_name, whatsapp_language=whatsapp_language
        )

    async def template(self, org_id: str, template_id: str) -> MessageTemplate | None:
        return await self._templates.get(org_id, template_id)

    async def templates(self, org_id: str, channel: ChannelType | None) -> list[MessageTemplate]:
        return await self._templates.of_org(org_id, channel)

    async def take(self, key: str, now: datetime, window_s: float) -> int:
        return await self.login_attempts.take(key, now, window_s)

    async def give_back(self, keys: list[str], now: datetime, window_s: float) -> None:
        await self.login_attempts.give_back(keys, now, window_s)

    async def recent(self, key: str, now: datetime, window_s: float) -> tuple[int, datetime | None]:
        return await self.login_attempts.recent(key, now, window_s)

    # customers

    async def customer(self, org_id: str, customer_id: str) -> Customer | None:
        doc = await self.db.customers.find_one({"_id": customer_id, "org_id": org_id})
        return codec.customer(doc) if doc else None

    async def customers_by_ids(self, org_id: str, ids: list[str]) -> list[Customer]:
        return [codec.customer(d) async for d in self.db.customers.find({"_id": {"$in": ids}, "org_id": org_id})]

    async def customer_by_external_id(self, channel_id: str, external_id: str) -> Customer | None:
        doc = await self.db.customers.find_one({"channel_id": channel_id, "external_id": external_id})
        if doc is None:
            return None
        self._remember_customer_id(channel_id, external_id, doc["_id"])
        return codec.customer(doc)

    async def customer_id_by_external_id(self, channel_id: str, external_id: str) -> str | None:
        """The customer's id, from memory once this process has seen the customer."""
        key = (channel_id, external_id)
        if key in self._customer_ids:
            self._customer_ids.move_to_end(key)
            return self._customer_ids[key]
        customer = await self.customer_by_external_id(channel_id, external_id)
        return customer.id if customer else None

    async def external_id_of(self, org_id: str, customer_id: str) -> str | None:
        """The customer's id at the provider (never changes), from memory once this process has seen it."""
        known = self._external_ids.get(customer_id)
        if known is not None:
            return known
        customer = await self.customer(org_id, customer_id)
        if customer is None:
            return None
        self._remember_customer_id(customer.channel_id, customer.external_id, customer.id)
        return customer.external_id

    def _remember_customer_id(self, channel_id: str, external_id: str, customer_id: str) -> None:
        self._external_ids[customer_id] = external_id
        if len(self._external_ids) > CUSTOMER_IDS_CACHED:
            self._external_ids.pop(next(iter(self._external_ids)))
        self._customer_ids[(channel_id, external_id)] = customer_id
        self._customer_ids.move_to_end((channel_id, external_id))
        if len(self._customer_ids) > CUSTOMER_IDS_CACHED:
            self._customer_ids.popitem(last=False)

    async def create_customer(self, customer: Customer) -> Customer:
        try:
            await self.db.customers.insert_one(codec.customer_doc(customer))
        except DuplicateKeyError as error:
            raise AlreadyStored(
                await self.customer_by_external_id(customer.channel_id, customer.external_id)
            ) from error
        self._remember_customer_id(customer.channel_id, customer.external_id, customer.id)
        return customer

    async def update_customer(self, customer: Customer, changes: dict[str, Any], now: datetime) -> Customer:
        """Update the customer and the copies its conversation keeps for search."""
        to_set = {k: v for k, v in changes.items() if v is not None and v != {}}
        to_unset = {k: "" for k, v in changes.items() if v is None or v == {}}
        update: dict[str, Any] = {}
        if to_set:
            update["$set"] = to_set
        if to_unset:
            update["$unset"] = to_unset
        doc = await self.db.customers.find_one_and_update({"_id": customer.id}, update, return_document=AFTER)
        assert doc is not None  # the customer was read before; customers are never deleted
        copies = {f"customer_{k}": v for k, v in changes.items() if k in ("name", "email", "phone")}
        if copies:
            await self._set_conversation_fields(customer.id, copies, now)
        return codec.customer(doc)

    async def set_presence(
        self, customer: Customer, online_until: datetime | None, location: Location | None, now: datetime
    ) -> Customer:
        update: dict[str, Any] = {"$set": {"last_active_at": ms(now)}}
        if online_until is not None:
            update["$set"]["online_until"] = ms(online_until)
        else:
            update["$unset"] = {"online_until": ""}
        if location is not None:
            update["$set"]["location"] = codec.location_doc(location)
        doc = await self.db.customers.find_one_and_update({"_id": customer.id}, update, return_document=AFTER)
        assert doc is not None  # the customer was read before; customers are never deleted
        await self._set_conversation_fields(customer.id, {"customer_online_until": ms(online_until)}, now)
        return codec.customer(doc)

    async def set_visitor_details(self, customer_id: str, details: VisitorDetails, now: datetime) -> None:
        """What a widget's page reports about its visitor; ``last_active_at`` moves to ``now``."""
        to_set: dict[str, Any] = {}
        for name in ("page_url", "time_zone", "language"):
            if getattr(details, name) is not None:
                to_set[name] = getattr(details, name)
        if details.location is not None:
            to_set["location"] = codec.location_doc(details.location)
        update: dict[str, Any] = {"$max": {"last_active_at": ms(now)}}
        if to_set:
            update["$set"] = to_set
        await self.db.customers.update_one({"_id": customer_id}, update)

    async def touch_visitor(self, customer_id: str, now: datetime) -> None:
        await self.db.customers.update_one({"_id": customer_id}, {"$max": {"last_active_at": ms(now)}})

    async def visitors_online(self, customer_ids: list[str], online_until: datetime) -> None:
        """Online until at least ``online_until`` (``$max``: a socket closing on one instance
        never shortens what another instance's open socket keeps), with the conversations' copies."""
        if not customer_ids:
            return
        until = ms(online_until)
        await self.db.customers.update_many({"_id": {"$in": customer_ids}}, {"$max": {"online_until": until}})
        await self.db.conversations.update_many(
            {"_id": {"$in": customer_ids}}, {"$max": {"customer_online_until": until}}
        )

    async def _set_conversation_fields(self, conversation_id: str, fields: dict[str, Any], now: datetime) -> None:
        update: dict[str, Any] = {"$set": {"updated_at": ms(now)}}
        update["$set"].update({k: v for k, v in fields.items() if v is not None})
        unset = {k: "" for k, v in fields.items() if v is None}
        if unset:
            update["$unset"] = unset
        await self.db.conversations.update_one({"_id": conversation_id}, update)

    # conversations

    async def conversation(self, org_id: str, conversation_id: str) -> Conversation | None:
        doc = await self.db.conversations.find_one({"_id": conversation_id, "org_id": org_id})
        return codec.conversation(doc) if doc else None

    async def create_conversation(self, conversation: Conversation) -> Conversation:
        try:
            await self.db.conversations.insert_one(codec.conversation_doc(conversation))
        except DuplicateKeyError as error:
            raise AlreadyStored() from error
        return conversation

    async def take_message_seq(self, conversation_id: str, member_id: str | None = None) -> Conversation | None:
        """Reserve the next message sequence number; returns the conversation *before*.

        Only the counter moves, nothing a reader acts on: the message is stored
        next, and only then does the conversation say it has it (waiting,
        answered, last message). A failure in between leaves a gap in the
        numbering, which readers never see (messages are paged by ``seq``, not
        counted by it). For a member, only while they are in the open room.
        """
        return await changes.apply(self.db, conversation_id, domain_changes.take_number(member_id), returning=BEFORE)

    async def take_open_message_seq(self, conversation_id: str) -> Conversation | None:
        """As :meth:`take_message_seq`, for an app's reply: only while the conversation is open."""
        return await changes.apply(self.db, conversation_id, domain_changes.take_open_number(), returning=BEFORE)

    async def change_conversation(self, conversation_id: str, change: Change) -> Conversation | None:
        """``change`` made in one conditional update (join, grab, leave, close); the
        conversation after it, or None when its condition no longer held."""
        return await changes.apply(self.db, conversation_id, change)

    async def record_customer_message(self, message: Message, wake: Change, reopen: Change | None = None) -> str:
        """After the message is stored: the customer wrote, is waiting, and (if it is the
        newest) the message is the conversation's ``last_message``, in one update.

        ``reopen`` given: the caller judged the conversation closed (closed, or silent
        past the inactivity limit); its condition is the conversation still being
        exactly as the caller read it, so of concurrent messages exactly one reopens
        and gets ``"REOPENED"``; the others just ``wake`` it (``"WOKEN"``). A
        conversation judged open that was closed in between (by an agent, or the
        sweeper) is left alone: ``"CLOSED"`` tells the caller to judge again.
        """
        if reopen is not None and await self._change_with_copy(message, reopen):
            return "REOPENED"
        if await self._change_with_copy(message, wake):
            return "WOKEN"
        return "CLOSED"

    async def record_member_message(self, message: Message, answer: Change) -> Conversation | None:
        """After the reply is stored: the customer no longer waits, and (if it is the newest)
        the reply is the conversation's ``last_message``, in one update; returns the result.

        The reply answers what the customer wrote up to its own moment: a customer message
        stamped later, or a close in between, keeps its state (only the copy is offered).
        The ``next_due_at`` it stores comes from the conversation as the caller read it; a
        customer message since then only makes the true moment later, so it stays a lower bound.
        """
        query, update = changes.filter_of(message.conversation_id, answer), changes.update_of(answer)
        doc = await self.db.conversations.find_one_and_update(
            {**query, "last_message.seq": {"$lt": message.seq}}, _with_copy(update, message), return_document=AFTER
        )
        if doc is None:  # a newer copy already there, or nothing left to answer
            doc = await self.db.conversations.find_one_and_update(query, update, return_document=AFTER)
            await self.offer_last_message(message)
            if doc is None:
                doc = await self.db.conversations.find_one({"_id": message.conversation_id})
        return codec.conversation(doc) if doc else None

    async def _change_with_copy(self, message: Message, change: Change) -> bool:
        """``change`` where its condition holds, with ``message`` as ``last_message`` if it is
        the newest: one command when it is; else the change alone, then the copy offered."""
        query, update = changes.filter_of(message.conversation_id, change), changes.update_of(change)
        newer = {**query, "last_message.seq": {"$lt": message.seq}}
        if (await self.db.conversations.update_one(newer, _with_copy(update, message))).matched_count:
            return True
        if not (await self.db.conversations.update_one(query, update)).matched_count:
            return False
        await self.offer_last_message(message)
        return True

    async def open_rooms_of(self, org_id: str, team_id: str, member_id: str) -> list[Conversation]:
        """Open conversations of the team whose room holds the member, or that the member owns.

        Two indexed finds rather than one ``$or``: nx-27017 evaluates any ``$or``
        in Python over the whole collection.
        """
        found: dict[str, Conversation] = {}
        for query in (
            {"org_id": org_id, "team_id": team_id, "participants": member_id, "closed_at": None},
            {"org_id": org_id, "team_id": team_id, "owner_id": member_id, "closed_at": None},
        ):
            async for doc in self.db.conversations.find(query):
                found.setdefault(doc["_id"], codec.conversation(doc))
        return list(found.values())

    async def open_rooms_of_member(self, org_id: str, member_id: str) -> list[Conversation]:
        """Open conversations of any team whose room holds the member, or that the member owns
        (a deactivated member leaves them all); two finds, as :meth:`open_rooms_of`."""
        found: dict[str, Conversation] = {}
        for query in (
            {"participants": member_id, "org_id": org_id, "closed_at": None},
            {"org_id": org_id, "owner_id": member_id, "closed_at": None},
        ):
            async for doc in self.db.conversations.find(query):
                found.setdefault(doc["_id"], codec.conversation(doc))
        return list(found.values())

    async def conversations_by_ids(self, org_id: str, ids: list[str]) -> list[Conversation]:
        cursor = self.db.conversations.find({"_id": {"$in": ids}, "org_id": org_id})
        return [codec.conversation(d) async for d in cursor]

    # messages

    async def insert_message(self, message: Message, *, offer: bool = True) -> Message:
        """Store the message, then (``offer``) make it its conversation's ``last_message`` if it
        is the newest; without ``offer`` the caller's conversation update carries the copy.

        A duplicate provider message id raises :class:`AlreadyStored` with the stored
        message; a taken ``seq`` (another request stored this conversation's first
        message) raises it with ``None``.
        """
        doc = codec.message_doc(message)
        queued = any(d.status is DeliveryStatus.QUEUED for d in message.deliveries)
        if queued or any(a.media_ref for a in message.attachments):
            doc.update(job_fields(message, outbound=queued))
        try:
            await self.db.messages.insert_one(doc)
        except DuplicateKeyError as error:
            existing = (
                await self.db.messages.find_one({"provider_key": doc["provider_key"]})
                if doc.get("provider_key")
                else None
            )
            raise AlreadyStored(codec.message(existing) if existing else None) from error
        if offer:
            await self.offer_last_message(message)
        return message

    async def offer_last_message(self, message: Message, *, same_seq: bool = False) -> None:
        """Copy a *stored* message onto its conversation unless a newer one is there.

        Written only after the message insert succeeded, so the copy never names a
        message that was not stored (a provider retry that lost the insert race took
        a sequence number but writes nothing here). Concurrent writers settle by
        ``seq``: each update only replaces an older copy, so the highest seq stays,
        whatever order they land in. ``same_seq`` also replaces the copy of this very
        message (the outbox refreshing its deliveries).

        No ``$or`` ("older, or none yet"): nx-27017 drops the parentheses around an
        ``$or`` that sits beside other fields, so ``{_id, $or}`` can match another
        document. Instead: older copy; else no copy yet; else, if a copy appeared
        in between, older copy once more. A copy, once there, is never removed.
        """
        snapshot = {"$set": {"last_message": codec.last_message_doc(message)}}
        older = {"_id": message.conversation_id, "last_message.seq": {"$lte" if same_seq else "$lt": message.seq}}
        none_yet = {"_id": message.conversation_id, "last_message": {"$exists": False}}
        # the first message has no older copy to replace: one update settles it
        attempts = (none_yet,) if message.seq == 1 and not same_seq else (older, none_yet, older)
        for query in attempts:
            if (await self.db.conversations.update_one(query, snapshot)).matched_count:
                return

    async def refresh_last_message(self, message: Message) -> Conversation | None:
        """A stored message changed (a delivery moved, a file arrived): the conversation's copy
        shows it unless a newer message's copy is there; returns the conversation after, in
        the same round trip when the copy was this message's."""
        doc = await self.db.conversations.find_one_and_update(
            {"_id": message.conversation_id, "last_message.seq": {"$lte": message.seq}},
            {"$set": {"last_message": codec.last_message_doc(message)}},
            return_document=AFTER,
        )
        if doc is not None:
            return codec.conversation(doc)
        return await self.conversation(message.org_id, message.conversation_id)

    async def first_message(self, conversation_id: str) -> Message | None:
        doc = await self.db.messages.find_one({"conversation_id": conversation_id, "seq": 1})
        return codec.message(doc) if doc else None

    async def message_by_provider_id(self, channel_id: str, provider_message_id: str) -> Message | None:
        doc = await self.db.messages.find_one({"provider_key": codec.provider_key(channel_id, provider_message_id)})
        return codec.message(doc) if doc else None

    async def message(self, org_id: str, message_id: str) -> Message | None:
        doc = await self.db.messages.find_one({"_id": message_id, "org_id": org_id})
        return codec.message(doc) if doc else None

    async def messages_page(
        self, conversation_id: str, last: int, before_seq: int | None, *, for_customer: bool = False
    ) -> list[Message]:
        """The ``last + 1`` newest messages before ``before_seq``, newest first. ``for_customer``
        leaves out what the customer never sees (:func:`domain.messages.customer_can_see`)."""
        query: dict[str, Any] = {"conversation_id": conversation_id}
        if for_customer:
            query["kind"] = {"$nin": [kind.value for kind in HIDDEN_FROM_CUSTOMERS]}
        if before_seq is not None:
            query["seq"] = {"$lt": before_seq}
        cursor = self.db.messages.find(query).sort("seq", -1).limit(last + 1)
        return [codec.message(d) async for d in cursor]
