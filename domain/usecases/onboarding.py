"""Setting up an organization: members, teams, channels, templates."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Protocol

from domain.credentials import Credentials, check_credentials, hints
from domain.entities import Channel, Member, MessageTemplate, Organization, Team, WidgetSettings
from domain.enums import ChannelType, ErrorCode, OrgRole, TeamMode, TeamRole
from domain.errors import AlreadyStored, Refused, forbidden, invalid, not_found
from domain.ports import AccountStore, ConversationStore, CredentialSealer, EventSink, PasswordHasher
from domain.status import Thresholds
from domain.templates import placeholders
from domain.usecases.rooms import leave_team_rooms
from domain.validation import check_string, clean_email, clean_line, clean_text, is_id
from domain.visibility import Viewer

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def require_org_admin(viewer: Viewer) -> None:
    if not viewer.is_org_admin:
        raise forbidden()


def check_password(password: str) -> str:
    if not isinstance(password, str) or not (MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH):
        raise Refused(
            ErrorCode.INVALID_INPUT,
            f"Passwords are {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            "password",
        )
    return check_string(password, "password")


async def create_organization(
    store: AccountStore,
    hasher: PasswordHasher,
    org_name: str,
    email: str,
    password: str,
    name: str | None,
    now: datetime,
) -> tuple[Organization, Member]:
    """The first step of a new install: an organization and its OWNER."""
    org_name = clean_line(org_name, "org", required=True)
    email = clean_email(email, required=True)
    check_password(password)
    if await store.member_by_email(email) is not None:
        raise Refused(ErrorCode.ALREADY_EXISTS, f"A member with email {email} already exists.", "email")
    org = await store.create_organization(org_name, now)
    owner = await _create_member(
        store, hasher, org.id, email, name or email.split("@")[0], password, OrgRole.OWNER, now
    )
    return org, owner


async def invite_member(
    store: AccountStore,
    hasher: PasswordHasher,
    viewer: Viewer,
    email: str,
    name: str,
    password: str,
    role: OrgRole,
    now: datetime,
) -> Member:
    require_org_admin(viewer)
    if role is OrgRole.OWNER and viewer.org_role is not OrgRole.OWNER:
        raise forbidden("Only the owner may make another owner.")
    email = clean_email(email, required=True)
    name = clean_line(name, "name", required=True)
    check_password(password)
    return await _create_member(store, hasher, viewer.org_id, email, name, password, role, now)


async def _create_member(
    store: AccountStore,
    hasher: PasswordHasher,
    org_id: str,
    email: str,
    name: str,
    password: str,
    role: OrgRole,
    now: datetime,
) -> Member:
    try:
        return await store.create_member(org_id, email, name, await hasher.hash(password), role, now)
    except AlreadyStored as error:
        raise Refused(ErrorCode.ALREADY_EXISTS, f"A member with email {email} already exists.", "email") from error


async def create_team(store: AccountStore, viewer: Viewer, name: str, mode: TeamMode, now: datetime) -> Team:
    require_org_admin(viewer)
    name = clean_line(name, "name", required=True)
    try:
        return await store.create_team(viewer.org_id, name, mode, now)
    except AlreadyStored as error:
        raise Refused(ErrorCode.ALREADY_EXISTS, f"A team named {name!r} already exists.", "name") from error


async def add_team_member(store: AccountStore, viewer: Viewer, team_id: str, member_id: str, role: TeamRole) -> Team:
    require_org_admin(viewer)
    team = await _team(store, viewer, team_id)
    if not is_id(member_id) or await store.member(viewer.org_id, member_id) is None:
        raise not_found("member", "memberId")
    updated = await store.set_team_member(viewer.org_id, team.id, member_id, role)
    if updated is None:
        raise not_found("team", "teamId")
    return updated


class TeamRoomsStore(AccountStore, ConversationStore, Protocol):
    """Taking a member out of a team touches the team and its conversations."""


async def remove_team_member(
    store: TeamRoomsStore, events: EventSink, viewer: Viewer, team_id: str, member_id: str, now: datetime, t: Thresholds
) -> Team:
    """Out of the team, then out of its rooms.

    The membership goes first, so the member can no longer act on the team's
    conversations; subscribers re-read their teams (the member stops seeing
    at once); then every open room of the team is left and what they owned is
    released for a new grab (:func:`domain.usecases.rooms.leave_team_rooms`).
    """
    require_org_admin(viewer)
    team = await _team(store, viewer, team_id)
    if team.role_of(member_id) is None:
        raise not_found("team member", "memberId")
    updated = await store.remove_team_member(viewer.org_id, team.id, member_id)
    if updated is None:
        raise not_found("team", "teamId")
    await events.publish_teams_changed(viewer.org_id, now)
    member = await store.member(viewer.org_id, member_id)  # named in the rooms' histories
    await leave_team_rooms(
        store, events, updated, member_id, now, t, by=viewer, member_name=member.name if member else None
    )
    return updated


async def connect_channel(
    store: AccountStore,
    viewer: Viewer,
    type_: ChannelType,
    name: str,
    team_id: str,
    now: datetime,
    *,
    credentials: Credentials | None = None,
    sealer: CredentialSealer | None = None,
    channel_id: str | None = None,
    widget: WidgetSettings | None = None,
    widget_secret: str | None = None,
    outbound: tuple[str, str] | None = None,
) -> tuple[Channel, str]:
    """A new channel and its ingest key, shown once; only a hash of the key is kept.

    ``credentials`` (the provider's, for WhatsApp and Messenger) are checked with
    everything else before anything is written, then sealed by ``sealer`` under the
    channel's id, chosen first so the token is bound to that channel. ``widget`` and
    ``widget_secret`` (already sealed under ``channel_id``) are a web widget's settings
    (:func:`domain.usecases.widget.connect_widget_channel`); ``outbound`` a custom adapter's
    checked URL and sealed secret (:func:`domain.usecases.adapters.connect_adapter_channel`).
    """
    require_org_admin(viewer)
    name = clean_line(name, "name", required=True)
    checked = check_credentials(type_, credentials) if credentials is not None else None
    team = await _team(store, viewer, team_id)
    key = "ik_" + secrets.token_urlsafe(32)
    if checked is not None and sealer is None:
        raise TypeError("connect_channel needs a sealer to store credentials")
    channel_id = channel_id or store.new_id()
    channel = await store.create_channel(
        viewer.org_id,
        team.id,
        type_,
        name,
        hash_ingest_key(key),
        now,
        channel_id=channel_id,
        credentials=sealer.seal(channel_id, checked) if checked is not None and sealer is not None else None,
        credential_hints=hints(checked) if checked is not None else None,
        widget=widget,
        widget_secret=widget_secret,
        outbound_url=outbound[0] if outbound else None,
        outbound_secret=outbound[1] if outbound else None,
    )
    return channel, key


async def update_channel_credentials(
    store: AccountStore,
    sealer: CredentialSealer,
    viewer: Viewer,
    channel_id: str,
    credentials: Credentials,
    now: datetime,
) -> Channel:
    """Replace a channel's provider credentials (owners and admins); the old ones are gone.

    A channel of another organization is reported as absent; credentials of another
    provider than the channel's type are refused on ``credentials``. Nothing is
    written unless everything holds.
    """
    require_org_admin(viewer)
    channel = await store.org_channel(viewer.org_id, channel_id) if is_id(channel_id) else None
    if channel is None:
        raise not_found("channel", "channelId")
    checked = check_credentials(channel.type, credentials)
    if channel.outbound_url is not None:
        raise invalid(
            "This channel's replies go to its adapter (outboundUrl): remove it with updateChannel first.",
            "credentials",
        )
    updated = await store.set_channel_credentials(
        viewer.org_id, channel.id, sealer.seal(channel.id, checked), hints(checked), now
    )
    if updated is None:
        raise not_found("channel", "channelId")
    return updated


def hash_ingest_key(key: str) -> str:
    """Ingest keys carry 256 random bits, so a fast hash is as safe as a slow KDF
    here and keeps every webhook call cheap."""
    return hashlib.sha256(key.encode()).hexdigest()


def ingest_key_matches(key: str | None, stored_hash: str) -> bool:
    if not key:
        return False
    return secrets.compare_digest(hash_ingest_key(key), stored_hash)


async def create_message_template(
    store: AccountStore,
    viewer: Viewer,
    name: str,
    body: str,
    channel: ChannelType | None,
    now: datetime,
    *,
    whatsapp_name: str | None = None,
    whatsapp_language: str | None = None,
) -> MessageTemplate:
    """Templates are shared by the organization; admins (of the org or of a team) write them.
    ``whatsapp_name``/``whatsapp_language`` say which approved WhatsApp template it stands for."""
    if not viewer.is_org_admin and not any(viewer.is_team_admin(t.id) for t in viewer.teams):
        raise forbidden("Only admins create message templates.")
    name = clean_line(name, "name", required=True)
    body = clean_text(body, "body")
    if len(placeholders(body)) > 50:
        raise Refused(ErrorCode.INVALID_INPUT, "At most 50 placeholders per template.", "body")
    if whatsapp_name is not None and not WHATSAPP_TEMPLATE_NAME.fullmatch(whatsapp_name):
        raise invalid("WhatsApp template names are lowercase letters, digits and `_`.", "whatsappName")
    if whatsapp_language is not None and not WHATSAPP_LANGUAGE.fullmatch(whatsapp_language):
        raise invalid("Use a WhatsApp language code such as `en_US` or `de`.", "whatsappLanguage")
    return await store.create_template(
        viewer.org_id, name, body, channel, now, whatsapp_name=whatsapp_name, whatsapp_language=whatsapp_language
    )


WHATSAPP_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
WHATSAPP_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")


async def _team(store: AccountStore, viewer: Viewer, team_id: str) -> Team:
    team = await store.team(viewer.org_id, team_id) if is_id(team_id) else None
    if team is None:
        raise not_found("team", "teamId")
    return team
