"""The status rules as pure functions of facts and a clock (no server, no database)."""

from datetime import datetime, timedelta, timezone

from domain.entities import Conversation
from domain.enums import ChannelType, ConversationStatus as S
from domain.status import Thresholds, closed_reason, status_of, unannounced_transition

T = Thresholds(soon_after_s=180, overdue_after_s=300, auto_close_after_s=86400)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def conversation(**facts) -> Conversation:
    base = dict(id="c" * 24, org_id="o", team_id="t", channel_id="ch", channel_type=ChannelType.LINE,
                channel_name="Line", customer_id="c" * 24, last_customer_message_at=NOW - timedelta(seconds=10))
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


def test_time_driven_transitions_name_the_status_they_leave():
    since = NOW - timedelta(seconds=301)
    assert unannounced_transition(conversation(waiting_since=since), NOW, T) == (S.SOON_TO_BE, S.OVERDUE)
    announced = conversation(waiting_since=since, announced_status="SOON_TO_BE")
    assert unannounced_transition(announced, NOW, T) == (S.SOON_TO_BE, S.OVERDUE)
    assert unannounced_transition(conversation(waiting_since=since, announced_status="OVERDUE"), NOW, T) is None
    fresh = conversation(waiting_since=NOW - timedelta(seconds=181), participants=("m",))
    assert unannounced_transition(fresh, NOW, T) == (S.PENDING, S.SOON_TO_BE)
    assert unannounced_transition(conversation(waiting_since=NOW), NOW, T) is None
