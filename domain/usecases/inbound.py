"""Customer messages and presence arriving from a channel adapter."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from domain import changes
from domain.changes import Change
from domain.entities import Attachment, Channel, Conversation, Customer, Location, Message
from domain.enums import ChannelType, EventKind, MessageKind, SenderKind, SystemAction
from domain.errors import AlreadyStored, invalid
from domain.events import Event
from domain.ports import EventSink
from domain.status import (
    Thresholds,
    earliest_transition_after_customer_message,
    is_closed,
    next_transition_at,
    status_of,
)
from domain.usecases.lines import write_line
from domain.usecases.organization import check_channel_enabled
from domain.validation import check_string, check_time


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
    async def first_message(self, conversation_id: str) -> Message | None: ...
    async def customer_id_by_external_id(self, channel_id: str, external_id: str) -> str | None: ...
    async def customer_by_external_id(self, channel_id: str, external_id: str) -> Customer | None: ...
    async def customer(self, org_id: str, customer_id: str) -> Customer | None: ...
    async def create_customer(self, customer: Customer) -> Customer: ...
    async def update_customer(self, customer: Customer, changes: dict[str, Any], now: datetime) -> Customer: ...
    async def take_message_seq(self, conversation_id: str, member_id: str | None = None) -> Conversation | None: ...
    async def record_customer_message(self, message: Message, wake: Change, reopen: Change | None = None) -> str: ...
    async def create_conversation(self, conversation: Conversation) -> Conversation: ...
    async def insert_message(self, message: Message, *, offer: bool = True) -> Message: ...
    async def set_presence(
        self, customer: Customer, online_until: datetime | None, location: Location | None, now: datetime
    ) -> Customer: ...
    async def conversation(self, org_id: str, conversation_id: str) -> Conversation | None: ...
    async def change_conversation(self, conversation_id: str, change: Change) -> Conversation | None: ...


def check_inbound(inbound: InboundMessage, now: datetime) -> None:
    """What every entry point's message must satisfy before anything is written
    (the webhook checks the same rules field by field, to name them all at once)."""
    details = inbound.customer
    for field, value in (
        ("customer.externalId", details.external_id),
        ("customer.name", details.name),
        ("customer.email", details.email),
        ("customer.phone", details.phone),
        ("text", inbound.text),
        ("messageId", inbound.provider_message_id),
    ):
        if value is not None:
            check_string(value, field)
    for i, attachment in enumerate(inbound.attachments):
        for name in ("url", "mime_type", "name"):
            if getattr(attachment, name) is not None:
                check_string(getattr(attachment, name), f"attachments[{i}]")
    if inbound.sent_at is not None:
        check_time(inbound.sent_at, "sentAt", now)


async def receive_customer_message(
    store: InboundStore, events: EventSink, channel: Channel, inbound: InboundMessage, now: datetime, t: Thresholds
) -> Receipt:
    """Store one customer message exactly once and wake the conversation.

    A provider's retry (same ``messageId`` on the same channel) stores nothing
    and gets the original ids back; concurrent copies are settled by the
    message's unique index, the loser reporting the winner's ids.

    Write order, so that no reader ever sees a conversation claiming a message
    that is not stored: (1) reserve the message's number on the conversation
    (only the counter moves); (2) store the message; (3) one update says the
    customer wrote and waits, reopens if the conversation was closed, and makes
    the message the last one. A failure after (1) leaves an unused number; after
    (2) a stored message the conversation does not mention yet, which a retry
    with the same ``messageId`` reports as stored. A new conversation is created
    *from* its first message, after that message is stored; a concurrent request
    that finds the first number taken builds the conversation from the stored
    first message (it may be the one to do so, if the first request failed).

    The conversation's id is the customer's, so a known customer's message goes
    straight to the update that takes its sequence number; the details the
    customer sent are compared with the conversation's copies of them, and the
    customer is written only when they changed.
    """
    check_channel_enabled(channel)
    check_inbound(inbound, now)
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
            before = await store.take_message_seq(customer_id)
    else:
        before = await store.take_message_seq(customer_id)

    def message(seq: int, customer_messages: int) -> Message:
        return Message(
            id=store.new_id(),
            org_id=channel.org_id,
            conversation_id=customer_id,
            seq=seq,
            sender_kind=SenderKind.CUSTOMER,
            sender_customer_id=customer_id,
            kind=MessageKind.ATTACHMENT if inbound.attachments and not inbound.text else MessageKind.TEXT,
            text=inbound.text,
            attachments=inbound.attachments,
            created_at=now,
            sent_at=inbound.sent_at,
            provider_message_id=inbound.provider_message_id,
            channel_id=channel.id,
            customer_messages=customer_messages,
        )

    opened = None
    line_id: str | None = None
    try:
        if before is None:
            customer = customer or await _customer(store, channel.org_id, customer_id)
            opened = await _open_conversation(store, channel, customer, message(1, 1), t)
            if opened is None:  # the first number was taken: the conversation exists now
                before = await store.take_message_seq(customer_id)
                assert before is not None
        if opened is not None:
            stored = opened.last_message
            assert stored is not None  # _conversation_from makes the first message the last one
        else:
            assert before is not None  # not opened here: its number was reserved above
            stored = await store.insert_message(
                message(before.message_seq + 1, before.customer_messages + 1), offer=False
            )
    except AlreadyStored as race:
        if race.existing is None:  # a reserved number taken: the store is inconsistent, not the input
            raise
        original = cast(Message, race.existing)  # the message store hands back the stored message
        return Receipt(original.conversation_id, original.id, duplicate=True)

    if opened is not None:
        kind, after = EventKind.CREATED, opened
    else:
        assert before is not None  # not opened here: its number was reserved above
        kind, after = EventKind.MESSAGE, before
    details = _changed_details(after, inbound.customer)
    if details:
        customer = customer or await _customer(store, channel.org_id, customer_id)
        await store.update_customer(customer, details, now)
    if opened is None:
        assert before is not None  # as above
        for _ in range(3):  # judged again only if it was closed between the two reads
            change = _customer_message(before, now, t)
            after = replace(
                changes.effect(change, before), message_seq=stored.seq, customer_messages=stored.customer_messages
            )
            reopen = change if is_closed(before, now, t) else None
            outcome = await store.record_customer_message(stored, changes.wake(now, due_by), reopen)
            if outcome != "CLOSED":
                break
            before = await store.conversation(channel.org_id, customer_id) or before
        kind = EventKind.REOPENED if outcome == "REOPENED" else EventKind.MESSAGE
        if kind is EventKind.REOPENED:  # the history says so, right after the message that reopened it
            numbered = await store.change_conversation(customer_id, changes.number_line())
            if numbered is not None:
                line = await write_line(store, numbered, SystemAction.REOPENED, now)
                after = replace(after, message_seq=max(after.message_seq, line.seq))
                line_id = line.id
    if details:
        after = replace(after, **{f"customer_{k}": v for k, v in details.items()})
    after = replace(after, last_message=stored)
    await events.publish(
        Event(
            kind=kind,
            conversation=after,
            at=now,
            message_id=stored.id,
            # ``before`` is None exactly when this request created the conversation (CREATED)
            previous_status=status_of(before, now, t) if before is not None else None,
            owner_before=before.owner_id if before else None,
            line_id=line_id,
        )
    )
    return Receipt(customer_id, stored.id, duplicate=False)


def _customer_message(before: Conversation, now: datetime, t: Thresholds) -> Change:
    """What a customer message at ``now`` does to the conversation: wakes it, or
    reopens it if it was closed (its next moment computed on the reopened state)."""
    if is_closed(before, now, t):
        reopened = changes.effect(changes.reopen(before, now, None), before)
        return changes.reopen(before, now, next_transition_at(reopened, t))
    return changes.wake(now, earliest_transition_after_customer_message(now, t))


def _changed_details(conversation: Conversation, details: CustomerDetails) -> dict[str, Any]:
    """What the customer sent that differs from the conversation's copies of their details."""
    return {
        k: v
        for k, v in (("name", details.name), ("email", details.email), ("phone", details.phone))
        if v is not None and getattr(conversation, f"customer_{k}") != v
    }


async def _new_customer(
    store: InboundStore, channel: Channel, details: CustomerDetails, now: datetime
) -> tuple[Customer, bool]:
    """The customer, created now (True), or as a concurrent request just created it (False)."""
    try:
        return await store.create_customer(
            Customer(
                id=store.new_id(),
                org_id=channel.org_id,
                channel_id=channel.id,
                channel_type=channel.type,
                external_id=details.external_id,
                name=details.name,
                email=details.email,
                phone=details.phone,
                created_at=now,
            )
        ), True
    except AlreadyStored as race:
        return cast(Customer, race.existing), False  # the customer store hands back the one that won


async def _customer(store: InboundStore, org_id: str, customer_id: str) -> Customer:
    """A customer this request knows exists (it was found or created above)."""
    customer = await store.customer(org_id, customer_id)
    assert customer is not None, "customers are never deleted"
    return customer


async def _open_conversation(
    store: InboundStore, channel: Channel, customer: Customer, first: Message, t: Thresholds
) -> Conversation | None:
    """Store the conversation's first message, then the conversation made from it
    (its id is the customer's); returns the new conversation.

    None when the first number is already taken: another request stored a first
    message. Its conversation is created here from that message if it is still
    missing (that request may have failed in between), so the caller can always
    take the next number.
    """
    try:
        await store.insert_message(first, offer=False)
    except AlreadyStored as race:
        if race.existing is not None:  # a provider retry of a stored message
            raise
        taken = await store.first_message(customer.id)
        if taken is not None:
            try:
                await store.create_conversation(_conversation_from(channel, customer, taken, t))
            except AlreadyStored:
                pass
        return None
    conversation = _conversation_from(channel, customer, first, t)
    try:
        await store.create_conversation(conversation)
    except AlreadyStored:  # a request that found the first number taken made it from this message
        pass
    return conversation


def _conversation_from(channel: Channel, customer: Customer, first: Message, t: Thresholds) -> Conversation:
    """A new conversation as its first (customer) message leaves it."""
    now = first.created_at
    before = Conversation(
        id=customer.id,
        org_id=channel.org_id,
        team_id=channel.team_id,
        channel_id=channel.id,
        channel_type=channel.type,
        channel_name=channel.name,
        customer_id=customer.id,
        customer_name=customer.name,
        customer_email=customer.email,
        customer_phone=customer.phone,
        customer_online_until=customer.online_until,
        last_customer_message_at=now,
        last_message_at=now,
        waiting_since=now,
        created_at=now,
        updated_at=now,
    )
    return replace(
        changes.effect(_customer_message(before, now, t), before),
        message_seq=first.seq,
        last_message=first,
        customer_messages=first.customer_messages,
    )


async def record_presence(
    store: InboundStore, events: EventSink, channel: Channel, update: PresenceUpdate, now: datetime, t: Thresholds
) -> Customer:
    """Web-widget heartbeat: online until the presence timeout passes without another one."""
    check_channel_enabled(channel)
    if channel.type is not ChannelType.WEB_WIDGET:
        raise invalid("Presence is recorded for web-widget channels only.", "channel")
    customer = await store.customer_by_external_id(channel.id, update.external_id)
    if customer is None:
        customer, _ = await _new_customer(store, channel, CustomerDetails(external_id=update.external_id), now)
    online_until = now + timedelta(seconds=t.presence_timeout_s) if update.online else None
    customer = await store.set_presence(customer, online_until, update.location, now)
    conversation = await store.conversation(channel.org_id, customer.id)
    if conversation is not None:
        await events.publish(
            Event(
                kind=EventKind.PRESENCE,
                conversation=conversation,
                at=now,
                owner_before=conversation.owner_id,
                previous_status=status_of(conversation, now, t),
            )
        )
    return customer


__all__ = [
    "CustomerDetails",
    "InboundMessage",
    "PresenceUpdate",
    "Receipt",
    "receive_customer_message",
    "record_presence",
]
