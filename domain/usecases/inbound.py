"""Customer messages and presence arriving from a channel adapter."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from domain.entities import Attachment, Channel, Conversation, Customer, Location, Message
from domain.enums import ChannelType, EventKind, MessageKind, SenderKind
from domain.errors import AlreadyStored, invalid
from domain.events import Event
from domain.ports import EventSink
from domain.status import (
    Thresholds, earliest_transition_after_customer_message, is_closed, next_transition_at, status_of,
)


@dataclass(frozen=True, slots=True)
class CustomerDetails:
    external_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    customer: CustomerDetails
    text: str | None
    attachments: tuple[Attachment, ...] = ()
    provider_message_id: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    conversation_id: str
    message_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    external_id: str
    online: bool
    location: Location | None = None


class InboundStore(Protocol):
    def new_id(self) -> str: ...
    async def message_by_provider_id(self, channel_id: str, provider_message_id: str) -> Message | None: ...
    async def customer_id_by_external_id(self, channel_id: str, external_id: str) -> str | None: ...
    async def customer_by_external_id(self, channel_id: str, external_id: str) -> Customer | None: ...
    async def customer(self, org_id: str, customer_id: str) -> Customer | None: ...
    async def create_customer(self, customer: Customer) -> Customer: ...
    async def update_customer(self, customer: Customer, changes: dict[str, Any], now: datetime) -> Customer: ...
    async def bump_for_customer_message(self, conversation_id: str, now: datetime,
                                        due_by: datetime) -> Conversation | None: ...
    async def create_conversation(self, conversation: Conversation) -> Conversation: ...
    async def reopen(self, conversation_id: str, now: datetime, next_due_at: datetime) -> None: ...
    async def insert_message(self, message: Message) -> Message: ...
    async def set_presence(self, customer: Customer, online_until: datetime | None,
                           location: Location | None, now: datetime) -> Customer: ...
    async def conversation(self, org_id: str, conversation_id: str) -> Conversation | None: ...


async def receive_customer_message(store: InboundStore, events: EventSink, channel: Channel,
                                   inbound: InboundMessage, now: datetime, t: Thresholds) -> Receipt:
    """Store one customer message exactly once and wake the conversation.

    A provider's retry (same ``messageId`` on the same channel) stores nothing
    and gets the original ids back; concurrent copies are settled by the
    message's unique index, the loser reporting the winner's ids.

    The conversation's id is the customer's, so a known customer's message goes
    straight to the one update that takes its sequence number and starts the
    wait; the details the customer sent are compared with the conversation's
    copies of them, and the customer is written only when they changed.
    """
    if inbound.provider_message_id:
        original = await store.message_by_provider_id(channel.id, inbound.provider_message_id)
        if original is not None:
            return Receipt(original.conversation_id, original.id, duplicate=True)
    due_by = earliest_transition_after_customer_message(now, t)
    customer: Customer | None = None
    customer_id = await store.customer_id_by_external_id(channel.id, inbound.customer.external_id)
    before = None
    if customer_id is None:
        customer, created = await _new_customer(store, channel, inbound.customer, now)
        customer_id = customer.id
        if not created:  # another request created the customer, and maybe the conversation
            before = await store.bump_for_customer_message(customer_id, now, due_by)
    else:
        before = await store.bump_for_customer_message(customer_id, now, due_by)
    kind = EventKind.MESSAGE
    if before is None:
        customer = customer or await store.customer(channel.org_id, customer_id)
        before = await _open_conversation(store, channel, customer, now, t)
        kind = EventKind.CREATED
    after = _after_customer_message(before, now, t)
    changes = _changed_details(before, inbound.customer)
    if changes:
        customer = customer or await store.customer(channel.org_id, customer_id)
        await store.update_customer(customer, changes, now)
        after = replace(after, **{f"customer_{k}": v for k, v in changes.items()})
    if is_closed(before, now, t):
        await store.reopen(before.id, now, after.next_due_at)
        kind = EventKind.REOPENED
    try:
        message = await store.insert_message(Message(
            id=store.new_id(), org_id=channel.org_id, conversation_id=before.id, seq=after.message_seq,
            sender_kind=SenderKind.CUSTOMER, sender_customer_id=customer_id,
            kind=MessageKind.ATTACHMENT if inbound.attachments and not inbound.text else MessageKind.TEXT,
            text=inbound.text, attachments=inbound.attachments, created_at=now,
            sent_at=inbound.sent_at, provider_message_id=inbound.provider_message_id, channel_id=channel.id,
        ))
    except AlreadyStored as race:
        original: Message = race.existing
        return Receipt(original.conversation_id, original.id, duplicate=True)
    after = replace(after, last_message=message)
    await events.publish(Event(kind=kind, conversation=after, at=now, message_id=message.id,
                               previous_status=None if kind is EventKind.CREATED else status_of(before, now, t),
                               owner_before=before.owner_id))
    return Receipt(before.id, message.id, duplicate=False)


def _after_customer_message(before: Conversation, now: datetime, t: Thresholds) -> Conversation:
    """The conversation as the stored updates leave it (reopened if it was closed)."""
    due_by = earliest_transition_after_customer_message(now, t)
    after = replace(before, message_seq=before.message_seq + 1, last_customer_message_at=now,
                    last_message_at=now, updated_at=now, waiting_since=before.waiting_since or now,
                    next_due_at=min(before.next_due_at or due_by, due_by))
    if is_closed(before, now, t):
        reopened = replace(after, closed_at=None, closed_reason=None, participants=(), owner_id=None,
                           waiting_since=now, announced_status=None)
        return replace(reopened, next_due_at=next_transition_at(reopened, t))
    return after


def _changed_details(conversation: Conversation, details: CustomerDetails) -> dict[str, Any]:
    """What the customer sent that differs from the conversation's copies of their details."""
    return {k: v for k, v in (("name", details.name), ("email", details.email), ("phone", details.phone))
            if v is not None and getattr(conversation, f"customer_{k}") != v}


async def _new_customer(store: InboundStore, channel: Channel, details: CustomerDetails,
                        now: datetime) -> tuple[Customer, bool]:
    """The customer, created now (True), or as a concurrent request just created it (False)."""
    try:
        return await store.create_customer(Customer(
            id=store.new_id(), org_id=channel.org_id, channel_id=channel.id, channel_type=channel.type,
            external_id=details.external_id, name=details.name, email=details.email,
            phone=details.phone, created_at=now,
        )), True
    except AlreadyStored as race:
        return race.existing, False


async def _open_conversation(store: InboundStore, channel: Channel, customer: Customer,
                             now: datetime, t: Thresholds) -> Conversation:
    """The customer's conversation on this channel; its id is the customer's id.

    Returns the state before this message: created here, it already holds the
    message's sequence number 1 (no separate bump); created by a concurrent
    request, the bump takes the next one.
    """
    before = Conversation(
        id=customer.id, org_id=channel.org_id, team_id=channel.team_id, channel_id=channel.id,
        channel_type=channel.type, channel_name=channel.name, customer_id=customer.id,
        customer_name=customer.name, customer_email=customer.email, customer_phone=customer.phone,
        customer_online_until=customer.online_until, last_customer_message_at=now, last_message_at=now,
        waiting_since=now, created_at=now, updated_at=now,
    )
    try:
        await store.create_conversation(replace(_after_customer_message(before, now, t), last_message=None))
        return before
    except AlreadyStored:
        pass
    found = await store.bump_for_customer_message(customer.id, now,
                                                  earliest_transition_after_customer_message(now, t))
    assert found is not None
    return found


async def record_presence(store: InboundStore, events: EventSink, channel: Channel, update: PresenceUpdate,
                          now: datetime, t: Thresholds) -> Customer:
    """Web-widget heartbeat: online until the presence timeout passes without another one."""
    if channel.type is not ChannelType.WEB_WIDGET:
        raise invalid("Presence is recorded for web-widget channels only.", "channel")
    customer = await store.customer_by_external_id(channel.id, update.external_id)
    if customer is None:
        try:
            customer = await store.create_customer(Customer(
                id=store.new_id(), org_id=channel.org_id, channel_id=channel.id, channel_type=channel.type,
                external_id=update.external_id, created_at=now,
            ))
        except AlreadyStored as race:
            customer = race.existing
    online_until = now + timedelta(seconds=t.presence_timeout_s) if update.online else None
    customer = await store.set_presence(customer, online_until, update.location, now)
    conversation = await store.conversation(channel.org_id, customer.id)
    if conversation is not None:
        await events.publish(Event(kind=EventKind.PRESENCE, conversation=conversation, at=now,
                                   owner_before=conversation.owner_id, previous_status=status_of(conversation, now, t)))
    return customer


__all__ = ["CustomerDetails", "InboundMessage", "PresenceUpdate", "Receipt", "receive_customer_message",
           "record_presence"]
