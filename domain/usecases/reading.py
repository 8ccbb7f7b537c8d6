"""Marking a conversation read, for the caller (the rules: :mod:`domain.reading`)."""

from __future__ import annotations

from datetime import datetime

from domain import changes
from domain.entities import Conversation, ReadMark
from domain.enums import EventKind
from domain.errors import not_found
from domain.events import Event
from domain.ports import ConversationStore, EventSink
from domain.reading import everything_read_condition
from domain.status import Thresholds, status_of
from domain.usecases.rooms import load_visible
from domain.validation import check_id
from domain.visibility import Viewer


async def mark_conversation_read(
    store: ConversationStore,
    events: EventSink,
    viewer: Viewer,
    conversation_id: str,
    up_to_message_id: str,
    now: datetime,
    t: Thresholds,
) -> Conversation:
    """The caller has read the conversation up to (and including) the message ``up_to_message_id``.

    Any member who can see the conversation may mark it, open or closed, in the room or
    not. A mark never goes back: marking an older message keeps the newer mark. The
    update that raises the mark also puts the caller in ``read_by`` when it covers every
    customer message, under a condition a customer message stored in between breaks
    (then a second update records the mark alone). When the mark moved, a READ event
    tells the caller's other tabs (and nobody else).
    """
    message_id = check_id(up_to_message_id, "upToMessageId")
    conversation = await load_visible(store, viewer, conversation_id)
    message = await store.message(viewer.org_id, message_id)
    if message is None or message.conversation_id != conversation.id:
        raise not_found("message in this conversation", "upToMessageId")
    mark = ReadMark(member_id=viewer.member_id, seq=message.seq, customer_messages=message.customer_messages, at=now)
    before = conversation.read_mark(viewer.member_id)
    effective = changes.effect(changes.mark_read(mark), conversation).read_mark(viewer.member_id)
    assert effective is not None  # just raised
    condition = None if viewer.member_id in conversation.read_by else everything_read_condition(conversation, effective)
    updated = None
    if condition is not None:
        both = changes.merge(changes.mark_read(mark), changes.read_to_the_end(viewer.member_id, condition))
        updated = await store.change_conversation(conversation.id, both)
    if updated is None:
        updated = await store.change_conversation(conversation.id, changes.mark_read(mark))
    if updated is None:  # conversations are never deleted; as if it were absent
        raise not_found()
    after = updated.read_mark(viewer.member_id)
    if before is None or (after is not None and after.seq > before.seq):
        await events.publish(
            Event(
                kind=EventKind.READ,
                conversation=updated,
                at=now,
                actor_id=viewer.member_id,
                previous_status=status_of(conversation, now, t),
                message_id=message.id,
                owner_before=conversation.owner_id,
            )
        )
    return updated


__all__ = ["mark_conversation_read"]
