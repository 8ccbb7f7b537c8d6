"""The notification center: who is told of what, and what a member may list and mark read.

The event log calls :func:`notify` for every event it publishes, once, on the
instance that made the change; the event then names the notifications so
every instance can push them to the members connected to it. Whether a
GRAB_OFFER can still be taken is not stored: it is judged when read, by
:func:`domain.usecases.rooms.may_grab_now`.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.availability import announced_to, ready_ids
from domain.entities import Notification, Team
from domain.enums import ConversationStatus, EventKind, NotificationKind, SenderKind, TeamMode
from domain.errors import invalid
from domain.events import Event
from domain.ports import MemberDirectory, NotificationStore, TeamDirectory
from domain.validation import is_id
from domain.visibility import Viewer

MAX_PAGE = 100
MAX_MARK = 500


@dataclass(frozen=True, slots=True)
class Recipient:
    member_id: str
    kind: NotificationKind


def recipients(
    event: Event, team: Team | None, sender_kind: SenderKind | None = None, ready: frozenset[str] = frozenset()
) -> list[Recipient]:
    """Members to notify of ``event``.

    A conversation that opens (or reopens, or is released in a GRAB team) is
    announced to the team (only to those of ``ready``, the members online and
    AVAILABLE, who can take it, when there are some; see
    :func:`domain.availability.announced_to`): NEW_CONVERSATION in COLLABORATION teams,
    GRAB_OFFER in GRAB teams (admins see the offer but can't grab: whether an
    offer can be taken is judged when it is read, by
    :func:`domain.usecases.rooms.may_grab_now`). A conversation transferred to a
    team is announced the same way, but as TRANSFERRED in a COLLABORATION team;
    one handed to a representative tells them alone (TRANSFERRED). A customer
    message notifies the members in the room. A customer waiting too long alerts
    the room, or the team's admins when nobody is in it.
    An internal note tells the members it mentions (MENTION; the use case keeps
    only those who can see the conversation).
    """
    conversation = event.conversation
    if event.kind is EventKind.MESSAGE and event.mentioned:
        return [Recipient(member_id, NotificationKind.MENTION) for member_id in event.mentioned]
    if event.kind is EventKind.MESSAGE and sender_kind is SenderKind.CUSTOMER:
        return [Recipient(member_id, NotificationKind.NEW_MESSAGE) for member_id in conversation.participants]
    if event.kind is EventKind.TRANSFERRED and conversation.owner_id is not None:
        return [Recipient(conversation.owner_id, NotificationKind.TRANSFERRED)]
    if team is None:
        return []
    if announces(event):
        audience = announced_to(team, ready)
        if team.mode is TeamMode.GRAB:
            kind = NotificationKind.GRAB_OFFER
        elif event.kind is EventKind.TRANSFERRED:
            kind = NotificationKind.TRANSFERRED
        else:
            kind = NotificationKind.NEW_CONVERSATION
        return [Recipient(member_id, kind) for member_id in audience]
    if event.kind is EventKind.STATUS_CHANGED and event.previous_status is not None:
        return _waiting_too_long(event, team)
    return []


def announces(event: Event) -> bool:
    """New work for a team: a conversation that opens, reopens, is released, or is transferred to the team."""
    return (
        event.kind in (EventKind.CREATED, EventKind.REOPENED)
        or _released(event)
        or (event.kind is EventKind.TRANSFERRED and event.conversation.owner_id is None)
    )


def needs_team(event: Event) -> bool:
    """Whether the recipients depend on the team's members (the room or the new owner decides the rest)."""
    return (
        event.kind in (EventKind.CREATED, EventKind.REOPENED, EventKind.STATUS_CHANGED)
        or _released(event)
        or (event.kind is EventKind.TRANSFERRED and event.conversation.owner_id is None)
    )


def _released(event: Event) -> bool:
    """Its owner gave it up: left the room (or was taken out of the team), or it was released."""
    return (
        event.kind in (EventKind.LEFT, EventKind.RELEASED)
        and event.owner_before is not None
        and event.conversation.owner_id is None
    )


def _waiting_too_long(event: Event, team: Team) -> list[Recipient]:
    status = event.new_status
    if status not in (ConversationStatus.SOON_TO_BE, ConversationStatus.OVERDUE):
        return []
    room = list(event.conversation.participants) or team.admin_ids()
    return [Recipient(member_id, NotificationKind.WAITING_TOO_LONG) for member_id in room]


async def notify(
    notifications: NotificationStore, teams: TeamDirectory, event: Event, presence: MemberDirectory | None = None
) -> dict[str, str]:
    """Store the notifications ``event`` causes; returns their ids by member.

    The team is read only when the recipients depend on it, and its members'
    availability (one read for the whole team) only when the event announces
    new work; whoever caused the event is not told of it.
    """
    conversation = event.conversation
    team = await teams.team_by_id(conversation.team_id) if needs_team(event) else None
    ready: frozenset[str] = frozenset()
    if team is not None and presence is not None and announces(event) and team.memberships:
        members = await presence.members_by_ids(conversation.org_id, [m.member_id for m in team.memberships])
        ready = ready_ids(members, event.at)
    sender = SenderKind.CUSTOMER if event.actor_id is None else SenderKind.MEMBER
    found = [r for r in recipients(event, team, sender, ready) if r.member_id != event.actor_id]
    if not found:
        return {}
    created = [
        Notification(
            id=notifications.new_id(),
            org_id=conversation.org_id,
            member_id=r.member_id,
            kind=r.kind,
            conversation_id=conversation.id,
            created_at=event.at,
            read=False,
        )
        for r in found
    ]
    await notifications.add(created)
    return {n.member_id: n.id for n in created}


@dataclass(frozen=True, slots=True)
class NotificationPage:
    notifications: list[Notification]
    has_next_page: bool


async def notifications_of(
    notifications: NotificationStore, viewer: Viewer, unread_only: bool, first: int, after: str | None
) -> NotificationPage:
    """The viewer's own notifications, newest first, after the cursor ``after`` (a notification id)."""
    if first < 0 or first > MAX_PAGE:
        raise invalid(f"`first` must be between 0 and {MAX_PAGE}.", "first")
    if after is not None and not is_id(after):
        raise invalid("Not a valid cursor.", "after")
    found = await notifications.page(viewer.member_id, unread_only, first + 1, after)
    return NotificationPage(notifications=found[:first], has_next_page=len(found) > first)


async def notification_of(
    notifications: NotificationStore, viewer: Viewer, notification_id: str
) -> Notification | None:
    """One of the viewer's notifications; None for another member's."""
    return await notifications.get(viewer.member_id, notification_id)


async def mark_read(notifications: NotificationStore, viewer: Viewer, ids: list[str]) -> int:
    """Marks those of ``ids`` that are the viewer's; others' ids, and malformed ones, are ignored."""
    if len(ids) > MAX_MARK:
        raise invalid(f"At most {MAX_MARK} ids at once.", "ids")
    return await notifications.mark_read(viewer.member_id, [i for i in ids if is_id(i)])
