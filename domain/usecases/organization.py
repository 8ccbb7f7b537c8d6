"""Changing and removing what an organization is made of: teams, channels, message templates.

Creating them is :mod:`domain.usecases.onboarding`. Every use case here checks everything
before its first write, and answers NOT_FOUND for another organization's object.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from domain import changes
from domain.entities import Channel, Conversation, MessageTemplate, Team
from domain.enums import ChannelType, ErrorCode, EventKind, OrgRole, SystemAction, TeamMode, TeamRole
from domain.errors import AlreadyStored, Refused, forbidden, invalid, not_found
from domain.events import Event
from domain.ports import EventSink
from domain.status import Thresholds, is_closed, status_of
from domain.templates import placeholders
from domain.usecases.customers import UNSET
from domain.usecases.lines import write_line
from domain.usecases.onboarding import WHATSAPP_LANGUAGE, WHATSAPP_TEMPLATE_NAME, hash_ingest_key, require_org_admin
from domain.usecases.rooms import TransferRequest, TransferStore, transfer_conversation
from domain.validation import clean_line, clean_text, is_id
from domain.visibility import Viewer

# --- teams ----------------------------------------------------------------------------------------


class TeamStore(TransferStore, Protocol):
    async def team(self, org_id: str, team_id: str) -> Team | None: ...
    async def rename_team(self, org_id: str, team_id: str, name: str) -> Team | None: ...
    async def set_team_mode(self, org_id: str, team_id: str, mode: TeamMode) -> Team | None: ...
    async def delete_team(self, org_id: str, team_id: str) -> bool: ...
    async def team_in_use(self, org_id: str, team_id: str) -> bool: ...
    async def move_team_channels(self, org_id: str, from_team: str, to_team: str) -> int: ...
    async def unclosed_conversations_of_team(self, org_id: str, team_id: str) -> list[Conversation]: ...
    async def move_team_conversations(self, org_id: str, from_team: str, to_team: str) -> int: ...


async def _team(store: TeamStore, viewer: Viewer, team_id: str, field: str = "id") -> Team:
    team = await store.team(viewer.org_id, team_id) if is_id(team_id) else None
    if team is None:
        raise not_found("team", field)
    return team


async def rename_team(
    store: TeamStore, events: EventSink, viewer: Viewer, team_id: str, name: str, now: datetime
) -> Team:
    """A new name (owners and admins); unique in the organization, as when created."""
    require_org_admin(viewer)
    name = clean_line(name, "name", required=True)
    team = await _team(store, viewer, team_id)
    if name == team.name:
        return team
    try:
        renamed = await store.rename_team(viewer.org_id, team.id, name)
    except AlreadyStored as error:
        raise Refused(ErrorCode.ALREADY_EXISTS, f"A team named {name!r} already exists.", "name") from error
    if renamed is None:
        raise not_found("team", "id")
    await events.publish_teams_changed(viewer.org_id, now)
    return renamed


async def set_team_mode(
    store: TeamStore, events: EventSink, viewer: Viewer, team_id: str, mode: TeamMode, now: datetime, t: Thresholds
) -> Team:
    """GRAB or COLLABORATION from now on (owners and admins). What each member sees follows from
    the mode (subscriptions re-read their teams at once); conversations move only as said below.

    GRAB → COLLABORATION: every member sees every conversation of the team; a grabbed one keeps
    its owner (in its room) and its room, and the others may join it. Pending grab offers can no
    longer be taken (``canGrab`` false). COLLABORATION → GRAB: a conversation nobody owns is
    offered to grabbing (its room stays as it is: who is in it may go on writing); the
    representatives see only those unowned and their own, so those in the room of a conversation
    someone owns leave it (grab privacy: they would be told of messages they may not see),
    each with a history line and a LEFT event.
    """
    require_org_admin(viewer)
    team = await _team(store, viewer, team_id)
    if team.mode is mode:
        return team
    updated = await store.set_team_mode(viewer.org_id, team.id, mode)
    if updated is None:
        raise not_found("team", "id")
    await events.publish_teams_changed(viewer.org_id, now)
    if mode is TeamMode.GRAB:
        await _out_of_owned_rooms(store, events, viewer, updated, now, t)
    return updated


async def _out_of_owned_rooms(
    store: TeamStore, events: EventSink, viewer: Viewer, team: Team, now: datetime, t: Thresholds
) -> None:
    """In a team just made GRAB: the representatives in the room of a conversation someone else owns leave it."""
    for conversation in await store.unclosed_conversations_of_team(viewer.org_id, team.id):
        owner = conversation.owner_id
        others = [m for m in conversation.participants if m != owner and team.role_of(m) is not TeamRole.ADMIN]
        if owner is None or not others:
            continue
        members = {m.id: m for m in await store.members_by_ids(viewer.org_id, others)}
        for member_id in others:
            member = members.get(member_id)
            if member is not None and member.role in (OrgRole.OWNER, OrgRole.ADMIN):
                continue  # organization admins see every conversation
            left = await store.change_conversation(
                conversation.id, changes.numbered(changes.leave(member_id, now, release=False))
            )
            if left is None:  # left meanwhile
                continue
            line = await write_line(
                store,
                left,
                SystemAction.LEFT,
                now,
                actor=viewer,
                target_id=member_id,
                target_name=member.name if member else None,
            )
            await events.publish(
                Event(
                    kind=EventKind.LEFT,
                    conversation=left,
                    at=now,
                    actor_id=member_id,
                    previous_status=status_of(conversation, now, t),
                    owner_before=owner,
                    line_id=line.id,
                )
            )
            conversation = left


@dataclass(frozen=True, slots=True)
class DeletedTeam:
    team: Team
    transferred: int  # open conversations transferred (each with its TRANSFERRED event and line)
    moved: int  # closed conversations moved along, unchanged otherwise
    channels: int  # channels that now bring their customers to the other team


async def delete_team(
    store: TeamStore,
    events: EventSink,
    viewer: Viewer,
    team_id: str,
    transfer_to: str | None,
    now: datetime,
    t: Thresholds,
) -> DeletedTeam:
    """Delete a team (owners and admins). A team still holding a channel or a conversation (open or
    closed) is refused (TEAM_NOT_EMPTY) unless ``transfer_to`` names another team: then its
    channels move there first (new customers arrive there), each open conversation is
    transferred there as ``transferConversation`` would (its room keeps who may still see it,
    nobody owns it, the customer waits as before), the closed ones follow (their history with
    them, so a customer who writes again reopens it there), and the team goes. Its members
    stop seeing its conversations at once (TEAMS_CHANGED). A failure half-way leaves the team
    with what is left: deleting again finishes.
    """
    require_org_admin(viewer)
    team = await _team(store, viewer, team_id)
    target = None
    if transfer_to is not None:
        if transfer_to == team.id:
            raise invalid("Move its conversations to another team.", "transferToTeamId")
        target = await _team(store, viewer, transfer_to, "transferToTeamId")
    elif await store.team_in_use(viewer.org_id, team.id):
        raise Refused(
            ErrorCode.TEAM_NOT_EMPTY,
            "The team still has conversations or channels: name a team to move them to (`transferToTeamId`).",
            "transferToTeamId",
        )
    transferred = moved = channels = 0
    if target is not None:
        channels = await store.move_team_channels(viewer.org_id, team.id, target.id)
        for conversation in await store.unclosed_conversations_of_team(viewer.org_id, team.id):
            if is_closed(conversation, now, t):
                continue  # closed by inactivity: moved with the others below
            # a close, grab or transfer landing meanwhile refuses it: what moved stays moved, the team stays
            request = TransferRequest(conversation_id=conversation.id, to_team_id=target.id)
            await transfer_conversation(store, events, viewer, request, now, t)
            transferred += 1
        moved = await store.move_team_conversations(viewer.org_id, team.id, target.id)
    if not await store.delete_team(viewer.org_id, team.id):
        raise not_found("team", "id")
    await events.publish_teams_changed(viewer.org_id, now)
    return DeletedTeam(team, transferred, moved, channels)


# --- channels -------------------------------------------------------------------------------------


class ChannelStore(Protocol):
    async def org_channel(self, org_id: str, channel_id: str) -> Channel | None: ...
    async def set_channel_disabled(
        self, org_id: str, channel_id: str, disabled_at: datetime | None
    ) -> Channel | None: ...
    async def set_ingest_key_hash(
        self, org_id: str, channel_id: str, key_hash: str, now: datetime
    ) -> Channel | None: ...


async def _channel(store: ChannelStore, viewer: Viewer, channel_id: str) -> Channel:
    require_org_admin(viewer)
    channel = await store.org_channel(viewer.org_id, channel_id) if is_id(channel_id) else None
    if channel is None:
        raise not_found("channel", "id")
    return channel


async def set_channel_enabled(
    store: ChannelStore, viewer: Viewer, channel_id: str, enabled: bool, now: datetime
) -> Channel:
    """Disable a channel, or enable it again (owners and admins); doing either twice changes nothing.

    A disabled channel stores nothing that comes in (see :func:`check_channel_enabled`) and
    sends nothing: members' messages are refused (CHANNEL_DISABLED) and replies already queued
    fail when their turn comes. Its conversations stay readable, and notes may be added.
    """
    channel = await _channel(store, viewer, channel_id)
    if (channel.disabled_at is None) is enabled:
        return channel
    updated = await store.set_channel_disabled(viewer.org_id, channel.id, None if enabled else now)
    if updated is None:
        raise not_found("channel", "id")
    return updated


async def rotate_ingest_key(store: ChannelStore, viewer: Viewer, channel_id: str, now: datetime) -> tuple[Channel, str]:
    """A new ingest key (owners and admins), shown only this once; the old one stops working.
    Only its hash is stored, as by ``connectChannel``."""
    channel = await _channel(store, viewer, channel_id)
    key = "ik_" + secrets.token_urlsafe(32)
    updated = await store.set_ingest_key_hash(viewer.org_id, channel.id, hash_ingest_key(key), now)
    if updated is None:
        raise not_found("channel", "id")
    return updated, key


def check_channel_enabled(channel: Channel) -> None:
    """Nothing comes in or goes out through a disabled channel."""
    if channel.disabled_at is not None:
        raise Refused(ErrorCode.CHANNEL_DISABLED, f"The channel {channel.name!r} is disabled: nothing was stored.")


# --- message templates ----------------------------------------------------------------------------


class TemplateStore(Protocol):
    async def template(self, org_id: str, template_id: str) -> MessageTemplate | None: ...
    async def update_template(
        self, org_id: str, template_id: str, values: dict[str, Any], cleared: tuple[str, ...], now: datetime
    ) -> MessageTemplate | None: ...
    async def delete_template(self, org_id: str, template_id: str) -> MessageTemplate | None: ...


@dataclass(frozen=True, slots=True)
class TemplateChanges:
    """Fields left UNSET are kept; ``None`` clears ``channel`` (every channel), ``whatsapp_name``
    or ``whatsapp_language``. ``name`` and ``body`` can't be cleared."""

    name: Any = UNSET
    body: Any = UNSET
    channel: Any = UNSET
    whatsapp_name: Any = UNSET
    whatsapp_language: Any = UNSET


def require_template_writer(viewer: Viewer) -> None:
    """Templates are written by admins: of the organization, or of any team."""
    if not viewer.is_org_admin and not any(viewer.is_team_admin(t.id) for t in viewer.teams):
        raise forbidden("Only admins write message templates.")


async def _template(store: TemplateStore, viewer: Viewer, template_id: str) -> MessageTemplate:
    require_template_writer(viewer)
    template = await store.template(viewer.org_id, template_id) if is_id(template_id) else None
    if template is None:
        raise not_found("message template", "id")
    return template


async def update_message_template(
    store: TemplateStore, viewer: Viewer, template_id: str, changes: TemplateChanges, now: datetime
) -> MessageTemplate:
    """Change a template (admins). Messages already sent with it keep their text (and a queued
    WhatsApp template keeps the name, language and values it was written with)."""
    template = await _template(store, viewer, template_id)
    values: dict[str, Any] = {}
    cleared: list[str] = []
    if changes.name is not UNSET:
        values["name"] = clean_line(changes.name, "name", required=True)
    if changes.body is not UNSET:
        body = clean_text(changes.body, "body")
        if len(placeholders(body)) > 50:
            raise invalid("At most 50 placeholders per template.", "body")
        values["body"] = body
    if changes.channel is not UNSET:
        if changes.channel is None:
            cleared.append("channel")
        else:
            values["channel"] = ChannelType(changes.channel)
    for name, pattern, field, message in (
        (
            "whatsapp_name",
            WHATSAPP_TEMPLATE_NAME,
            "whatsappName",
            "WhatsApp template names are lowercase letters, digits and `_`.",
        ),
        (
            "whatsapp_language",
            WHATSAPP_LANGUAGE,
            "whatsappLanguage",
            "Use a WhatsApp language code such as `en_US` or `de`.",
        ),
    ):
        value = getattr(changes, name)
        if value is UNSET:
            continue
        if value is None:
            cleared.append(name)
        elif not isinstance(value, str) or not pattern.fullmatch(value):
            raise invalid(message, field)
        else:
            values[name] = value
    if not values and not cleared:
        return template
    updated = await store.update_template(viewer.org_id, template.id, values, tuple(cleared), now)
    if updated is None:
        raise not_found("message template", "id")
    return updated


async def delete_message_template(store: TemplateStore, viewer: Viewer, template_id: str) -> MessageTemplate:
    """Delete a template (admins), even one messages were sent with: they keep their text, and
    a queued WhatsApp template is still sent (it carries its name, language and values)."""
    template = await _template(store, viewer, template_id)
    deleted = await store.delete_template(viewer.org_id, template.id)
    if deleted is None:
        raise not_found("message template", "id")
    return deleted


__all__ = [
    "DeletedTeam",
    "TemplateChanges",
    "check_channel_enabled",
    "delete_message_template",
    "delete_team",
    "rename_team",
    "require_template_writer",
    "rotate_ingest_key",
    "set_channel_enabled",
    "set_team_mode",
    "update_message_template",
]
