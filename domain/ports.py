"""What the use cases need from the outside world, as Protocols.

Each port lists only what some use case calls. The MongoDB store
(``api/store/``), the event log and the password hasher live in ``api/`` and
satisfy these; the rules in ``domain/`` never import them. The inbound use
case's store (``InboundStore``) is declared beside it in
:mod:`domain.usecases.inbound`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from domain.changes import Change
from domain.credentials import Credentials
from domain.entities import (
    ApiKey,
    Attachment,
    Channel,
    Conversation,
    Customer,
    Member,
    Message,
    MessageTemplate,
    Notification,
    Organization,
    Team,
    WidgetSettings,
)
from domain.enums import ChannelType, OrgRole, TeamMode, TeamRole
from domain.events import Event


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, hashed: str | None, password: str) -> bool: ...


class EventSink(Protocol):
    async def publish(self, event: Event) -> None: ...
    async def publish_teams_changed(self, org_id: str, at: datetime) -> None: ...
    async def publish_api_key_revoked(self, org_id: str, key_id: str, at: datetime) -> None: ...
    async def publish_member_tokens_revoked(self, org_id: str, member_id: str, version: int, at: datetime) -> None:
        """Every token of the member older than ``version`` is refused on every instance."""

    async def publish_token_revoked(
        self, org_id: str, member_id: str, token_id: str, expires_at: datetime, at: datetime
    ) -> None:
        """One token (its ``jti``) is refused on every instance until it expires."""


class AccountStore(Protocol):
    async def create_organization(self, name: str, now: datetime) -> Organization: ...
    async def create_member(
        self, org_id: str, email: str, name: str, password_hash: str, role: OrgRole, now: datetime
    ) -> Member: ...
    async def member_by_email(self, email: str) -> tuple[Member, str] | None: ...
    async def member(self, org_id: str, member_id: str) -> Member | None: ...
    async def create_team(self, org_id: str, name: str, mode: TeamMode, now: datetime) -> Team: ...
    async def team(self, org_id: str, team_id: str) -> Team | None: ...
    async def set_team_member(self, org_id: str, team_id: str, member_id: str, role: TeamRole) -> Team | None: ...
    async def remove_team_member(self, org_id: str, team_id: str, member_id: str) -> Team | None: ...
    def new_id(self) -> str: ...
    async def create_channel(
        self,
        org_id: str,
        team_id: str,
        type_: ChannelType,
        name: str,
        key_hash: str,
        now: datetime,
        *,
        channel_id: str | None = None,
        credentials: str | None = None,
        credential_hints: dict[str, str] | None = None,
        widget: WidgetSettings | None = None,
        widget_secret: str | None = None,
    ) -> Channel:
        """``credentials``: the sealed token (:class:`CredentialSealer`), never the clear values;
        ``widget_secret``: a web widget's identity secret, sealed too."""
        ...

    async def org_channel(self, org_id: str, channel_id: str) -> Channel | None: ...
    async def set_channel_credentials(
        self, org_id: str, channel_id: str, credentials: str, credential_hints: dict[str, str], now: datetime
    ) -> Channel | None:
        """Replaces the sealed credentials of the organization's channel; None when it has no such channel."""
        ...

    async def create_template(
        self,
        org_id: str,
        name: str,
        body: str,
        channel: ChannelType | None,
        now: datetime,
        *,
        whatsapp_name: str | None = None,
        whatsapp_language: str | None = None,
    ) -> MessageTemplate: ...


class MemberAccounts(Protocol):
    """A member's account: password, sessions (a token version), active or not, role.

    Each write that cuts sessions raises the member's token version and returns
    the new one, which the caller announces (:meth:`EventSink.publish_member_tokens_revoked`).
    """

    async def member(self, org_id: str, member_id: str) -> Member | None: ...
    async def password_hash(self, org_id: str, member_id: str) -> str | None: ...
    async def set_password(self, org_id: str, member_id: str, password_hash: str, now: datetime) -> int | None:
        """The new password, any pending reset cleared; returns the new token version."""

    async def start_password_reset(
        self, org_id: str, member_id: str, reset_hash: str, expires_at: datetime, now: datetime
    ) -> int | None:
        """The password cleared (no password logs in) and a reset pending; returns the new token version."""

    async def member_by_reset(self, reset_hash: str, now: datetime) -> Member | None:
        """The member whose pending, unexpired reset has this hash."""

    async def complete_password_reset(
        self, reset_hash: str, password_hash: str, now: datetime
    ) -> tuple[Member, int] | None:
        """The new password, only while that reset is still pending and unexpired (it is used
        up); the member and their new token version."""

    async def deactivate(self, org_id: str, member_id: str, now: datetime) -> tuple[Member, int] | None:
        """Marks the member inactive (if active) and raises the version; None if already inactive or absent."""

    async def reactivate(self, org_id: str, member_id: str) -> Member | None: ...
    async def cut_sessions(self, org_id: str, member_id: str) -> int | None:
        """Only a new token version (all sessions end); returns it."""

    async def set_role(self, org_id: str, member_id: str, role: OrgRole, was: OrgRole) -> Member | None:
        """Only while the member still has role ``was``; None otherwise."""

    async def owner_count(self, org_id: str) -> int:
        """Active owners of the organization."""

    async def revoke_token(
        self, org_id: str, member_id: str, token_id: str, expires_at: datetime, now: datetime
    ) -> None: ...
    async def open_rooms_of_member(self, org_id: str, member_id: str) -> list[Conversation]:
        """Open conversations, in any team, whose room holds the member or that the member owns."""


class ApiKeyStore(Protocol):
    """API keys, stored with their hash (never the key); ``teams`` checks the teams a key names."""

    def new_id(self) -> str: ...
    async def teams(self, org_id: str) -> tuple[Team, ...]: ...
    async def create_api_key(self, key: ApiKey, key_hash: str) -> ApiKey: ...
    async def api_key(self, org_id: str, key_id: str) -> ApiKey | None: ...
    async def api_keys_of(self, org_id: str) -> list[ApiKey]: ...
    async def revoke_api_key(self, org_id: str, key_id: str, now: datetime) -> ApiKey | None:
        """Marks the key revoked; None when the organization has no such key still working."""
        ...


class CredentialSealer(Protocol):
    """Encrypts a channel's provider credentials into an opaque token bound to that channel
    (``api/channels/credentials.py``); the domain never sees a key or a cipher."""

    def seal(self, channel_id: str, credentials: Credentials) -> str: ...


class ConversationStore(Protocol):
    async def conversation(self, org_id: str, conversation_id: str) -> Conversation | None: ...
    async def change_conversation(self, conversation_id: str, change: Change) -> Conversation | None: ...
    async def open_rooms_of(self, org_id: str, team_id: str, member_id: str) -> list[Conversation]: ...
    async def take_message_seq(self, conversation_id: str, member_id: str | None = None) -> Conversation | None: ...
    async def take_open_message_seq(self, conversation_id: str) -> Conversation | None: ...
    async def record_member_message(self, message: Message, answer: Change) -> Conversation | None: ...
    async def insert_message(self, message: Message, *, offer: bool = True) -> Message: ...
    async def customer(self, org_id: str, customer_id: str) -> Customer | None: ...
    async def update_customer(self, customer: Customer, changes: dict[str, Any], now: datetime) -> Customer: ...
    async def template(self, org_id: str, template_id: str) -> MessageTemplate | None: ...
    async def channel(self, channel_id: str) -> Channel | None: ...
    async def customer_id_by_external_id(self, channel_id: str, external_id: str) -> str | None: ...
    def new_id(self) -> str: ...
    async def message(self, org_id: str, message_id: str) -> Message | None: ...
    async def members(self, org_id: str) -> list[Member]: ...


class FileSaver(Protocol):
    async def save(
        self, org_id: str, conversation_id: str, filename: str, content_type: str, data: bytes
    ) -> Attachment: ...


class LoginAttempts(Protocol):
    """The login throttle's counters, one per key, each over a window starting at its first attempt."""

    async def take(self, key: str, now: datetime, window_s: float) -> int:
        """Atomically count one attempt for ``key``; the count in its window after this one."""
        ...

    async def give_back(self, keys: list[str], now: datetime, window_s: float) -> None: ...

    async def recent(self, key: str, now: datetime, window_s: float) -> tuple[int, datetime | None]:
        """(attempts counted in the key's current window, when the last was counted)."""
        ...


class TeamDirectory(Protocol):
    async def team_by_id(self, team_id: str) -> Team | None: ...


class NotificationStore(Protocol):
    """Each member's notifications; every read and write is scoped to that member."""

    def new_id(self) -> str: ...
    async def add(self, notifications: list[Notification]) -> None: ...
    async def get(self, member_id: str, notification_id: str) -> Notification | None: ...
    async def page(
        self, member_id: str, unread_only: bool, limit: int, older_than: str | None
    ) -> list[Notification]: ...
    async def mark_read(self, member_id: str, ids: list[str]) -> int: ...


__all__ = [
    "AccountStore",
    "ApiKeyStore",
    "ConversationStore",
    "CredentialSealer",
    "EventSink",
    "FileSaver",
    "LoginAttempts",
    "NotificationStore",
    "PasswordHasher",
    "TeamDirectory",
]
