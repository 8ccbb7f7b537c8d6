"""The status rules as pure functions of facts and a clock (no server, no database)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domain.criteria import matches
from domain.entities import Conversation
from domain.enums import ChannelType
from domain.enums import ConversationStatus as S
from domain.enums import StatusFilter as F
from domain.status import (
    Thresholds,
    closed_reason,
    earliest_transition_after_customer_message,
    filter_criteria,
    next_transition_at,
    status_of,
    unannounced_transition,
)

T = Thresholds(soon_after_s=180, overdue_after_s=300, auto_close_after_s=86400)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def conversation(**facts) -> Conversation:
    base = dict(
        id="c" * 24,
        org_id="o",
        team_id="t",
        channel_id="ch",
        channel_type=ChannelType.LINE,
        channel_name="Line",
        customer_id="c" * 24,
        last_customer_message_at=NOW - timedelta(seconds=10),
    )
    return Conversation(**{**base, **facts})


def test_each_status_at_its_boundary():
    waiting = lambda seconds, **more: conversation(waiting_since=NOW - timedelta(seconds=seconds), **more)  # noqa: E731
    assert status_of(waiting(10), NOW, T) is S.REP_NEEDED
    assert status_of(waiting(10, participants=("m",)), NOW, T) is S.PENDING
    assert status_of(waiting(180, participants=("m",)), NOW, T) is S.PENDING  # "more than" 3 minutes
    assert status_of(waiting(180.001), NOW, T) is S.SOON_TO_BE
    assert status_of(waiting(300), NOW, T) is S.SOON_TO_BE
    assert status_of(waiting(300.001, participants=("m",)), NOW, T) is S.OVERDUE
    assert status_of(conversation(), NOW, T) is S.REPLIED
    quiet = conversation(last_customer_message_at=NOW - timedelta(seconds=86400.001))
    assert status_of(quiet, NOW, T) is S.CLOSED and closed_reason(quiet, NOW, T).value == "INACTIVITY"
    manual = conversation(closed_at=NOW)
    assert status_of(manual, NOW, T) is S.CLOSED and closed_reason(manual, NOW, T).value == "MANUAL"


def test_filters_say_who_is_in_the_room_and_how_long_the_customer_waited():
    """The page's words: a conversation can match several filters; its badge is one of them."""
    waiting = lambda seconds, **more: conversation(waiting_since=NOW - timedelta(seconds=seconds), **more)  # noqa: E731

    def matched(c: Conversation) -> set[F]:
        return {f for f in F if f is not F.ONLINE and matches(filter_criteria(f, NOW, T), c)}

    cases = {
        waiting(10): {F.REP_NEEDED},
        waiting(10, participants=("m",)): {F.PENDING},
        waiting(200): {F.REP_NEEDED, F.SOON_TO_BE},
        waiting(200, participants=("m",)): {F.PENDING, F.SOON_TO_BE},
        waiting(400): {F.REP_NEEDED, F.OVERDUE},
        waiting(400, participants=("m", "n")): {F.PENDING, F.OVERDUE},
        conversation(): {F.REPLIED},
        conversation(participants=("m",)): {F.REPLIED},
        conversation(closed_at=NOW, waiting_since=NOW): {F.CLOSED},
        waiting(400, last_customer_message_at=NOW - timedelta(seconds=86401)): {F.CLOSED},
    }
    for c, expected in cases.items():
        assert matched(c) == expected, c
        assert F(status_of(c, NOW, T).value) in expected, c


def test_time_driven_transitions_name_the_status_they_leave():
    since = NOW - timedelta(seconds=301)
    assert unannounced_transition(conversation(waiting_since=since), NOW, T) == (S.SOON_TO_BE, S.OVERDUE)
    announced = conversation(waiting_since=since, announced_status="SOON_TO_BE")
    assert unannounced_transition(announced, NOW, T) == (S.SOON_TO_BE, S.OVERDUE)
    assert unannounced_transition(conversation(waiting_since=since, announced_status="OVERDUE"), NOW, T) is None
    fresh = conversation(waiting_since=NOW - timedelta(seconds=181), participants=("m",))
    assert unannounced_transition(fresh, NOW, T) == (S.PENDING, S.SOON_TO_BE)
    assert unannounced_transition(conversation(waiting_since=NOW), NOW, T) is None


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def test_next_transition_is_the_first_unannounced_threshold():
    since = NOW - seconds(60)
    waiting = conversation(waiting_since=since, last_customer_message_at=since)
    assert next_transition_at(waiting, T) == since + seconds(180)
    assert next_transition_at(replace(waiting, announced_status="SOON_TO_BE"), T) == since + seconds(300)
    overdue = replace(waiting, announced_status="OVERDUE")  # as the sweeper leaves it once past 300 s
    assert next_transition_at(overdue, T) == since + seconds(86400)
    # answered: only the inactivity close is left, counted from the customer's last message
    answered = conversation(last_customer_message_at=since)
    assert next_transition_at(answered, T) == since + seconds(86400)
    assert next_transition_at(conversation(closed_at=NOW), T) is None
    # a customer who kept writing while waiting: overdue still counts from the wait's start
    chatty = conversation(waiting_since=since, last_customer_message_at=NOW, announced_status="SOON_TO_BE")
    assert next_transition_at(chatty, T) == since + seconds(300)


def test_next_transition_agrees_with_the_sweepers_rule_on_a_clock():
    """Walking a clock past each moment: nothing is due up to it, the transition is due right after."""
    since = NOW - seconds(30)
    c = conversation(waiting_since=since, last_customer_message_at=since)
    announced = []
    for _ in range(3):
        moment = next_transition_at(c, T)
        assert unannounced_transition(c, moment, T) is None
        assert unannounced_transition(c, moment - seconds(1), T) is None
        previous, status = unannounced_transition(c, moment + timedelta(milliseconds=1), T)
        announced.append(status)
        c = replace(c, announced_status=status.value)
    assert announced == [S.SOON_TO_BE, S.OVERDUE, S.CLOSED]


def test_a_late_sweep_is_due_at_once_and_skips_what_is_overtaken():
    """After downtime the next moment is in the past; a threshold overtaken by a later one is not announced."""
    since = NOW - seconds(1000)
    c = conversation(waiting_since=since, last_customer_message_at=since)
    assert next_transition_at(c, T) == since + seconds(180) < NOW
    assert unannounced_transition(c, NOW, T) == (S.SOON_TO_BE, S.OVERDUE)
    long_gone = conversation(waiting_since=NOW - seconds(90000), last_customer_message_at=NOW - seconds(90000))
    assert unannounced_transition(long_gone, NOW, T)[1] is S.CLOSED
    # overdue sooner than soon (odd thresholds): SOON_TO_BE never shows, so only OVERDUE is awaited
    odd = Thresholds(soon_after_s=600, overdue_after_s=300, auto_close_after_s=86400)
    fresh = conversation(waiting_since=NOW, last_customer_message_at=NOW)
    assert next_transition_at(fresh, odd) == NOW + seconds(300)


def test_a_customer_message_never_makes_anything_due_before_the_earliest_threshold():
    earliest = earliest_transition_after_customer_message(NOW, T)
    assert earliest == NOW + seconds(180)
    started = conversation(waiting_since=NOW, last_customer_message_at=NOW)
    assert next_transition_at(started, T) == earliest
    reopened_quiet = conversation(last_customer_message_at=NOW)  # answered at once: only the close is left
    assert next_transition_at(reopened_quiet, T) >= earliest


def test_the_compiled_predicates_agree_with_the_interpreter():
    """``predicate`` (built once per rule, used for each row of a page) answers as ``matches``."""
    from domain.criteria import (
        Absent,
        Contains,
        Empty,
        Eq,
        Gt,
        In,
        Lacks,
        Lte,
        NonEmpty,
        Nothing,
        NotIn,
        Present,
        TextContains,
        all_of,
        any_of,
        predicate,
    )
    from domain.status import open_criteria, status_criteria

    rules = [status_criteria(s, NOW, T) for s in S] + [filter_criteria(f, NOW, T) for f in F]
    rules += [
        open_criteria(NOW, T),
        Nothing(),
        any_of(Eq("channel_type", "LINE"), In("team_id", ("x",))),
        all_of(NotIn("team_id", ("t",)), Present("owner_id")),
        any_of(Contains("participants", "m"), Lacks("participants", "m")),
        all_of(Empty("participants"), Absent("closed_at"), Lte("waiting_since", NOW)),
        any_of(NonEmpty("participants"), Gt("last_message.seq", 3)),
        TextContains(("customer_name", "customer_email"), "ADA"),
    ]
    rows = [
        conversation(),
        conversation(waiting_since=NOW - timedelta(seconds=200), participants=("m",), owner_id="m"),
        conversation(waiting_since=NOW - timedelta(seconds=400), customer_name="Ada Lovelace"),
        conversation(last_customer_message_at=NOW - timedelta(days=2), team_id="x", customer_email="ada@x.org"),
        conversation(closed_at=NOW, channel_type=ChannelType.WEB_WIDGET, customer_online_until=NOW + timedelta(1)),
    ]
    for rule in rules:
        compiled = predicate(rule)
        assert [compiled(row) for row in rows] == [matches(rule, row) for row in rows], rule
