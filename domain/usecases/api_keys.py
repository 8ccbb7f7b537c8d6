"""API keys: integrations acting as apps of the organization, within their scopes and teams.

A key is ``imb_`` and 43 base64url characters (256 random bits). It is shown
once, when created; only its SHA-256 hash is stored, beside a short prefix
that identifies it in lists (``imb_AbCd``). With 256 random bits a fast hash is
as safe as a slow KDF (the same reasoning as channels' ingest keys), and the
lookup by hash is an index equality, so no comparison leaks timing.
Owners and admins create, list and revoke keys; an app never does.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from domain.entities import ApiKey
from domain.enums import ApiKeyScope
from domain.errors import invalid, not_found
from domain.ports import ApiKeyStore, EventSink
from domain.usecases.onboarding import require_org_admin
from domain.validation import clean_line, is_id
from domain.visibility import Viewer

KEY_PREFIX = "imb_"
KEY_FORMAT = re.compile(r"imb_[A-Za-z0-9_-]{43}")
SHOWN_PREFIX_LENGTH = 8  # "imb_" and four random characters: recognisable, 24 bits of 256
MAX_TEAMS = 100


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def well_formed(key: str) -> bool:
    """Shaped like a key this server issues (checked before any database read)."""
    return KEY_FORMAT.fullmatch(key) is not None


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    store: ApiKeyStore,
    viewer: Viewer,
    name: str,
    scopes: list[ApiKeyScope],
    team_ids: list[str],
    now: datetime,
) -> tuple[ApiKey, str]:
    """A new key (owners and admins) and its secret, which is returned only this once.

    ``team_ids`` empty: the whole organization, teams created later included.
    """
    require_org_admin(viewer)
    name = clean_line(name, "name", required=True)
    if not scopes:
        raise invalid("Give the key at least one scope.", "scopes")
    if len(team_ids) > MAX_TEAMS:
        raise invalid(f"At most {MAX_TEAMS} teams per key.", "teamIds")
    wanted = list(dict.fromkeys(team_ids))
    if wanted:
        known = {t.id for t in await store.teams(viewer.org_id)}
        if any(not is_id(t) or t not in known for t in wanted):
            raise not_found("team", "teamIds")
    secret = new_key()
    key = ApiKey(
        id=store.new_id(),
        org_id=viewer.org_id,
        name=name,
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        scopes=tuple(s for s in ApiKeyScope if s in set(scopes)),
        team_ids=tuple(wanted),
        created_at=now,
        created_by=viewer.member_id,
    )
    return await store.create_api_key(key, hash_api_key(secret)), secret


async def list_api_keys(store: ApiKeyStore, viewer: Viewer) -> list[ApiKey]:
    """The organization's keys that still work, newest first (owners and admins)."""
    require_org_admin(viewer)
    return await store.api_keys_of(viewer.org_id)


async def revoke_api_key(store: ApiKeyStore, events: EventSink, viewer: Viewer, key_id: str, now: datetime) -> ApiKey:
    """The key stops working at once, on every instance: the revocation is stored, then
    announced in the event log, which each instance follows to forget the key and close
    the WebSockets opened with it. Revoking a revoked key again changes nothing (and
    announces it again, which is harmless). The key stays stored, so what its app did
    still names it."""
    require_org_admin(viewer)
    if not is_id(key_id):
        raise not_found("API key", "id")
    key = await store.revoke_api_key(viewer.org_id, key_id, now)
    if key is None:
        key = await store.api_key(viewer.org_id, key_id)  # already revoked, or none
        if key is None:
            raise not_found("API key", "id")
    await events.publish_api_key_revoked(viewer.org_id, key.id, now)
    return key


__all__ = [
    "KEY_PREFIX",
    "create_api_key",
    "hash_api_key",
    "list_api_keys",
    "new_key",
    "revoke_api_key",
    "well_formed",
]
