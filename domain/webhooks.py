"""Integrator webhooks: what one is, when a failed delivery is tried again, which URLs it may have.

A webhook follows the event log with a cursor of its own (``cursor``: the last event id
handled) and POSTs, in log order, the result of its GraphQL subscription document for
each event it would deliver. A failed delivery is tried again on a growing schedule
(:func:`retry_delay`) and holds back the events after it, so an endpoint that comes
back gets everything, in order; one failing without a break for long enough is
disabled (:func:`should_disable`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
MAX_QUERY_LENGTH = 20_000
MAX_TEAMS = 100
MAX_WEBHOOKS_PER_ORG = 50

# After a rotation, deliveries carry a signature with the previous secret too, this long.
SECRET_OVERLAP = timedelta(hours=24)

# Waits after the 1st, 2nd, ... consecutive failure of one event: seconds, then minutes, then
# hours. The eight steps take about a day to reach the last one (13 h); it then repeats
# every 4 h until a delivery gets through or the webhook is disabled.
RETRY_DELAYS_S: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400)
RETRY_JITTER = 0.1  # each wait is drawn within ±10 % of its step


@dataclass(frozen=True, slots=True)
class Webhook:
    """An integrator's endpoint and what it receives.

    ``query`` is the subscription document (None: the default selection). ``cursor`` is
    the last event id handled; ``attempts`` counts the consecutive failures of the event
    after it, ``failing_since`` when the first of them happened and ``next_attempt_at``
    when it is tried again. ``disabled_reason`` says why the server turned it off
    (None when it is enabled, or was turned off by hand).
    """

    id: str
    org_id: str
    url: str
    query: str | None
    team_ids: tuple[str, ...]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime | None = None
    cursor: int = 0
    attempts: int = 0
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    disabled_reason: str | None = None
    previous_secret_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt to deliver an event (or a ping) to a webhook's endpoint.

    ``message_id`` is the ``webhook-id`` header sent: the same for every attempt of one
    event. ``status_code`` is None when no answer came (``error`` says why);
    ``response`` is the beginning of the answer's body. ``next_retry_at`` is set on a
    failure that will be tried again.
    """

    id: str
    webhook_id: str
    org_id: str
    message_id: str
    event_id: int | None
    at: datetime
    succeeded: bool
    latency_ms: int
    status_code: int | None = None
    response: str | None = None
    error: str | None = None
    next_retry_at: datetime | None = None


def message_id(webhook_id: str, event_id: int) -> str:
    """The ``webhook-id`` of an event's delivery: stable across retries, restarts and replays,
    so a receiver de-duplicates on it."""
    return f"evt_{event_id}_{webhook_id}"


def retry_delay(failures: int, random: Callable[[], float]) -> timedelta:
    """How long to wait after the ``failures``-th consecutive failure (1 for the first).

    ``random`` returns a number in [0, 1): the jitter that keeps many webhooks failing
    together (one receiver's outage) from retrying in step.
    """
    step = RETRY_DELAYS_S[min(max(failures, 1), len(RETRY_DELAYS_S)) - 1]
    return timedelta(seconds=step * (1 + RETRY_JITTER * (2 * random() - 1)))


def should_disable(failing_since: datetime | None, now: datetime, disable_after_s: float) -> bool:
    """Whether an endpoint failing without a break since ``failing_since`` is given up on."""
    return failing_since is not None and (now - failing_since).total_seconds() >= disable_after_s


def url_problem(url: str, https_only: bool) -> str | None:
    """What is wrong with a webhook URL as written (None: nothing); where it points is judged
    by the server when it sends (``api/webhooks/address.py``)."""
    if not url or len(url) > MAX_URL_LENGTH:
        return f"The URL must be 1 to {MAX_URL_LENGTH} characters."
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "The URL may not contain spaces or control characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "The URL must start with https:// (or http:// outside production)."
    if https_only and parts.scheme != "https":
        return "The URL must use https in production."
    if not parts.hostname:
        return "The URL has no host."
    if parts.username is not None or parts.password is not None:
        return "The URL may not carry a user name or password: the signature authenticates deliveries."
    if parts.fragment:
        return "The URL may not have a fragment (#…): it would not be sent."
    if port == 0:
        return "Not a valid port."
    return None
