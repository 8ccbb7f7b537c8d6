"""The conversations page: which conversations a filter selects, at a given moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.criteria import (
    Contains,
    Criteria,
    In,
    Nothing,
    TextContains,
    all_of,
    any_of,
)
from domain.enums import ChannelType, ConversationView, EventKind, StatusFilter
from domain.errors import invalid
from domain.status import Thresholds, closed_criteria, filter_criteria, open_criteria
from domain.visibility import Viewer, visible_criteria

MAX_PAGE_SIZE = 100
MAX_SEARCH_LENGTH = 200
SEARCH_FIELDS = ("customer_name", "customer_email", "customer_phone")


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    view: ConversationView = ConversationView.ALL
    team_ids: tuple[str, ...] | None = None
    statuses: tuple[StatusFilter, ...] | None = None
    channels: tuple[ChannelType, ...] | None = None
    search: str | None = None
    channel_ids: tuple[str, ...] | None = None


def check_page_size(first: int) -> None:
    if first < 0 or first > MAX_PAGE_SIZE:
        raise invalid(f"`first` must be between 0 and {MAX_PAGE_SIZE}.", "first")


def narrowing_criteria(viewer: Viewer, flt: ConversationFilter, mentioned_in: tuple[str, ...] = ()) -> Criteria:
    """Everything but the status: visibility, view, teams, channel types and channels, search.

    ``search`` matches the customer's name, email or phone (a substring), or, given
    ``mentioned_in``, the conversations whose messages hold its words (found by the store
    beforehand: :meth:`api.store.search.MessageSearcher.conversations_mentioning`).
    """
    if flt.search is not None and len(flt.search) > MAX_SEARCH_LENGTH:
        raise invalid(f"`search` is limited to {MAX_SEARCH_LENGTH} characters.", "search")
    parts: list[Criteria] = [visible_criteria(viewer)]
    if flt.view is ConversationView.JOINED:
        parts.append(Contains("participants", viewer.member_id))
    if flt.team_ids is not None:
        parts.append(In("team_id", tuple(flt.team_ids)) if flt.team_ids else Nothing())
    if flt.channels is not None:
        parts.append(In("channel_type", tuple(c.value for c in flt.channels)) if flt.channels else Nothing())
    if flt.channel_ids is not None:
        parts.append(In("channel_id", tuple(flt.channel_ids)) if flt.channel_ids else Nothing())
    if flt.search and flt.search.strip():
        by_customer = TextContains(SEARCH_FIELDS, flt.search.strip())
        parts.append(any_of(by_customer, In("_id", mentioned_in)) if mentioned_in else by_customer)
    return all_of(*parts)


def status_selection(flt: ConversationFilter, now: datetime, t: Thresholds) -> Criteria:
    """The union of the requested statuses; without any, every open conversation.

    Closed conversations appear only when CLOSED is asked for, so ONLINE alone
    means "online customers in open conversations".
    """
    if not flt.statuses:
        return open_criteria(now, t)
    chosen = [filter_criteria(s, now, t) for s in flt.statuses if s is not StatusFilter.CLOSED]
    parts: list[Criteria] = []
    if chosen:
        parts.append(all_of(open_criteria(now, t), any_of(*chosen)))
    if StatusFilter.CLOSED in flt.statuses:
        parts.append(closed_criteria(now, t))
    return any_of(*parts)


def list_criteria(
    viewer: Viewer, flt: ConversationFilter, now: datetime, t: Thresholds, mentioned_in: tuple[str, ...] = ()
) -> Criteria:
    return all_of(narrowing_criteria(viewer, flt, mentioned_in), status_selection(flt, now, t))


def count_criteria(status: StatusFilter, now: datetime, t: Thresholds) -> Criteria:
    """What one sidebar badge counts, within the narrowing (same as filtering on it alone)."""
    return status_selection(ConversationFilter(statuses=(status,)), now, t)


def event_criteria(viewer: Viewer, flt: ConversationFilter, kind: EventKind, at: datetime, t: Thresholds) -> Criteria:
    """Which events a filtered subscriber receives: those of conversations its list would
    show at the event's moment; a CLOSED event also reaches lists that showed the row before."""
    if kind is EventKind.CLOSED:
        return narrowing_criteria(viewer, flt)
    return list_criteria(viewer, flt, at, t)
