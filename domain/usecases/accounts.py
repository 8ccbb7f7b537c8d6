"""A member's account over its life: password, sessions, active or not, role.

Cutting sessions is one rule everywhere: the write that changes the account
raises the member's token version, then the new version is announced in the
event log, and every instance refuses older tokens and closes the WebSockets
opened with them (:mod:`api.sessions`). Organization-scoped like everything:
a member of another organization is absent (``NOT_FOUND``).

Who may do what to whom (owners and admins manage accounts, as they invite):

- an admin manages admins and members; only an owner manages an owner's account,
  or makes someone an owner (nobody raises another above their own role);
- nobody deactivates or resets themselves (``changePassword`` is for one's own);
- the organization always keeps an active owner (``LAST_OWNER``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from domain.entities import Member
from domain.enums import ErrorCode, OrgRole
from domain.errors import Refused, forbidden, invalid, not_found
from domain.ports import ConversationStore, EventSink, LoginAttempts, MemberAccounts, PasswordHasher
from domain.status import Thresholds
from domain.throttle import ThrottlePolicy
from domain.usecases.login import check_own_password
from domain.usecases.onboarding import check_password, require_org_admin
from domain.usecases.rooms import leave_rooms
from domain.validation import is_id, is_well_formed
from domain.visibility import Viewer

RESET_TTL = timedelta(hours=24)
RESET_PREFIX = "prt_"
RESET_FORMAT = re.compile(r"prt_[A-Za-z0-9_-]{43}")
ROLE_ATTEMPTS = 3


def hash_reset_token(token: str) -> str:
    """256 random bits: a fast hash is as safe as a slow KDF (as for API keys), and the
    lookup by hash is an index equality, so no comparison leaks timing."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A member and the token version a fresh token of theirs must carry."""

    member: Member
    token_version: int


class LifecycleStore(MemberAccounts, ConversationStore, Protocol):
    """Deactivating a member also takes them out of their rooms."""


def _require_member(viewer: Viewer) -> None:
    if viewer.app is not None:
        raise forbidden("Apps (API keys) have no password or session of their own.")


async def _target(store: MemberAccounts, viewer: Viewer, member_id: str) -> Member:
    """Another member of the caller's organization whose account the caller may manage."""
    require_org_admin(viewer)
    member = await store.member(viewer.org_id, member_id) if is_id(member_id) else None
    if member is None:
        raise not_found("member", "memberId")
    if member.role is OrgRole.OWNER and viewer.org_role is not OrgRole.OWNER:
        raise forbidden("Only an owner may manage an owner's account.")
    return member


def _not_yourself(viewer: Viewer, member: Member, what: str) -> None:
    if member.id == viewer.member_id:
        raise invalid(f"You can't {what} yourself.", "memberId")


@dataclass(frozen=True, slots=True)
class PasswordChange:
    """What ``changePassword`` was given, and from where."""

    current_password: str
    new_password: str
    client_address: str  # the current password is checked under the login throttle


async def change_password(
    store: MemberAccounts,
    hasher: PasswordHasher,
    attempts: LoginAttempts,
    events: EventSink,
    viewer: Viewer,
    change: PasswordChange,
    now: datetime,
    policy: ThrottlePolicy,
) -> Session:
    """The caller's new password; every other session of theirs stops working (the caller
    gets a fresh token from the returned version)."""
    current_password, new_password = change.current_password, change.new_password
    _require_member(viewer)
    if not isinstance(current_password, str) or not is_well_formed(current_password):
        raise Refused(ErrorCode.INVALID_CREDENTIALS, "The current password is wrong.", "currentPassword")
    try:
        check_password(new_password)
    except Refused as refused:
        raise Refused(refused.code, refused.message, "newPassword") from refused
    if new_password == current_password:
        raise invalid("The new password must differ from the current one.", "newPassword")
    member = await store.member(viewer.org_id, viewer.member_id)
    if member is None:
        raise not_found("member")
    stored = await store.password_hash(viewer.org_id, viewer.member_id)
    checked = await check_own_password(
        hasher, attempts, member.email, stored, current_password, change.client_address, now, policy
    )
    if not checked:
        raise Refused(ErrorCode.INVALID_CREDENTIALS, "The current password is wrong.", "currentPassword")
    version = await store.set_password(viewer.org_id, viewer.member_id, await hasher.hash(new_password), now)
    if version is None:
        raise not_found("member")
    await events.publish_member_tokens_revoked(viewer.org_id, member.id, version, now)
    return Session(replace(member, token_version=version), version)


async def logout(
    store: MemberAccounts, events: EventSink, viewer: Viewer, token_id: str, expires_at: datetime, now: datetime
) -> None:
    """The caller's token stops working on every instance; their other sessions go on.

    A token issued before tokens had ids can't be told apart from the member's others:
    then all of the member's sessions end.
    """
    _require_member(viewer)
    if token_id:
        await store.revoke_token(viewer.org_id, viewer.member_id, token_id, expires_at, now)
        await events.publish_token_revoked(viewer.org_id, viewer.member_id, token_id, expires_at, now)
        return
    version = await store.cut_sessions(viewer.org_id, viewer.member_id)
    if version is not None:
        await events.publish_member_tokens_revoked(viewer.org_id, viewer.member_id, version, now)


async def reset_member_password(
    store: MemberAccounts, events: EventSink, viewer: Viewer, member_id: str, now: datetime
) -> tuple[Member, str, datetime]:
    """A one-time reset token for another member (owners and admins), shown only this once.

    From now on no password logs them in and every session of theirs is cut, until they
    choose a new password with the token (``completePasswordReset``) within
    :data:`RESET_TTL`. Only its hash is stored; a newer reset replaces an older one.
    """
    member = await _target(store, viewer, member_id)
    _not_yourself(viewer, member, "reset the password of")
    token = RESET_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + RESET_TTL
    version = await store.start_password_reset(viewer.org_id, member.id, hash_reset_token(token), expires_at, now)
    if version is None:
        raise not_found("member", "memberId")
    await events.publish_member_tokens_revoked(viewer.org_id, member.id, version, now)
    return replace(member, token_version=version), token, expires_at


async def complete_password_reset(
    store: MemberAccounts, hasher: PasswordHasher, events: EventSink, token: str, new_password: str, now: datetime
) -> Session:
    """The member's new password, with the token an admin handed them (once, before it expires)."""
    try:
        check_password(new_password)
    except Refused as refused:
        raise Refused(refused.code, refused.message, "newPassword") from refused
    unknown = Refused(ErrorCode.INVALID_CREDENTIALS, "This reset token is unknown, used or expired.", "token")
    if not isinstance(token, str) or not RESET_FORMAT.fullmatch(token):
        raise unknown
    reset_hash = hash_reset_token(token)
    member = await store.member_by_reset(reset_hash, now)
    if member is None:
        raise unknown
    if not member.active:
        raise Refused(ErrorCode.ACCOUNT_DEACTIVATED, "This account is deactivated. Ask an owner or admin.")
    done = await store.complete_password_reset(reset_hash, await hasher.hash(new_password), now)
    if done is None:  # used by a concurrent request meanwhile
        raise unknown
    member, version = done
    await events.publish_member_tokens_revoked(member.org_id, member.id, version, now)
    return Session(member, version)


async def deactivate_member(
    store: LifecycleStore, events: EventSink, viewer: Viewer, member_id: str, now: datetime, t: Thresholds
) -> Member:
    """The member can no longer log in; their tokens and WebSockets are cut at once on every
    instance; they leave every open room, and what they had grabbed is released and offered to
    its team again (each history says who took them out). Deactivating again changes nothing.
    Their team memberships stay, for a reactivation."""
    member = await _target(store, viewer, member_id)
    _not_yourself(viewer, member, "deactivate")
    done = await store.deactivate(viewer.org_id, member.id, now)
    if done is None:  # already deactivated (or, meanwhile, gone)
        return await store.member(viewer.org_id, member.id) or member
    member, version = done
    await events.publish_member_tokens_revoked(viewer.org_id, member.id, version, now)
    rooms = await store.open_rooms_of_member(viewer.org_id, member.id)
    await leave_rooms(store, events, rooms, member.id, now, t, by=viewer, member_name=member.name, deactivated=True)
    return member


async def reactivate_member(store: MemberAccounts, viewer: Viewer, member_id: str) -> Member:
    """The member may log in again (with their password; their old tokens stay refused)."""
    member = await _target(store, viewer, member_id)
    if member.active:
        return member
    reactivated = await store.reactivate(viewer.org_id, member.id)
    if reactivated is None:
        raise not_found("member", "memberId")
    return reactivated


async def change_member_role(
    store: MemberAccounts, events: EventSink, viewer: Viewer, member_id: str, role: OrgRole, now: datetime
) -> Member:
    """The member's role in the organization (owners and admins; only an owner makes or unmakes
    owners). It holds at once: each request reads the caller's role, and live subscriptions
    re-read theirs (a ``TEAMS_CHANGED`` notice). The last active owner can't be demoted."""
    if role is OrgRole.OWNER:
        require_org_admin(viewer)
        if viewer.org_role is not OrgRole.OWNER:
            raise forbidden("Only an owner may make another owner.")
    for _ in range(ROLE_ATTEMPTS):
        member = await _target(store, viewer, member_id)
        if member.role is role:
            return member
        if member.role is OrgRole.OWNER and member.active and await store.owner_count(viewer.org_id) <= 1:
            raise _last_owner()
        changed = await store.set_role(viewer.org_id, member.id, role, member.role)
        if changed is None:
            continue  # changed meanwhile: judge again
        if member.role is OrgRole.OWNER and await store.owner_count(viewer.org_id) == 0:
            # two owners demoted each other at once: this one gives its change back
            await store.set_role(viewer.org_id, member.id, OrgRole.OWNER, role)
            raise _last_owner()
        await events.publish_teams_changed(viewer.org_id, now)
        return changed
    raise invalid("The member's role kept changing; look again.", "memberId")


def _last_owner() -> Refused:
    return Refused(ErrorCode.LAST_OWNER, "The organization must keep an active owner.", "memberId")
