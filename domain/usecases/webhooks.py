"""Integrators' webhooks: who may manage them, what they may point at and receive, replays,
and who is told when one is given up on.

Webhooks are managed by the organization's owners and admins, and by apps whose API key
has MANAGE_WEBHOOKS (:func:`may_manage_webhooks` is the one place that says so). Each
webhook sees the conversations of the teams it names, all of them, as an admin of those
teams does (GRAB privacy protects representatives from
each other, not from the admins who set the webhook up). Where a URL resolves, and
whether a query is a valid subscription, are judged by the API (``checks``), which knows
the network and the schema.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from domain.entities import Notification, Team
from domain.enums import ApiKeyScope, NotificationKind
from domain.errors import forbidden, invalid, not_found
from domain.ports import NotificationStore
from domain.validation import check_string, clean_line, is_id
from domain.visibility import Viewer, has_scope, visibility_of
from domain.webhooks import (
    MAX_DESCRIPTION_LENGTH,
    MAX_QUERY_LENGTH,
    MAX_TEAMS,
    MAX_WEBHOOKS_PER_ORG,
    SECRET_OVERLAP,
    Webhook,
    WebhookDelivery,
    url_problem,
)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_DELIVERIES_PAGE = 100
UNSET: Any = object()


class WebhookStore(Protocol):
    """The ``webhooks`` and ``webhook_deliveries`` collections, as the management use cases need them.

    Every write that changes what a webhook sends (its settings, its secret, its cursor)
    also ends any lease on it, so a follower busy with the old settings stops at its next
    write and the webhook is taken up afresh.
    """

    def new_id(self) -> str: ...
    async def count(self, org_id: str) -> int: ...
    async def add(self, webhook: Webhook, sealed_secret: str) -> None: ...
    async def get(self, org_id: str, webhook_id: str) -> Webhook | None: ...
    async def of_org(self, org_id: str) -> list[Webhook]: ...
    async def save_settings(self, webhook: Webhook, reenabled: bool, now: datetime) -> Webhook | None: ...
    async def rotate_secret(
        self, org_id: str, webhook_id: str, sealed_secret: str, previous_expires_at: datetime, now: datetime
    ) -> Webhook | None: ...
    async def rewind(self, org_id: str, webhook_id: str, cursor: int, now: datetime) -> Webhook | None: ...
    async def remove(self, org_id: str, webhook_id: str) -> bool: ...
    async def deliveries(
        self, org_id: str, webhook_id: str, limit: int, older_than: str | None
    ) -> list[WebhookDelivery]: ...


class EventPositions(Protocol):
    """Where the event log stands: a new webhook starts after the last id handed out."""

    async def issued_id(self) -> int: ...
    async def oldest_id_of(self, org_id: str) -> int | None: ...


class Teams(Protocol):
    async def team(self, org_id: str, team_id: str) -> Team | None: ...


class SecretSealer(Protocol):
    """Encrypts a webhook's signing secret for storage, bound to the webhook (HMAC needs it in clear)."""

    def seal(self, webhook_id: str, secret: str) -> str: ...


class Checks(Protocol):
    """What only the API can judge: where a URL points, whether a query runs."""

    https_only: bool

    async def url_refusal(self, url: str) -> str | None: ...
    async def query_refusal(self, query: str) -> str | None: ...


class AdminDirectory(Protocol):
    async def org_admin_ids(self, org_id: str) -> list[str]: ...


def may_manage_webhooks(viewer: Viewer) -> bool:
    """Organization owners and admins, and apps whose API key has the MANAGE_WEBHOOKS scope.

    An app is held to its key's teams: it names only teams it sees, and sees only the
    webhooks all of whose teams it sees (:func:`_within_reach`).
    """
    return viewer.is_org_admin or has_scope(viewer, ApiKeyScope.MANAGE_WEBHOOKS)


def _within_reach(viewer: Viewer, team_ids: tuple[str, ...]) -> bool:
    """Whether the caller may see every conversation of these teams (owners and admins: any team)."""
    reach = visibility_of(viewer).team_ids
    return reach is None or set(team_ids) <= reach


def require_manager(viewer: Viewer) -> None:
    if not may_manage_webhooks(viewer):
        raise forbidden("Only organization owners and admins (or an API key with MANAGE_WEBHOOKS) manage webhooks.")


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


@dataclass(frozen=True, slots=True)
class WebhookDraft:
    url: str
    team_ids: list[str]
    query: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """Fields left UNSET are kept. ``query`` None or empty: back to the default selection;
    ``description`` None or empty: cleared."""

    id: str
    url: Any = UNSET
    query: Any = UNSET
    team_ids: Any = UNSET
    description: Any = UNSET
    enabled: Any = UNSET


async def create_webhook(
    store: WebhookStore,
    events: EventPositions,
    teams: Teams,
    sealer: SecretSealer,
    checks: Checks,
    viewer: Viewer,
    draft: WebhookDraft,
    now: datetime,
) -> tuple[Webhook, str]:
    """A new webhook, delivering the events after the newest one; returns it and its secret,
    which is never shown again."""
    require_manager(viewer)
    # the cheap checks first; the URL's, which may ask DNS, last
    team_ids = await _checked_teams(teams, viewer, draft.team_ids)
    description = clean_line(draft.description, "description", max_length=MAX_DESCRIPTION_LENGTH)
    if await store.count(viewer.org_id) >= MAX_WEBHOOKS_PER_ORG:
        raise invalid(f"An organization has at most {MAX_WEBHOOKS_PER_ORG} webhooks.", "url")
    query = await _checked_query(checks, draft.query)
    url = await _checked_url(checks, draft.url)
    webhook = Webhook(
        id=store.new_id(),
        org_id=viewer.org_id,
        url=url,
        query=query,
        team_ids=team_ids,
        description=description,
        enabled=True,
        created_at=now,
        updated_at=now,
        cursor=await events.issued_id(),
    )
    secret = new_secret()
    await store.add(webhook, sealer.seal(webhook.id, secret))
    return webhook, secret


async def update_webhook(
    store: WebhookStore, teams: Teams, checks: Checks, viewer: Viewer, changes: WebhookChanges, now: datetime
) -> Webhook:
    """Changes what a webhook sends and where. Enabling one the server disabled resumes it
    where it stopped, its failures forgotten."""
    webhook = await webhook_of(store, viewer, changes.id)
    updated = webhook
    if changes.url is not UNSET:
        updated = replace(updated, url=await _checked_url(checks, changes.url))
    if changes.query is not UNSET:
        updated = replace(updated, query=await _checked_query(checks, changes.query))
    if changes.team_ids is not UNSET:
        updated = replace(updated, team_ids=await _checked_teams(teams, viewer, changes.team_ids))
    if changes.description is not UNSET:
        description = clean_line(changes.description, "description", max_length=MAX_DESCRIPTION_LENGTH)
        updated = replace(updated, description=description)
    reenabled = False
    if changes.enabled is not UNSET and changes.enabled is not None:
        reenabled = bool(changes.enabled) and not webhook.enabled
        updated = replace(updated, enabled=bool(changes.enabled))
    saved = await store.save_settings(updated, reenabled, now)
    if saved is None:
        raise not_found("webhook")
    return saved


async def delete_webhook(store: WebhookStore, viewer: Viewer, webhook_id: str) -> str:
    webhook = await webhook_of(store, viewer, webhook_id)
    if not await store.remove(viewer.org_id, webhook.id):
        raise not_found("webhook")
    return webhook.id


async def rotate_webhook_secret(
    store: WebhookStore, sealer: SecretSealer, viewer: Viewer, webhook_id: str, now: datetime
) -> tuple[Webhook, str]:
    """A new secret, returned once; deliveries are signed with the previous one as well
    for :data:`domain.webhooks.SECRET_OVERLAP`, so receivers can switch without a gap."""
    webhook = await webhook_of(store, viewer, webhook_id)
    secret = new_secret()
    rotated = await store.rotate_secret(
        viewer.org_id, webhook.id, sealer.seal(webhook.id, secret), now + SECRET_OVERLAP, now
    )
    if rotated is None:
        raise not_found("webhook")
    return rotated, secret


async def redeliver_webhook(
    store: WebhookStore, events: EventPositions, viewer: Viewer, webhook_id: str, from_event_id: str, now: datetime
) -> Webhook:
    """Sends again every event from ``from_event_id`` on (those still kept), in order, with
    their original ``webhook-id``s, then carries on with new ones."""
    webhook = await webhook_of(store, viewer, webhook_id)
    first = _event_id(from_event_id)
    newest = await events.issued_id()
    if first > newest:
        raise invalid(f"No event {first} yet: the newest is {newest}.", "fromEventId")
    oldest = await events.oldest_id_of(viewer.org_id)
    if oldest is None or first < oldest:
        raise invalid(
            "Events that old are no longer kept (see IMBRACE_EVENT_RETENTION_S)"
            + (f": the oldest kept is {oldest}." if oldest is not None else "."),
            "fromEventId",
        )
    rewound = await store.rewind(viewer.org_id, webhook.id, first - 1, now)
    if rewound is None:
        raise not_found("webhook")
    return rewound


async def find_webhook(store: WebhookStore, viewer: Viewer, webhook_id: str) -> Webhook | None:
    """The organization's webhook with this id; None when there is none."""
    require_manager(viewer)
    found = await store.get(viewer.org_id, webhook_id) if is_id(webhook_id) else None
    return found if found is not None and _within_reach(viewer, found.team_ids) else None


async def webhook_of(store: WebhookStore, viewer: Viewer, webhook_id: str) -> Webhook:
    found = await find_webhook(store, viewer, webhook_id)
    if found is None:
        raise not_found("webhook")
    return found


async def webhooks_of(store: WebhookStore, viewer: Viewer) -> list[Webhook]:
    require_manager(viewer)
    return [found for found in await store.of_org(viewer.org_id) if _within_reach(viewer, found.team_ids)]


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    has_next_page: bool


async def deliveries_of(
    store: WebhookStore, viewer: Viewer, webhook: Webhook, first: int, after: str | None
) -> DeliveryPage:
    """A webhook's delivery attempts, newest first, after the cursor ``after`` (an attempt id)."""
    require_manager(viewer)
    if first < 0 or first > MAX_DELIVERIES_PAGE:
        raise invalid(f"`first` must be between 0 and {MAX_DELIVERIES_PAGE}.", "first")
    if after is not None and not is_id(after):
        raise invalid("Not a valid cursor.", "after")
    found = await store.deliveries(webhook.org_id, webhook.id, first + 1, after)
    return DeliveryPage(deliveries=found[:first], has_next_page=len(found) > first)


async def notify_disabled(
    notifications: NotificationStore, directory: AdminDirectory, webhook: Webhook, at: datetime
) -> dict[str, str]:
    """Tells the organization's owners and admins that a webhook was disabled; returns the
    notifications' ids by member."""
    created = [
        Notification(
            id=notifications.new_id(),
            org_id=webhook.org_id,
            member_id=member_id,
            kind=NotificationKind.WEBHOOK_DISABLED,
            conversation_id=None,
            created_at=at,
            webhook_id=webhook.id,
        )
        for member_id in await directory.org_admin_ids(webhook.org_id)
    ]
    if created:
        await notifications.add(created)
    return {n.member_id: n.id for n in created}


async def _checked_url(checks: Checks, given: Any) -> str:
    if not isinstance(given, str):
        raise invalid("`url` is required.", "url")
    url: str = check_string(given.strip(), "url")
    problem = url_problem(url, checks.https_only) or await checks.url_refusal(url)
    if problem:
        raise invalid(problem, "url")
    return url


async def _checked_query(checks: Checks, given: Any) -> str | None:
    if not isinstance(given, str) or not given.strip():
        return None
    query: str = check_string(given, "query", max_length=MAX_QUERY_LENGTH)
    problem = await checks.query_refusal(query)
    if problem:
        raise invalid(problem, "query")
    return query


async def _checked_teams(teams: Teams, viewer: Viewer, team_ids: Any) -> tuple[str, ...]:
    if not team_ids:
        raise invalid("Name at least one team: the webhook sees only its teams' conversations.", "teamIds")
    if len(team_ids) > MAX_TEAMS:
        raise invalid(f"At most {MAX_TEAMS} teams.", "teamIds")
    unique = tuple(dict.fromkeys(str(t) for t in team_ids))
    for team_id in unique:
        found = await teams.team(viewer.org_id, team_id) if is_id(team_id) else None
        if found is None or not _within_reach(viewer, (team_id,)):
            raise not_found("team", "teamIds")
    return unique


def _event_id(text: str) -> int:
    value = int(text) if isinstance(text, str) and text.isdigit() and len(text) <= 18 else 0
    if value <= 0:
        raise invalid("`fromEventId` must be an event id.", "fromEventId")
    return value
