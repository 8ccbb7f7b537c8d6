"""Agents editing a customer's details."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain.entities import Channel, Conversation, Customer
from domain.enums import EventKind
from domain.errors import not_found
from domain.events import Event
from domain.ports import ConversationStore, EventSink
from domain.validation import clean_attributes, clean_email, clean_line, clean_phone, is_id
from domain.visibility import Viewer, can_see

UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class CustomerChanges:
    """Fields left UNSET are kept; ``None`` clears a field."""

    id: str
    name: Any = UNSET
    email: Any = UNSET
    phone: Any = UNSET
    attributes: Any = UNSET


async def update_customer(
    store: ConversationStore, events: EventSink, viewer: Viewer, changes: CustomerChanges, now: datetime
) -> Customer:
    """Any member who can see one of the customer's conversations may edit them."""
    if not is_id(changes.id):
        raise not_found("customer")
    customer = await store.customer(viewer.org_id, changes.id)
    conversation = await store.conversation(viewer.org_id, changes.id) if customer else None
    if customer is None or conversation is None or not can_see(viewer, conversation):
        raise not_found("customer")
    update: dict[str, Any] = {}
    if changes.name is not UNSET:
        update["name"] = clean_line(changes.name, "name")
    if changes.email is not UNSET:
        update["email"] = clean_email(changes.email)
    if changes.phone is not UNSET:
        update["phone"] = clean_phone(changes.phone)
    if changes.attributes is not UNSET:
        update["attributes"] = clean_attributes(changes.attributes)
    if not update:
        return customer
    updated = await store.update_customer(customer, update, now)
    await events.publish(
        Event(
            kind=EventKind.CUSTOMER_UPDATED,
            at=now,
            actor_id=viewer.member_id,
            conversation=_with_customer(conversation, updated),
            owner_before=conversation.owner_id,
        )
    )
    return updated


def _with_customer(conversation: Conversation, customer: Customer) -> Conversation:
    return replace(
        conversation, customer_name=customer.name, customer_email=customer.email, customer_phone=customer.phone
    )


async def learn_name(store: ConversationStore, events: EventSink, customer: Customer, name: str, now: datetime) -> None:
    """A name the provider told us afterwards (Messenger's profile), kept once: an agent's
    edit made in the meantime wins, so this only fills a name still unknown."""
    name = clean_line(name, "name") or ""
    if not name or customer.name is not None:
        return
    updated = await store.update_customer(customer, {"name": name}, now)
    conversation = await store.conversation(customer.org_id, customer.id)
    if conversation is not None:
        await events.publish(
            Event(
                kind=EventKind.CUSTOMER_UPDATED,
                at=now,
                conversation=_with_customer(conversation, updated),
                owner_before=conversation.owner_id,
            )
        )


async def record_follow(
    store: ConversationStore, events: EventSink, channel: Channel, external_id: str, following: bool, now: datetime
) -> None:
    """A customer followed or unfollowed the business account (LINE, WeChat): kept on the
    customer as the ``following`` attribute with its time, for agents to see. Someone who
    never wrote is not a customer yet, so an event about them changes nothing."""
    customer_id = await store.customer_id_by_external_id(channel.id, external_id)
    customer = await store.customer(channel.org_id, customer_id) if customer_id else None
    if customer is None:
        return
    attributes = {**customer.attributes, "following": following, "followChangedAt": now.isoformat()}
    updated = await store.update_customer(customer, {"attributes": attributes}, now)
    conversation = await store.conversation(customer.org_id, customer.id)
    if conversation is not None:
        await events.publish(
            Event(
                kind=EventKind.CUSTOMER_UPDATED,
                at=now,
                conversation=_with_customer(conversation, updated),
                owner_before=conversation.owner_id,
            )
        )
