"""Passwords, bearer tokens and the authenticated caller (a domain ``Viewer``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import jwt
from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError

from domain.visibility import Viewer

log = logging.getLogger("imbrace.auth")
ALGORITHM = "HS256"


class Passwords:
    """Argon2id: a slow, memory-hard KDF, so a leaked database doesn't leak passwords."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._argon2 = Argon2(time_cost=time_cost, memory_cost=memory_kib)
        self._dummy = self._argon2.hash(secrets.token_hex(16))

    async def hash(self, password: str) -> str:
        """In a worker thread: a deliberate ~50 ms of CPU must not stall every WebSocket."""
        return await asyncio.to_thread(self._argon2.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        """Always spends one verification, so timing doesn't tell whether the email exists."""
        return await asyncio.to_thread(self._verify, hashed, password)

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            return self._argon2.verify(hashed or self._dummy, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False


def load_jwt_secret(configured: str | None, data_dir: Path) -> str:
    if configured:
        return configured
    path = Path(data_dir) / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    log.warning(
        "IMBRACE_JWT_SECRET is not set: using a random secret kept in %s. "
        "Set it explicitly when running several instances.",
        path,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


@dataclass(frozen=True, slots=True)
class Claims:
    """What a member's token says: who, which organization, which of their token
    versions (``ver``: raised when all their sessions are cut), its own id (``jti``:
    one token revoked by ``logout``) and when it expires (unix time)."""

    member_id: str
    org_id: str
    version: int
    token_id: str
    expires_at: float


class Revocations(Protocol):
    """Which tokens were cut (:class:`api.sessions.MemberSessions`): answered from memory."""

    def accepts(self, claims: Claims) -> bool: ...


class Tokens:
    def __init__(self, secret: str, ttl_s: int, revocations: Revocations | None = None) -> None:
        self.secret = secret
        self.ttl_s = ttl_s
        self.revocations = revocations

    def issue(self, member_id: str, org_id: str, now: datetime | None = None, version: int = 0) -> str:
        """A token of the member's current token ``version`` (older ones are refused once it is raised)."""
        now = now or datetime.now(UTC)
        payload = {
            "sub": member_id,
            "org": org_id,
            "ver": version,
            "jti": secrets.token_urlsafe(12),
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_s),
        }
        return jwt.encode(payload, self.secret, algorithm=ALGORITHM)

    def claims(self, token: str) -> Claims | None:
        """A valid token's claims; None for expired, forged, ``alg: none`` or revoked ones.

        Revocation is a lookup in memory (:class:`api.sessions.MemberSessions`): no database read.
        """
        try:
            payload = jwt.decode(token, self.secret, algorithms=[ALGORITHM], options={"require": ["sub", "org", "exp"]})
        except jwt.PyJWTError:
            return None
        sub, org, ver, jti, exp = (payload.get(k) for k in ("sub", "org", "ver", "jti", "exp"))
        if not isinstance(sub, str) or not isinstance(org, str) or not isinstance(exp, (int, float)):
            return None
        # tokens issued before versions existed carry neither: version 0, no id of their own
        claims = Claims(sub, org, ver if isinstance(ver, int) else 0, jti if isinstance(jti, str) else "", float(exp))
        if self.revocations is not None and not self.revocations.accepts(claims):
            return None
        return claims

    def read(self, token: str) -> tuple[str, str] | None:
        """(member id, org id) of a valid token; None for expired, forged, ``alg: none`` or revoked ones."""
        claims = self.claims(token)
        return (claims.member_id, claims.org_id) if claims else None

    def expires_at(self, token: str) -> float | None:
        """Unix time a valid token expires at; None when it is not valid."""
        claims = self.claims(token)
        return claims.expires_at if claims else None


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ViewerSource(Protocol):
    async def viewer(self, member_id: str, org_id: str) -> Viewer | None: ...


class AppSource(Protocol):
    """API keys (:class:`api.api_keys.ApiKeyRegistry`): the app a key acts as."""

    async def viewer(self, token: str) -> Viewer | None: ...
    async def reload(self, viewer: Viewer) -> Viewer | None: ...


API_KEY_PREFIX = "imb_"  # an API key (:mod:`domain.usecases.api_keys`), not a JWT


async def load_viewer(store: ViewerSource, member_id: str, org_id: str) -> Viewer | None:
    """The caller and every team of their organization (one MongoDB command, see
    :meth:`api.store.members.Members.viewer`); None once the member is gone."""
    return await store.viewer(member_id, org_id)


async def reload_viewer(store: ViewerSource, apps: AppSource | None, viewer: Viewer) -> Viewer | None:
    """The same caller with their teams as they are now (subscriptions, after a team change);
    None once the member is gone or the app's key revoked."""
    if viewer.app is not None:
        return await apps.reload(viewer) if apps is not None else None
    return await load_viewer(store, viewer.member_id, viewer.org_id)


async def viewer_from_header(
    store: ViewerSource, tokens: Tokens, header: str | None, apps: AppSource | None = None
) -> Viewer | None:
    """A member's JWT, or (with ``apps``) an API key: ``Bearer imb_…`` acts as an app."""
    token = bearer_token(header)
    if token is not None and token.startswith(API_KEY_PREFIX):
        return await apps.viewer(token) if apps is not None else None
    identity = tokens.read(token) if token else None
    if identity is None:
        return None
    return await load_viewer(store, *identity)
