"""Conversation status, derived from stored facts and the current time.

Status is never stored as truth: a conversation that crossed the OVERDUE line
a second ago is OVERDUE in every answer, whether or not a background job ran.
Each status is one :mod:`domain.criteria` tree, so the same rule decides a
single conversation's status here and filters the list in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from domain.criteria import (
    Absent,
    Criteria,
    Empty,
    Eq,
    Gt,
    Gte,
    Lt,
    NonEmpty,
    Predicate,
    Present,
    all_of,
    any_of,
    predicate,
)
from domain.entities import Conversation
from domain.enums import ChannelType, ClosedReason, ConversationStatus, StatusFilter


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How long a customer may wait, and how long silence closes a chat (seconds)."""

    soon_after_s: float = 180
    overdue_after_s: float = 300
    auto_close_after_s: float = 86400
    presence_timeout_s: float = 60

    def inactivity_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.auto_close_after_s)


def closed_criteria(now: datetime, t: Thresholds) -> Criteria:
    return any_of(Present("closed_at"), Lt("last_customer_message_at", t.inactivity_cutoff(now)))


def open_criteria(now: datetime, t: Thresholds) -> Criteria:
    """The exact complement of :func:`closed_criteria`.

    Every conversation starts with its customer's first message, so
    ``last_customer_message_at`` is always set (the entity checks it), and no
    "or it is missing" branch is needed: the list's main filter stays one flat
    condition per field, which every database can answer from an index.
    """
    return all_of(Absent("closed_at"), Gte("last_customer_message_at", t.inactivity_cutoff(now)))


def status_criteria(status: ConversationStatus, now: datetime, t: Thresholds) -> Criteria:
    """The condition under which a conversation has ``status`` at ``now``."""
    if status is ConversationStatus.CLOSED:
        return closed_criteria(now, t)
    soon_line = now - timedelta(seconds=t.soon_after_s)
    overdue_line = now - timedelta(seconds=t.overdue_after_s)
    is_open = open_criteria(now, t)
    if status is ConversationStatus.OVERDUE:
        return all_of(is_open, Lt("waiting_since", overdue_line))
    if status is ConversationStatus.SOON_TO_BE:
        return all_of(is_open, Lt("waiting_since", soon_line), Gte("waiting_since", overdue_line))
    if status is ConversationStatus.REP_NEEDED:
        return all_of(is_open, Gte("waiting_since", soon_line), Empty("participants"))
    if status is ConversationStatus.PENDING:
        return all_of(is_open, Gte("waiting_since", soon_line), NonEmpty("participants"))
    return all_of(is_open, Absent("waiting_since"))


def online_criteria(now: datetime) -> Criteria:
    """A web-widget customer whose last heartbeat has not yet timed out."""
    return all_of(Eq("channel_type", ChannelType.WEB_WIDGET.value), Gt("customer_online_until", now))


def filter_criteria(status: StatusFilter, now: datetime, t: Thresholds) -> Criteria:
    """What a sidebar filter selects, in the page's words; unlike the one ``status`` a
    conversation shows (by precedence, :func:`status_of`), a conversation can match several.

    REP_NEEDED and PENDING say who is in the room while the customer waits, however
    long; SOON_TO_BE and OVERDUE say how long they have waited, whoever is in the room;
    REPLIED, the customer is the one expected to write. A customer who has waited past
    the overdue line with nobody in the room is both REP_NEEDED and OVERDUE.
    """
    if status is StatusFilter.ONLINE:
        return online_criteria(now)
    if status is StatusFilter.REP_NEEDED:
        return all_of(open_criteria(now, t), Present("waiting_since"), Empty("participants"))
    if status is StatusFilter.PENDING:
        return all_of(open_criteria(now, t), Present("waiting_since"), NonEmpty("participants"))
    # SOON_TO_BE, OVERDUE (by waiting time alone), REPLIED and CLOSED select what the status says
    return status_criteria(ConversationStatus(status.value), now, t)


_ORDER = (
    ConversationStatus.CLOSED,
    ConversationStatus.OVERDUE,
    ConversationStatus.SOON_TO_BE,
    ConversationStatus.REP_NEEDED,
    ConversationStatus.PENDING,
    ConversationStatus.REPLIED,
)


@lru_cache(maxsize=64)
def _status_rules(now: datetime, t: Thresholds) -> tuple[tuple[ConversationStatus, Predicate], ...]:
    """Each status's criteria at ``now`` as a predicate, in precedence order. A request
    judges every conversation of its page at one moment: the rules are built once for
    all of them."""
    return tuple((status, predicate(status_criteria(status, now, t))) for status in _ORDER)


def status_of(conversation: Conversation, now: datetime, t: Thresholds) -> ConversationStatus:
    for status, holds in _status_rules(now, t):
        if holds(conversation):
            return status
    raise AssertionError("status rules are exhaustive")  # pragma: no cover


@lru_cache(maxsize=64)
def _closed_rule(now: datetime, t: Thresholds) -> Predicate:
    return predicate(closed_criteria(now, t))


def is_closed(conversation: Conversation, now: datetime, t: Thresholds) -> bool:
    return _closed_rule(now, t)(conversation)


def closed_reason(conversation: Conversation, now: datetime, t: Thresholds) -> ClosedReason | None:
    if conversation.closed_at is not None:
        return conversation.closed_reason or ClosedReason.MANUAL
    if is_closed(conversation, now, t):
        return ClosedReason.INACTIVITY
    return None


def closed_at(conversation: Conversation, now: datetime, t: Thresholds) -> datetime | None:
    """When it closed; an inactivity close happened at the threshold, swept or not."""
    if conversation.closed_at is not None:
        return conversation.closed_at
    if is_closed(conversation, now, t):
        return _last_customer_message_at(conversation) + timedelta(seconds=t.auto_close_after_s)
    return None


def _last_customer_message_at(conversation: Conversation) -> datetime:
    at = conversation.last_customer_message_at
    assert at is not None, "Conversation.__post_init__ refuses a conversation without it"
    return at


def customer_online(online_until: datetime | None, now: datetime) -> bool:
    return online_until is not None and online_until > now


def email_fallback_active(conversation: Conversation, now: datetime) -> bool:
    """Agent replies go out by email: a web-widget customer, offline, with an email."""
    return (
        conversation.channel_type is ChannelType.WEB_WIDGET
        and not customer_online(conversation.customer_online_until, now)
        and bool(conversation.customer_email)
    )


TIME_DRIVEN = (ConversationStatus.SOON_TO_BE, ConversationStatus.OVERDUE, ConversationStatus.CLOSED)


def next_transition_at(conversation: Conversation, t: Thresholds) -> datetime | None:
    """The moment after which time alone next moves the status past what was last
    announced, or None when time alone has nothing left to announce (closed).

    The transition is due at every instant *after* the returned moment (statuses
    compare with "more than"). Status only changes with time at the three
    threshold crossings, and only forward (SOON_TO_BE, OVERDUE, CLOSED), so the
    answer is the first crossing into a status past the announced one; from
    then on :func:`unannounced_transition`, which the sweeper applies, finds it.
    The stored copy (``next_due_at``) lets the sweeper read only what is due.
    """
    if conversation.closed_at is not None:
        return None
    moments = []
    if conversation.waiting_since is not None:
        moments += [
            conversation.waiting_since + timedelta(seconds=t.soon_after_s),
            conversation.waiting_since + timedelta(seconds=t.overdue_after_s),
        ]
    if conversation.last_customer_message_at is not None:
        moments.append(conversation.last_customer_message_at + timedelta(seconds=t.auto_close_after_s))
    announced = _progress(conversation.announced_status)
    for moment in sorted(moments):
        if _progress(status_of(conversation, moment + _INSTANT, t).value) > announced:
            return moment
    return None


def _progress(status: str | None) -> int:
    """How far along SOON_TO_BE, OVERDUE, CLOSED a status is (0: none of them)."""
    return next((i + 1 for i, s in enumerate(TIME_DRIVEN) if s.value == status), 0)


def earliest_transition_after_customer_message(now: datetime, t: Thresholds) -> datetime:
    """The earliest moment from which a customer message at ``now`` can make a
    time-driven transition due: a conversation that starts waiting (or reopens)
    gets exactly this; one already waiting has its pending moments, no later.

    So ``$min(next_due_at, this)`` in the update that records the message keeps
    the stored ``next_due_at`` at or before the true next transition, without
    reading the conversation first. Early is harmless: the sweeper finds nothing
    to announce then and stores the next moment.
    """
    return now + timedelta(seconds=min(t.soon_after_s, t.overdue_after_s, t.auto_close_after_s))


_INSTANT = timedelta(microseconds=1)


def unannounced_transition(
    conversation: Conversation, now: datetime, t: Thresholds
) -> tuple[ConversationStatus, ConversationStatus] | None:
    """(previous, new) when time alone moved the status past what was last announced.

    Only SOON_TO_BE, OVERDUE and the inactivity close happen with time; the
    previous status is the announced one, or else the status just before the
    threshold that was crossed.
    """
    status = status_of(conversation, now, t)
    if status not in TIME_DRIVEN or status.value == conversation.announced_status:
        return None
    if conversation.announced_status:
        return ConversationStatus(conversation.announced_status), status
    return status_of(conversation, _just_before_threshold(conversation, status, t), t), status


def _just_before_threshold(conversation: Conversation, status: ConversationStatus, t: Thresholds) -> datetime:
    if status is ConversationStatus.CLOSED:
        return _last_customer_message_at(conversation) + timedelta(seconds=t.auto_close_after_s - 0.001)
    after = t.overdue_after_s if status is ConversationStatus.OVERDUE else t.soon_after_s
    # SOON_TO_BE and OVERDUE are only reached with waiting_since set (status_criteria)
    assert conversation.waiting_since is not None
    return conversation.waiting_since + timedelta(seconds=after - 0.001)
