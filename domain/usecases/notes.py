"""Internal notes: what agents write to each other inside a conversation.

A note is stored in the history like a message (numbered by the conversation's
counter, so ``messages`` pages it in order) but it is never sent to the customer
(no delivery), never answers them (waiting and status are left alone) and never
becomes the conversation's ``last_message``. ``@name`` mentions notify those
members (MENTION) who can see the conversation.
"""

from __future__ import annotations

from datetime import datetime

from domain import changes
from domain.entities import Conversation, Member, Message
from domain.enums import EventKind, MessageKind, SenderKind
from domain.errors import not_found
from domain.events import Event
from domain.messages import mentioned
from domain.ports import ConversationStore, EventSink
from domain.status import Thresholds, status_of
from domain.usecases.rooms import load_visible
from domain.validation import clean_text
from domain.visibility import Viewer, can_see


async def add_note(
    store: ConversationStore,
    events: EventSink,
    viewer: Viewer,
    conversation_id: str,
    text: str | None,
    now: datetime,
    t: Thresholds,
) -> tuple[Message, Conversation]:
    """Any member who can see the conversation, open or closed, may add a note.

    Validated first, so a refused note writes nothing; then the note's number
    (only the counter moves), the note, and a MESSAGE event naming the members
    to tell.
    """
    text = clean_text(text)
    conversation = await load_visible(store, viewer, conversation_id)
    to_tell = await mentioned_who_can_see(store, viewer, conversation, text)
    numbered = await store.change_conversation(conversation.id, changes.number_line())
    if numbered is None:  # conversations are never deleted; as if it were absent
        raise not_found()
    note = await store.insert_message(
        Message(
            id=store.new_id(),
            org_id=viewer.org_id,
            conversation_id=conversation.id,
            seq=numbered.message_seq,
            sender_kind=SenderKind.MEMBER,
            sender_member_id=viewer.member_id,
            kind=MessageKind.NOTE,
            text=text,
            created_at=now,
            customer_messages=numbered.customer_messages,
        ),
        offer=False,
    )
    await events.publish(
        Event(
            kind=EventKind.MESSAGE,
            conversation=numbered,
            at=now,
            actor_id=viewer.member_id,
            previous_status=status_of(conversation, now, t),
            message_id=note.id,
            owner_before=conversation.owner_id,
            mentioned=tuple(m.id for m in to_tell),
        )
    )
    return note, numbered


async def mentioned_who_can_see(
    store: ConversationStore, viewer: Viewer, conversation: Conversation, text: str
) -> list[Member]:
    """The members ``text`` mentions who may see ``conversation`` (the author aside).

    Each is judged with the organization's teams the viewer was loaded with (every
    team of the organization), so a GRAB-team representative is not told of a
    conversation another representative grabbed.
    """
    if "@" not in text:
        return []
    found = mentioned(text, await store.members(viewer.org_id))
    return [
        m
        for m in found
        if m.id != viewer.member_id
        and can_see(
            Viewer(member_id=m.id, org_id=m.org_id, org_role=m.role, name=m.name, teams=viewer.teams), conversation
        )
    ]


__all__ = ["add_note", "mentioned_who_can_see"]
