"""Who is notified of what: the notification center's fan-out rules."""

from __future__ import annotations

from dataclasses import dataclass

from domain.entities import Team
from domain.enums import ConversationStatus, EventKind, NotificationKind, SenderKind, TeamMode
from domain.events import Event


@dataclass(frozen=True, slots=True)
class Recipient:
    member_id: str
    kind: NotificationKind


def recipients(event: Event, team: Team | None, sender_kind: SenderKind | None = None) -> list[Recipient]:
    """Members to notify of ``event``.

    A conversation that opens (or reopens, or is released by its owner in a
    GRAB team) is announced to the whole team: NEW_CONVERSATION in
    COLLABORATION teams, GRAB_OFFER in GRAB teams (admins see the offer but
    can't grab: whether an offer can be taken is judged when it is read, by
    :func:`domain.usecases.rooms.may_grab_now`). A customer message notifies the members in the room. A
    customer waiting too long alerts the room, or the team's admins when
    nobody is in it.
    """
    conversation = event.conversation
    if event.kind is EventKind.MESSAGE and sender_kind is SenderKind.CUSTOMER:
        return [Recipient(member_id, NotificationKind.NEW_MESSAGE) for member_id in conversation.participants]
    if team is None:
        return []
    if event.kind in (EventKind.CREATED, EventKind.REOPENED) or _released(event):
        if team.mode is TeamMode.GRAB:
            return [Recipient(m.member_id, NotificationKind.GRAB_OFFER) for m in team.memberships]
        return [Recipient(m.member_id, NotificationKind.NEW_CONVERSATION) for m in team.memberships]
    if event.kind is EventKind.STATUS_CHANGED and event.previous_status is not None:
        return _waiting_too_long(event, team)
    return []


def needs_team(event: Event) -> bool:
    """Whether the recipients depend on the team's members (the room alone decides the rest)."""
    return (event.kind in (EventKind.CREATED, EventKind.REOPENED, EventKind.STATUS_CHANGED)
            or _released(event))


def _released(event: Event) -> bool:
    return event.kind is EventKind.LEFT and event.owner_before is not None and event.conversation.owner_id is None


def _waiting_too_long(event: Event, team: Team) -> list[Recipient]:
    status = event.new_status
    if status not in (ConversationStatus.SOON_TO_BE, ConversationStatus.OVERDUE):
        return []
    room = list(event.conversation.participants) or team.admin_ids()
    return [Recipient(member_id, NotificationKind.WAITING_TOO_LONG) for member_id in room]
