"""What happened to a conversation, as told to subscribers and integrators."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from domain.criteria import Criteria, matches
from domain.entities import Conversation
from domain.enums import ConversationStatus, ConversationView, EventKind
from domain.listing import ConversationFilter, event_criteria
from domain.status import Thresholds
from domain.visibility import Viewer, Visibility, can_see


@dataclass(frozen=True, slots=True)
class Event:
    """One change. ``conversation`` is the state after it; ``owner_before`` (and, for a
    transfer, ``team_before``) lets a subscriber who could see it before a grab or a
    transfer learn that it is now hidden. ``note`` is what the admin wrote with a transfer.
    ``typing`` (TYPING events, which are never replayed) says whether the actor (a member,
    or the customer when ``actor_id`` is None) started or stopped typing.
    ``by_app``: ``actor_id`` is an app's (its API key's id), not a member's.
    ``line_id``: the system line the change wrote into the history (pushed by
    ``messageAdded``); ``mentioned``: members an internal note mentions, told by a
    MENTION notification (decided by the use case, who can see the conversation)."""

    kind: EventKind
    conversation: Conversation
    at: datetime
    actor_id: str | None = None
    previous_status: ConversationStatus | None = None
    message_id: str | None = None
    owner_before: str | None = None
    new_status: ConversationStatus | None = None
    id: int | None = None
    team_before: str | None = None
    note: str | None = None
    typing: bool | None = None
    by_app: bool = False
    line_id: str | None = None
    mentioned: tuple[str, ...] = ()


def visible_before(viewer: Viewer | Visibility, event: Event) -> bool:
    team_id = event.team_before or event.conversation.team_id
    return can_see(viewer, replace(event.conversation, owner_id=event.owner_before, team_id=team_id))


# The events that can take a conversation out of the sight of someone who saw it.
HIDING = (EventKind.GRABBED, EventKind.TRANSFERRED, EventKind.REENGAGED)


def route_event(viewer: Viewer | Visibility, event: Event, criteria: Criteria) -> EventKind | None:
    """Which event kind this subscriber receives, if any.

    Visible and matching the subscription's filter: the event itself. No longer
    visible because someone else grabbed it, or it was transferred to another team
    or owner, but visible before: ``HIDDEN`` (once, so the frontend can drop the
    row). Otherwise nothing.
    """
    if can_see(viewer, event.conversation):
        return event.kind if matches(criteria, event.conversation) else None
    if event.kind in HIDING and visible_before(viewer, event):
        return EventKind.HIDDEN
    return None


class Gone:
    """The conversation's state now, when it no longer exists."""


GONE = Gone()


def visible_now(viewer: Viewer | Visibility, kind: EventKind, now_state: Conversation | Gone | None) -> bool:
    """Whether an event judged at its own moment may still be delivered.

    ``now_state`` is the conversation as it is now when known to differ from
    the event's copy, or None when the event is its newest state. A viewer
    who may not see the conversation now gets nothing of it but HIDDEN (id
    only): a later event (the grab that hid it) tells them so, and nothing
    read at delivery time (messages, owner) can reveal what happened since.
    """
    if kind is EventKind.HIDDEN or now_state is None:
        return True
    return isinstance(now_state, Conversation) and can_see(viewer, now_state)


def judgment_key(
    visibility: Visibility, viewer: Viewer, flt: ConversationFilter
) -> tuple[Visibility, ConversationFilter, str | None]:
    """Everything :func:`delivered_kind` depends on.

    Subscribers with equal keys receive the same kind of every event, so
    fan-out judges an event once per key: the visibility, the filter, and the
    member only when the filter's view is about them (JOINED).
    """
    return visibility, flt, viewer.member_id if view_names_the_member(flt.view) else None


def view_names_the_member(view: ConversationView | None) -> bool:
    """Whether a filter with this view lists different conversations for members who see the same
    (JOINED: the ones *you* joined)."""
    return view is ConversationView.JOINED


def delivered_kind(
    viewer: Viewer, visibility: Visibility, flt: ConversationFilter, event: Event, t: Thresholds
) -> EventKind | None:
    """What a subscriber with this filter receives for the event, if anything."""
    criteria = event_criteria(viewer, flt, event.kind, event.at, t)
    return route_event(visibility, event, criteria)
