"""The things the inbox stores, as plain immutable values.

Identifiers are opaque strings; timestamps are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.delivery import TemplateCall
from domain.enums import (
    ApiKeyScope,
    ChannelType,
    ClosedReason,
    DeliveryStatus,
    DeliveryVia,
    MessageKind,
    NotificationKind,
    OrgRole,
    SenderKind,
    SystemAction,
    TeamMode,
    TeamRole,
)


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    org_id: str
    email: str
    name: str
    role: OrgRole
    created_at: datetime
    deactivated_at: datetime | None = None  # set: cannot log in, every token refused
    token_version: int = 0  # raised when all the member's sessions are cut; tokens carry it

    @property
    def active(self) -> bool:
        return self.deactivated_at is None


@dataclass(frozen=True, slots=True)
class TeamMembership:
    member_id: str
    role: TeamRole


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    org_id: str
    name: str
    mode: TeamMode
    memberships: tuple[TeamMembership, ...] = ()
    created_at: datetime | None = None

    def role_of(self, member_id: str) -> TeamRole | None:
        for membership in self.memberships:
            if membership.member_id == member_id:
                return membership.role
        return None

    def admin_ids(self) -> list[str]:
        return [m.member_id for m in self.memberships if m.role is TeamRole.ADMIN]


@dataclass(frozen=True, slots=True)
class WidgetSettings:
    """How a WEB_WIDGET channel is embedded: its public key (``wk_…``, in the pages' script tag),
    the exact origins that may embed it, and whether sessions may be bound to a site's own user
    ids (identity verification; the secret itself stays sealed in the store)."""

    key: str
    allowed_origins: tuple[str, ...] = ()
    identity_verification: bool = False


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    org_id: str
    team_id: str
    type: ChannelType
    name: str
    created_at: datetime | None = None
    credential_hints: dict[str, str] | None = None  # None: no provider credentials
    widget: WidgetSettings | None = None  # WEB_WIDGET channels set up for the widget


@dataclass(frozen=True, slots=True)
class Location:
    city: str | None = None
    country: str | None = None
    country_code: str | None = None  # ISO 3166-1 alpha-2, when known


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    org_id: str
    channel_id: str
    channel_type: ChannelType
    external_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    online_until: datetime | None = None
    last_active_at: datetime | None = None
    location: Location | None = None
    created_at: datetime | None = None
    # what the web widget's page reports: its IANA time zone, language tag and the page's URL
    time_zone: str | None = None
    language: str | None = None
    page_url: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """One customer's thread on one channel, with the facts its status derives from.

    ``waiting_since`` is the first customer message not yet followed by a
    member reply; ``participants`` are the members in the room; ``owner_id``
    is who grabbed it (GRAB teams). ``customer_*`` fields are copies of the
    customer's searchable details and presence, kept so the list can filter
    and search in one query. ``last_message`` is a copy of the newest stored
    message (deliveries included), kept so the list reads no messages.
    ``next_due_at`` is when the sweeper should look at it next: never later than
    :func:`domain.status.next_transition_at`, possibly earlier. ``reopened_at`` is
    when a customer message last reopened it.

    Read state: ``customer_messages`` counts the customer's messages (taken with
    their numbers, in the same update); ``reads`` holds each member's read mark;
    ``read_by`` the members who have read everything the customer wrote (every
    customer message empties it), so "unread for me" is an indexed filter.
    """

    id: str
    org_id: str
    team_id: str
    channel_id: str
    channel_type: ChannelType
    channel_name: str
    customer_id: str
    customer_name: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    customer_online_until: datetime | None = None
    participants: tuple[str, ...] = ()
    owner_id: str | None = None
    waiting_since: datetime | None = None
    last_customer_message_at: datetime | None = None
    last_message_at: datetime | None = None
    message_seq: int = 0
    closed_at: datetime | None = None
    closed_reason: ClosedReason | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    announced_status: str | None = None
    last_message: Message | None = None
    next_due_at: datetime | None = None
    reopened_at: datetime | None = None
    customer_messages: int = 0
    read_by: tuple[str, ...] = ()
    reads: tuple[ReadMark, ...] = ()  # ordered by member id

    def read_mark(self, member_id: str) -> ReadMark | None:
        return next((mark for mark in self.reads if mark.member_id == member_id), None)

    def __post_init__(self) -> None:
        # Opened by the customer's first message: status rules rely on it.
        if self.last_customer_message_at is None:
            raise ValueError("a conversation starts with a customer message: last_customer_message_at is required")


@dataclass(frozen=True, slots=True)
class ReadMark:
    """How far a member has read a conversation: up to message number ``seq``, which
    came after ``customer_messages`` customer messages; ``at``: when they said so."""

    member_id: str
    seq: int
    customer_messages: int
    at: datetime


@dataclass(frozen=True, slots=True)
class SystemLine:
    """What a SYSTEM message records: ``action`` by ``actor_id`` (None: the customer or
    the server), about ``target_id`` when it concerns someone else (a transfer's new owner)."""

    action: SystemAction
    actor_id: str | None = None
    target_id: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file on a message. ``media_ref`` is the provider's handle on a file a customer sent
    (a WhatsApp media id, a Messenger CDN URL) while it is not yet copied into the file
    store; ``url`` is empty until then."""

    url: str
    mime_type: str | None = None
    name: str | None = None
    size: int | None = None
    file_id: str | None = None
    media_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One way a message goes to the customer. ``error_code`` and ``last_error`` are the
    provider's words on the last failure; ``provider_message_id`` its id once sent."""

    via: DeliveryVia
    status: DeliveryStatus
    attempts: int = 0
    last_error: str | None = None
    at: datetime | None = None
    error_code: str | None = None
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    org_id: str
    conversation_id: str
    seq: int
    sender_kind: SenderKind
    kind: MessageKind
    text: str | None
    created_at: datetime
    sender_member_id: str | None = None
    sender_customer_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    sent_at: datetime | None = None
    provider_message_id: str | None = None
    channel_id: str | None = None
    deliveries: tuple[Delivery, ...] = ()
    template_call: TemplateCall | None = None
    # the conversation's customer_messages as of this message (itself included): a read
    # mark up to this message knows how many customer messages it covers
    customer_messages: int = 0
    system: SystemLine | None = None  # SYSTEM lines only
    sender_app_id: str | None = None  # the API key of an APP message


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    id: str
    org_id: str
    name: str
    body: str
    channel: ChannelType | None
    created_at: datetime | None = None
    whatsapp_name: str | None = None
    whatsapp_language: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """``conversation_id`` names the conversation it is about; None for a WEBHOOK_DISABLED
    notification, which names its webhook (``webhook_id``) instead."""

    id: str
    org_id: str
    member_id: str
    kind: NotificationKind
    conversation_id: str | None
    created_at: datetime
    read: bool = False
    webhook_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An integration's credential, acting as an app (never a member) of its organization.

    The key itself is shown once and never stored: only its SHA-256 hash is kept
    (by the store, not here) with ``prefix``, its first characters, to recognise it.
    ``team_ids`` empty: every team of the organization, present and future.
    """

    id: str
    org_id: str
    name: str
    prefix: str
    scopes: tuple[ApiKeyScope, ...]
    team_ids: tuple[str, ...]
    created_at: datetime
    created_by: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
