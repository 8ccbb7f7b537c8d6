"""Getting an agent's message to the customer: what a send can come back as, and the rules
every channel shares (which deliveries a message gets, how a status may move, when to try
again, which Messenger window applies, whether WeChat's is still open).

Provider modules (``api/channels/``) only translate: a stored message into the
provider's request, the provider's answer into one :data:`Outcome`, a webhook into
:class:`StatusReport` / :class:`Watermark` values. Everything decided here is decided
once, for every provider.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from domain.enums import DeliveryStatus, MessageKind

# Outcomes of one attempt


@dataclass(frozen=True, slots=True)
class Sent:
    """The provider took the message; its id lets later status reports find it (unless
    ``reports_by_id`` is False: a custom adapter reports by our message id, and its own id,
    which nothing makes unique, is only kept for people to read)."""

    provider_message_id: str | None = None
    reports_by_id: bool = True


@dataclass(frozen=True, slots=True)
class Retry:
    """Worth trying again: connection error, timeout, 429, 5xx, or a provider code that
    means "later". ``after_s`` is the provider's ``Retry-After`` when it gave one;
    ``unknown`` says the provider may have the message already."""

    reason: str
    code: str | None = None
    after_s: float | None = None
    unknown: bool = False  # the request may have arrived (lost answer): a resend may duplicate it


@dataclass(frozen=True, slots=True)
class Failed:
    """Will never succeed as it is (other 4xx): recorded at once with the provider's words."""

    message: str
    code: str | None = None


Outcome = Sent | Retry | Failed


# What a provider module is handed


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    """A stored file as the provider fetches it: a signed, expiring absolute URL. ``file_id``
    names it in our file store, for a provider that takes uploads rather than links (WeChat)."""

    url: str
    mime_type: str | None = None
    name: str | None = None
    file_id: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateCall:
    """A WhatsApp template as Meta knows it: its approved name, language and body values in order."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


class MessengerTag(str, Enum):
    """Meta's ``messaging_type`` for a Messenger send, by the time since the customer wrote."""

    RESPONSE = "RESPONSE"  # within 24 h
    HUMAN_AGENT = "HUMAN_AGENT"  # from 24 h to 7 days, as MESSAGE_TAG with tag HUMAN_AGENT


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One stored agent message, ready for a provider module to turn into its request."""

    message_id: str
    kind: MessageKind
    recipient: str
    text: str | None = None
    files: tuple[OutgoingFile, ...] = ()
    template: TemplateCall | None = None
    messenger_tag: MessengerTag | None = None
    conversation_id: str | None = None  # what a custom adapter is told beside the message
    created_at: datetime | None = None


# What a provider reports back later (webhooks)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The provider's word on one message it took (WhatsApp ``statuses[]``)."""

    provider_message_id: str
    status: DeliveryStatus
    at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Watermark:
    """Everything sent to ``recipient`` up to ``up_to`` reached ``status`` (Messenger ``delivery`` / ``read``)."""

    recipient: str
    status: DeliveryStatus
    up_to: datetime


# Rules

_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
}


def may_become(current: DeliveryStatus, reported: DeliveryStatus) -> bool:
    """Statuses only move forward; providers report out of order (read before delivered)
    and more than once. FAILED ends a delivery that has not reached the customer; one
    already delivered or read stays so."""
    if current is DeliveryStatus.FAILED:
        return False
    if reported is DeliveryStatus.FAILED:
        return current in (DeliveryStatus.QUEUED, DeliveryStatus.SENT)
    return _RANK[reported] > _RANK[current]


def is_final(status: DeliveryStatus) -> bool:
    """Nothing a provider or a watermark reports can move a delivery on from here (READ, FAILED)."""
    return not any(may_become(status, reported) for reported in DeliveryStatus)


def statuses_that_may_become(reported: DeliveryStatus) -> tuple[DeliveryStatus, ...]:
    """The condition a store update is made under, so two reports can't race backwards."""
    return tuple(s for s in DeliveryStatus if may_become(s, reported))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; ``Retry-After`` is a floor, never ignored."""

    max_attempts: int = 10
    base_s: float = 1.0
    max_backoff_s: float = 600.0


def next_attempt_at(
    outcome: Retry,
    attempts: int,
    now: datetime,
    policy: RetryPolicy,
    jitter: Callable[[], float] = random.random,
) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or None: give up.

    The wait is drawn between half and all of ``base * 2**(attempts-1)`` (capped), so
    that many deliveries failing together (a provider outage) don't come back together.
    """
    if attempts >= policy.max_attempts:
        return None
    ceiling = min(policy.base_s * 2 ** (attempts - 1), policy.max_backoff_s)
    wait = ceiling * (0.5 + 0.5 * jitter())
    if outcome.after_s is not None:
        wait = max(wait, min(outcome.after_s, policy.max_backoff_s * 6))
    return now + timedelta(seconds=wait)


MESSENGER_STANDARD_WINDOW = timedelta(hours=24)
MESSENGER_HUMAN_AGENT_WINDOW = timedelta(days=7)


def messenger_tag(last_customer_message_at: datetime | None, now: datetime) -> MessengerTag | None:
    """Meta's rule: a page answers freely within 24 h of the person's last message, and with
    the HUMAN_AGENT tag up to 7 days; after that, not at all (None)."""
    if last_customer_message_at is None:
        return None
    waited = now - last_customer_message_at
    if waited <= MESSENGER_STANDARD_WINDOW:
        return MessengerTag.RESPONSE
    if waited <= MESSENGER_HUMAN_AGENT_WINDOW:
        return MessengerTag.HUMAN_AGENT
    return None


WECHAT_WINDOW = timedelta(hours=48)


def wechat_window_open(last_customer_message_at: datetime | None, now: datetime) -> bool:
    """WeChat's rule for customer service messages: an official account may write to a
    follower only within 48 h of their last message (``errcode`` 45015 after that)."""
    return last_customer_message_at is not None and now - last_customer_message_at <= WECHAT_WINDOW
