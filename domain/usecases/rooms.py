"""Entering and leaving a conversation's room: join, grab, leave, close, and, for admins
and owners, handing it on: transfer and release.

Each of them also writes a system line into the conversation's history (who did
what), numbered by the room change itself (:mod:`domain.usecases.lines`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain import changes
from domain.entities import Conversation, Member, Team
from domain.enums import ClosedReason, ErrorCode, EventKind, OrgRole, SystemAction, TeamMode, TeamRole
from domain.errors import Refused, forbidden, invalid, not_found
from domain.events import Event
from domain.ports import ConversationStore, EventSink
from domain.status import Thresholds, is_closed, status_of
from domain.usecases.lines import write_line
from domain.validation import clean_text, is_id
from domain.visibility import Viewer, can_grab, can_see, is_admin_of, is_grab_representative

# A conditional update that fails because something else changed the conversation since it
# was read is judged again from a fresh read, this many times in all.
ATTEMPTS = 3


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
    """Into the room, only while the conversation is still of the team the viewer saw it in
    (organization admins see every team); a close or transfer in between is judged afresh."""
    if viewer.app is not None:
        raise forbidden("Apps (API keys) never join conversations.")
    for _ in range(ATTEMPTS):
        conversation = await load_visible(store, viewer, conversation_id)
        if is_closed(conversation, now, t):
            raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed.")
        if viewer.member_id in conversation.participants:
            return conversation
        if is_grab_representative(viewer, conversation) and conversation.owner_id != viewer.member_id:
            raise Refused(ErrorCode.GRAB_REQUIRED, "Grab this conversation before joining it.")
        team_id = None if viewer.is_org_admin else conversation.team_id
        join = changes.numbered(changes.join(viewer.member_id, now, team_id=team_id))
        updated = await store.change_conversation(conversation.id, join)
        if updated is not None:
            line = await write_line(store, updated, SystemAction.JOINED, now, actor=viewer)
            await _publish(events, EventKind.JOINED, conversation, updated, viewer, now, t, line.id)
            return updated
    raise _kept_changing()


async def grab_conversation(
    store: ConversationStore, events: EventSink, viewer: Viewer, conversation_id: str, now: datetime, t: Thresholds
) -> Conversation:
    """Make the caller the owner; exactly one of any number of racing callers wins.

    The winner is decided by one conditional update (owner still unset, team still the
    one judged), never by what was read before it; a loser is judged again on what won.
    """
    for _ in range(ATTEMPTS):
        conversation = await _load(store, viewer, conversation_id)
        refusal = grab_refusal(viewer, conversation, now, t)
        if refusal is not None:
            raise refusal
        assert conversation is not None
        if conversation.owner_id == viewer.member_id:
            return conversation
        grab = changes.numbered(changes.grab(viewer.member_id, now, team_id=conversation.team_id))
        updated = await store.change_conversation(conversation.id, grab)
        if updated is not None:
            line = await write_line(store, updated, SystemAction.GRABBED, now, actor=viewer)
            await _publish(events, EventKind.GRABBED, conversation, updated, viewer, now, t, line.id)
            return updated
    raise Refused(ErrorCode.ALREADY_GRABBED, "Another representative grabbed it first.")


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
    rooms = await store.open_rooms_of(team.org_id, team.id, member_id)
    return await leave_rooms(store, events, rooms, member_id, now, t, by=by, member_name=member_name)


async def leave_rooms(
    store: ConversationStore,
    events: EventSink,
    rooms: list[Conversation],
    member_id: str,
    now: datetime,
    t: Thresholds,
    *,
    by: Viewer | None = None,
    member_name: str | None = None,
    deactivated: bool = False,
) -> int:
    """The member is taken out of ``rooms`` (``by`` an admin), as :func:`leave_team_rooms` says:
    owned ones released for a new grab, a system line in each history (saying their account was
    ``deactivated``, or else that they were taken out of the team), a LEFT event each."""
    left = 0
    for conversation in rooms:
        release = conversation.owner_id == member_id
        leave = changes.numbered(changes.leave(member_id, now, release=release))
        updated = await store.change_conversation(conversation.id, leave)
        if updated is None:  # left, closed or released meanwhile
            continue
        left += 1
        action = SystemAction.RELEASED if release else SystemAction.LEFT
        line = await write_line(
            store,
            updated,
            action,
            now,
            actor=by,
            target_id=member_id,
            target_name=member_name,
            removed=True,
            deactivated=deactivated,
        )
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


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """Where ``transferConversation`` sends a conversation: to another team (``to_team_id``),
    straight to a representative of a GRAB team (``to_member_id``, in that team or the
    conversation's own), with the admin's ``note``."""

    conversation_id: str
    to_team_id: str | None = None
    to_member_id: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Transferred:
    conversation: Conversation
    note: str | None  # as kept on the TRANSFERRED event


class TransferStore(ConversationStore, Protocol):
    async def members_by_ids(self, org_id: str, ids: list[str]) -> list[Member]: ...


async def transfer_conversation(
    store: TransferStore, events: EventSink, viewer: Viewer, request: TransferRequest, now: datetime, t: Thresholds
) -> Transferred:
    """Hand the conversation to another team, or to a representative, in one conditional update.

    The target team's mode applies: a COLLABORATION team lists it to all its members; a
    GRAB team offers it to its representatives, unless it goes straight to one of them
    (``to_member_id``), who then owns it and enters the room. Who can no longer see it
    leaves the room (the old team's members, the previous owner); the target team's
    admins (and its members, in COLLABORATION) and organization admins stay in it. The
    customer still waits as before. Team admins of the conversation's team and organization admins
    may transfer. The note is kept on the TRANSFERRED event.

    Decided on one read: a grab, transfer or close that lands first makes the update fail,
    and the caller learns which (ALREADY_GRABBED, CONVERSATION_CHANGED, CONVERSATION_CLOSED);
    a room that only changed (a join, a leave) is read again and the transfer retried.
    """
    note = clean_text(request.note, "note", required=False)
    read: Conversation | None = None
    for _ in range(ATTEMPTS):
        conversation = await load_visible(store, viewer, request.conversation_id)
        if read is not None:
            _raise_if_taken_meanwhile(read, conversation)
        if not is_admin_of(viewer, conversation):
            raise Refused(
                ErrorCode.FORBIDDEN,
                "Only admins of its team, and organization owners and admins, transfer a conversation.",
            )
        target = _target_team(viewer, conversation, request)
        if is_closed(conversation, now, t):
            raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed.")
        owner_id, room, owner_name = await _owner_and_room(store, viewer, conversation, target, request.to_member_id)
        change = changes.numbered(changes.transfer(conversation, target.id, room, owner_id, now))
        updated = await store.change_conversation(conversation.id, change)
        if updated is not None:
            line = await write_line(
                store,
                updated,
                SystemAction.TRANSFERRED,
                now,
                actor=viewer,
                target_id=owner_id,
                target_name=owner_name or target.name,
                note=note,
            )
            await events.publish(
                Event(
                    kind=EventKind.TRANSFERRED,
                    conversation=updated,
                    at=now,
                    actor_id=viewer.member_id,
                    previous_status=status_of(conversation, now, t),
                    owner_before=conversation.owner_id,
                    team_before=conversation.team_id,
                    note=note,
                    line_id=line.id,
                )
            )
            return Transferred(updated, note)
        read = conversation
    raise _kept_changing()


def _target_team(viewer: Viewer, conversation: Conversation, request: TransferRequest) -> Team:
    """The team it goes to (its own when none is named), of the viewer's organization."""
    team_id = request.to_team_id if request.to_team_id is not None else conversation.team_id
    target = viewer.team(team_id)  # the viewer carries every team of the organization
    if target is None:
        raise not_found("team", "toTeamId")
    if request.to_member_id is None and target.id == conversation.team_id:
        raise invalid(
            "It already is this team's: name another team (`toTeamId`), or a representative (`toMemberId`).",
            "toTeamId",
        )
    return target


async def _owner_and_room(
    store: TransferStore, viewer: Viewer, conversation: Conversation, target: Team, member_id: str | None
) -> tuple[str | None, tuple[str, ...], str | None]:
    """The new owner (``member_id`` once checked: a representative of the GRAB team it goes
    to; admins never own) and who of the room stays: those who may see the conversation in
    ``target`` without grabbing it (its admins, all its members in COLLABORATION,
    organization admins), and the new owner. A GRAB team's other representatives leave:
    they grab to enter. One read of members at most: the new owner, and those of the room
    the team alone doesn't keep (are they organization admins?). Also the new owner's
    name, for the history's line.
    """
    if member_id is not None and target.mode is not TeamMode.GRAB:
        raise invalid(
            "A COLLABORATION team's conversations are joined by its members, not handed to one: "
            "leave `toMemberId` out.",
            "toMemberId",
        )

    def kept_by_team(someone: str) -> bool:
        role = target.role_of(someone)
        return role is TeamRole.ADMIN or (role is not None and target.mode is TeamMode.COLLABORATION)

    undecided = [m for m in conversation.participants if m != member_id and not kept_by_team(m)]
    wanted = ([member_id] if member_id is not None and is_id(member_id) else []) + undecided
    members = {m.id: m for m in await store.members_by_ids(viewer.org_id, wanted)} if wanted else {}
    if member_id is not None:
        owner = members.get(member_id)
        if owner is None:
            raise not_found("member", "toMemberId")
        if target.role_of(member_id) is not TeamRole.REPRESENTATIVE or owner.role in _ORG_ADMINS:
            raise invalid(
                "Only a representative of the GRAB team it goes to can own it (admins never do).", "toMemberId"
            )
        if conversation.owner_id == member_id:
            raise invalid("It is already theirs.", "toMemberId")
        if not owner.active:
            raise invalid("Their account is deactivated.", "toMemberId")
    org_admins = {m for m in undecided if m in members and members[m].role in _ORG_ADMINS}
    room = tuple(m for m in conversation.participants if m == member_id or kept_by_team(m) or m in org_admins)
    if member_id is not None and member_id not in room:
        room = (*room, member_id)
    owner_name = members[member_id].name if member_id is not None else None
    return member_id, room, owner_name


_ORG_ADMINS = (OrgRole.OWNER, OrgRole.ADMIN)


def _raise_if_taken_meanwhile(read: Conversation, now_read: Conversation) -> None:
    """After a failed conditional update: refuse when someone else acted on what this one
    was decided on (its owner or its team), rather than undo what they did."""
    if now_read.owner_id is not None and now_read.owner_id != read.owner_id:
        raise Refused(ErrorCode.ALREADY_GRABBED, "Someone else owns it now: it was grabbed or handed over meanwhile.")
    if now_read.team_id != read.team_id:
        raise Refused(ErrorCode.CONVERSATION_CHANGED, "It was transferred meanwhile; look at it again.")


def _kept_changing() -> Refused:
    return Refused(ErrorCode.CONVERSATION_CHANGED, "It kept changing while this was tried; look at it again.")


async def release_conversation(
    store: ConversationStore, events: EventSink, viewer: Viewer, conversation_id: str, now: datetime, t: Thresholds
) -> Conversation:
    """Give a grabbed conversation back to its GRAB team's queue: no owner, the owner out of
    the room, new grab offers to the team. By its owner, or an admin of its team or the
    organization; releasing a conversation nobody owns is a no-op. One conditional update:
    still that owner's, in that team, open."""
    read: Conversation | None = None
    for _ in range(ATTEMPTS):
        conversation = await load_visible(store, viewer, conversation_id)
        if read is not None:
            _raise_if_taken_meanwhile(read, conversation)
        team = viewer.team(conversation.team_id)
        if team is None or team.mode is not TeamMode.GRAB:
            raise Refused(ErrorCode.NOT_GRAB_TEAM, "Only conversations of GRAB teams are grabbed and released.")
        owner = conversation.owner_id
        if owner is not None and owner != viewer.member_id and not is_admin_of(viewer, conversation):
            raise Refused(
                ErrorCode.FORBIDDEN,
                "Only its owner, or an admin of its team or the organization, releases a conversation.",
            )
        if is_closed(conversation, now, t):
            raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed.")
        if owner is None:  # nobody's: nothing to give back
            return conversation
        updated = await store.change_conversation(conversation.id, changes.numbered(changes.release(conversation, now)))
        if updated is not None:
            taken_from = None if owner == viewer.member_id else owner  # an admin gives it back for its owner
            line = await write_line(store, updated, SystemAction.RELEASED, now, actor=viewer, target_id=taken_from)
            await _publish(events, EventKind.RELEASED, conversation, updated, viewer, now, t, line.id)
            return updated
        read = conversation
    raise _kept_changing()


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
