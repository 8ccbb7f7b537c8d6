"""Custom channel adapters, the way back: agents' replies POSTed to an adapter's ``outboundUrl``,
and what the adapter then reports about each of them.

A channel served by an outside program (its customers' messages arrive through
``/channels/{id}/inbound``) may be given an outbound URL. Its agents' replies then get a
CHANNEL delivery like a native channel's; the delivery worker POSTs each one there, signed
with the channel's outbound secret (Standard Webhooks, as integrators' webhooks are), and
the adapter reports SENT / DELIVERED / READ / FAILED with ``POST /channels/{id}/delivery-status``.

The rules here: which channels may have one (any type but WEB_WIDGET, whose visitors this
server serves itself, and not one that also has provider credentials: a reply goes one way,
not two), what a URL may be (the webhooks' rules, :func:`domain.webhooks.url_problem`, and
where it points as the API judges it, ``checks``), and how a report lands (forward only,
on a reply of that channel).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.credentials import Credentials
from domain.delivery import statuses_that_may_become
from domain.entities import Channel, Message
from domain.enums import ChannelType, DeliveryStatus
from domain.errors import invalid
from domain.ports import AccountStore, CredentialSealer, EventSink
from domain.usecases.delivery import ConversationReader, announce
from domain.usecases.onboarding import connect_channel, require_org_admin
from domain.validation import check_string
from domain.visibility import Viewer
from domain.webhooks import url_problem

SECRET_PREFIX = "whsec_"  # a Standard Webhooks secret, as integrators' webhooks have
SECRET_BYTES = 32
MAX_REASON_LENGTH = 1000
# What an adapter may report; QUEUED is this server's own state.
REPORTABLE = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ, DeliveryStatus.FAILED)


class OutboundChecks(Protocol):
    """What only the API can judge: whether production asks for https, where a URL points."""

    @property
    def https_only(self) -> bool: ...
    async def url_refusal(self, url: str) -> str | None: ...


class OutboundSealer(Protocol):
    """Encrypts a channel's outbound signing secret, bound to the channel (HMAC needs it in clear)."""

    def seal_outbound_secret(self, channel_id: str, secret: str) -> str: ...


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """What ``updateChannel`` asks of the way back: a new URL, its removal, or a new secret."""

    url: str | None = None
    remove: bool = False
    rotate_secret: bool = False

    @property
    def asked(self) -> bool:
        return self.url is not None or self.remove or self.rotate_secret


@dataclass(frozen=True, slots=True)
class OutboundPlan:
    """What to write: the URL (None: kept), the sealed secret (None: kept), or ``clear`` both;
    ``secret`` is the new secret in clear, returned once."""

    url: str | None = None
    sealed_secret: str | None = None
    clear: bool = False
    secret: str | None = None


def new_outbound_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


async def checked_outbound_url(
    checks: OutboundChecks, type_: ChannelType, has_credentials: bool, given: str, field: str = "outboundUrl"
) -> str:
    """The URL as it will be stored, or INVALID_INPUT on ``field``."""
    if type_ is ChannelType.WEB_WIDGET:
        raise invalid("WEB_WIDGET replies reach the visitor's widget: they have no outbound URL.", field)
    if has_credentials:
        raise invalid(
            "This channel's replies go through its provider (it has credentials): a reply goes one way only.", field
        )
    url: str = check_string(given.strip(), field)
    problem = url_problem(url, checks.https_only) or await checks.url_refusal(url)
    if problem:
        raise invalid(problem, field)
    return url


async def plan_outbound(
    checks: OutboundChecks, sealer: OutboundSealer, channel: Channel, request: OutboundRequest
) -> OutboundPlan:
    """Checks a change of the way back (nothing written): a channel given its first URL gets a
    secret; a new URL keeps the secret; removing the URL forgets both."""
    if request.remove:
        if request.url is not None or request.rotate_secret:
            raise invalid("Either remove the outbound URL or change it, not both.", "removeOutboundUrl")
        return OutboundPlan(clear=True)
    url = None
    if request.url is not None:
        url = await checked_outbound_url(checks, channel.type, channel.credential_hints is not None, request.url)
    if request.rotate_secret and url is None and channel.outbound_url is None:
        raise invalid("The channel has no outbound URL to sign for.", "rotateOutboundSecret")
    secret = new_outbound_secret() if request.rotate_secret or channel.outbound_url is None else None
    return OutboundPlan(
        url=url,
        sealed_secret=sealer.seal_outbound_secret(channel.id, secret) if secret is not None else None,
        secret=secret,
    )


async def connect_adapter_channel(
    store: AccountStore,
    checks: OutboundChecks,
    sealer: OutboundSealer,
    viewer: Viewer,
    type_: ChannelType,
    name: str,
    team_id: str,
    now: datetime,
    outbound_url: str,
    *,
    credentials: Credentials | None = None,
    credential_sealer: CredentialSealer | None = None,
) -> tuple[Channel, str, str]:
    """A new channel served by an adapter both ways: returns it, its ingest key and its outbound
    secret, both shown only this once."""
    require_org_admin(viewer)
    url = await checked_outbound_url(checks, type_, credentials is not None, outbound_url)
    channel_id = store.new_id()
    secret = new_outbound_secret()
    channel, key = await connect_channel(
        store,
        viewer,
        type_,
        name,
        team_id,
        now,
        channel_id=channel_id,
        outbound=(url, sealer.seal_outbound_secret(channel_id, secret)),
    )
    return channel, key, secret


# Reports


@dataclass(frozen=True, slots=True)
class AdapterReport:
    """``POST /channels/{id}/delivery-status`` as the route parsed it."""

    message_id: str
    status: DeliveryStatus
    reason: str | None = None


class AdapterDeliveries(Protocol):
    async def report_in_channel(
        self,
        channel_id: str,
        message_id: str,
        status: DeliveryStatus,
        allowed_from: tuple[DeliveryStatus, ...],
        at: datetime,
        error_message: str | None = None,
    ) -> Message | None: ...
    async def channel_status(self, channel_id: str, message_id: str) -> DeliveryStatus | None: ...


@dataclass(frozen=True, slots=True)
class ReportResult:
    """``moved``: the delivery changed; else ``current`` is where it stands (None: no reply of
    this channel has that id, or it goes no way through the channel)."""

    moved: bool
    current: DeliveryStatus | None


async def record_adapter_status(
    deliveries: AdapterDeliveries,
    store: ConversationReader,
    events: EventSink,
    channel: Channel,
    report: AdapterReport,
    now: datetime,
) -> ReportResult:
    """The adapter's word on one reply of its channel, found by the message id it was sent
    (not an id of the adapter's: it may report before the worker has recorded its answer).
    Statuses only move forward (:func:`domain.delivery.may_become`)."""
    updated = await deliveries.report_in_channel(
        channel.id,
        report.message_id,
        report.status,
        statuses_that_may_become(report.status),
        now,
        report.reason if report.status is DeliveryStatus.FAILED else None,
    )
    if updated is not None:
        await announce(store, events, updated, now)
        return ReportResult(True, report.status)
    return ReportResult(False, await deliveries.channel_status(channel.id, report.message_id))
