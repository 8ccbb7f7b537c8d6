"""Entering and leaving a conversation's room: join, grab, leave, close.

Each of them also writes a system line into the conversation's history (who did
what), numbered by the room change itself (:mod:`domain.usecases.lines`).
"""

from __future__ import annotations

from datetime import datetime

from domain import changes
from domain.entities import Conversation, Team
from domain.enums import ClosedReason, ErrorCode, EventKind, SystemAction, TeamMode
from domain.errors import Refused, not_found
from domain.events import Event
from domain.ports import ConversationStore, EventSink
from domain.status import Thresholds, is_closed, status_of
from domain.usecases.lines import write_line
from domain.validation import is_id
from domain.visibility import Viewer, can_grab, can_see, is_admin_of, is_grab_representative


async def load_visible(store: ConversationStore, viewer: Viewer, conversation_id: str) -> Conversation:
    """The conversation, or NOT_FOUND when it doesn't exist *or* the viewer may not see it."""
    conversation = await _load(store, viewer, conversation_id)
    if conversation is None or not can_see(viewer, conversation):
        raise not_found()
    return conversation


async def _load(store: ConversationStore, viewer: Viewer, conversation_id: str) -> Conversation | None:
    if not is_id(conversation_id):
        return None
    return await store.conversation(viewer.org_id, conversation_id)


async def join_conversation(
    store: ConversationStore, events: EventSink, viewer: Viewer, conversation_id: str, now: datetime, t: Thresholds
) -> Conversation:
    conversation = await load_visible(store, viewer, conversation_id)
    if is_closed(conversation, now, t):
        raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed.")
    if viewer.member_id in conversation.participants:
        return conversation
    if is_grab_representative(viewer, conversation) and conversation.owner_id != viewer.member_id:
        raise Refused(ErrorCode.GRAB_REQUIRED, "Grab this conversation before joining it.")
    updated = await store.change_conversation(conversation.id, changes.numbered(changes.join(viewer.member_id, now)))
    if updated is None:
        raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed.")
    line = await write_line(store, updated, SystemAction.JOINED, now, actor=viewer)
    await _publish(events, EventKind.JOINED, conversation, updated, viewer, now, t, line.id)
    return updated


async def grab_conversation(
    store: ConversationStore, events: EventSink, viewer: Viewer, conversation_id: str, now: datetime, t: Thresholds
) -> Conversation:
    """Make the caller the owner; exactly one of any number of racing callers wins.

    The winner is decided by one conditional update (owner still unset), never
    by what was read before it.
    """
    conversation = await _load(store, viewer, conversation_id)
    refusal = grab_refusal(viewer, conversation, now, t)
    if refusal is not None:
        raise refusal
    assert conversation is not None
    if conversation.owner_id == viewer.member_id:
        return conversation
    updated = await store.change_conversation(conversation.id, changes.numbered(changes.grab(viewer.member_id, now)))
    if updated is None:
        raise Refused(ErrorCode.ALREADY_GRABBED, "Another representative grabbed it first.")
    line = await write_line(store, updated, SystemAction.GRABBED, now, actor=viewer)
    await _publish(events, EventKind.GRABBED, conversation, updated, viewer, now, t, line.id)
    return updated


def grab_refusal(viewer: Viewer, conversation: Conversation | None, now: datetime, t: Thresholds) -> Refused | None:
    """Why the viewer may not grab the conversation now, or None when they may
    (or already own it: grabbing again is a no-op).

    The one grab rule: ``grabConversation`` raises what it returns, and a
    GRAB_OFFER's ``canGrab`` is "no refusal and nobody owns it yet", evaluated
    when read, so the two never disagree.
    """
    team = viewer.team(conversation.team_id) if conversation else None
    if conversation is None or team is None:
        return not_found()
    if not can_see(viewer, conversation):
        if can_grab(viewer, team):
            return Refused(ErrorCode.ALREADY_GRABBED, "Another representative grabbed it first.")
        return not_found()
    if team.mode is not TeamMode.GRAB:
        return Refused(ErrorCode.NOT_GRAB_TEAM, "Only conversations of GRAB teams can be grabbed.")
    if not can_grab(viewer, team):
        return Refused(ErrorCode.FORBIDDEN, "Only the team's representatives grab conversations.")
    if is_closed(conversation, now, t):
        return Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed.")
    return None


def may_grab_now(viewer: Viewer, conversation: Conversation | None, now: datetime, t: Thresholds) -> bool:
    """A grab by this viewer would take the conversation (what a grab offer's ``canGrab`` says)."""
    return (
        conversation is not None
        and conversation.owner_id is None
        and grab_refusal(viewer, conversation, now, t) is None
    )


async def leave_conversation(
    store: ConversationStore, events: EventSink, viewer: Viewer, conversation_id: str, now: datetime, t: Thresholds
) -> Conversation:
    """Leave the room; an owner leaving a GRAB conversation releases it for grabbing."""
    conversation = await load_visible(store, viewer, conversation_id)
    if viewer.member_id not in conversation.participants:
        raise Refused(ErrorCode.NOT_JOINED, "You are not in this conversation.")
    release = conversation.owner_id == viewer.member_id
    leave = changes.numbered(changes.leave(viewer.member_id, now, release=release))
    updated = await store.change_conversation(conversation.id, leave)
    if updated is None:
        raise Refused(ErrorCode.NOT_JOINED, "You are not in this conversation.")
    action = SystemAction.RELEASED if release else SystemAction.LEFT
    line = await write_line(store, updated, action, now, actor=viewer)
    await _publish(events, EventKind.LEFT, conversation, updated, viewer, now, t, line.id)
    return updated


async def close_conversation(
    store: ConversationStore, events: EventSink, viewer: Viewer, conversation_id: str, now: datetime, t: Thresholds
) -> Conversation:
    """Close by hand: a member in the room, or a team or organization admin."""
    conversation = await load_visible(store, viewer, conversation_id)
    if is_closed(conversation, now, t):
        raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is already closed.")
    if viewer.member_id not in conversation.participants and not is_admin_of(viewer, conversation):
        raise Refused(ErrorCode.NOT_JOINED, "Join the conversation before closing it.")
    close = changes.numbered(changes.close(ClosedReason.MANUAL, now, now))
    updated = await store.change_conversation(conversation.id, close)
    if updated is None:
        raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is already closed.")
    line = await write_line(store, updated, SystemAction.CLOSED, now, actor=viewer)
    await _publish(events, EventKind.CLOSED, conversation, updated, viewer, now, t, line.id)
    return updated


async def leave_team_rooms(
    store: ConversationStore,
    events: EventSink,
    team: Team,
    member_id: str,
    now: datetime,
    t: Thresholds,
    *,
    by: Viewer | None = None,
    member_name: str | None = None,
) -> int:
    """A member taken out of a team (``by`` an admin) leaves every open room of that team.

    What they owned is released (the LEFT event goes out as a release, so the
    team gets new grab offers), and they stop being told of its messages and
    waits because notifications follow the room. Closed conversations keep
    their owner: their history stays private to the owner and admins. Each
    room's history says who took whom out. Returns how many rooms were left.
    """
    left = 0
    for conversation in await store.open_rooms_of(team.org_id, team.id, member_id):
        release = conversation.owner_id == member_id
        leave = changes.numbered(changes.leave(member_id, now, release=release))
        updated = await store.change_conversation(conversation.id, leave)
        if updated is None:  # left, closed or released meanwhile
            continue
        left += 1
        action = SystemAction.RELEASED if release else SystemAction.LEFT
        line = await write_line(store, updated, action, now, actor=by, target_id=member_id, target_name=member_name)
        await events.publish(
            Event(
                kind=EventKind.LEFT,
                conversation=updated,
                at=now,
                actor_id=member_id,
                previous_status=status_of(conversation, now, t),
                owner_before=conversation.owner_id,
                line_id=line.id,
            )
        )
    return left


async def _publish(
    events: EventSink,
    kind: EventKind,
    before: Conversation,
    after: Conversation,
    viewer: Viewer,
    now: datetime,
    t: Thresholds,
    line_id: str | None = None,
) -> None:
    await events.publish(
        Event(
            kind=kind,
            conversation=after,
            at=now,
            actor_id=viewer.member_id,
            previous_status=status_of(before, now, t),
            owner_before=before.owner_id,
            line_id=line_id,
        )
    )
