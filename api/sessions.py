"""Members' sessions at the door: which tokens were cut, known on every instance at once.

A member's token (:class:`api.auth.Tokens`) carries the member's token version
(``ver``) and its own id (``jti``). Each instance keeps in memory:

- **member -> oldest valid version**, for members whose sessions were ever cut
  (password changed or reset, account deactivated). Loaded once at start-up,
  *after* the hub took the event log's frontier, and raised by every
  ``MEMBER_TOKENS_REVOKED`` event the hub dispatches after it: the write is
  stored before its event is logged, so a change is either in what the load
  read or in an event after the frontier, never in neither.
- **token id -> expiry** of tokens ended by ``logout`` (``TOKEN_REVOKED``), kept
  only until they expire: the set stays as small as the sessions ended within
  one token lifetime.

So checking a token is two dict lookups and no database command. The revoking
instance applies the change before it answers; the others when their hub reads
the event (about 100 ms; a 250 ms poll without change streams). WebSockets
opened with a token that stops working are closed at once with 4401, the way a
revoked API key's are (:class:`api.api_keys.ApiKeyRegistry`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from api.auth import Claims

if TYPE_CHECKING:
    from api.hub import EventHub
    from api.store.mongo import MongoStore

log = logging.getLogger("imbrace.sessions")


class MemberSessions:
    def __init__(self) -> None:
        self._floor: dict[str, int] = {}
        self._ended: dict[str, float] = {}  # token id -> unix expiry
        self._expiries: list[tuple[float, str]] = []  # a heap, to forget ended tokens once expired
        self._watchers: dict[str, set[tuple[Claims, Callable[[], None]]]] = {}

    def follow(self, hub: EventHub) -> None:
        """Revocations made on any instance reach this one through the event log
        (call before the hub starts, then :meth:`load`)."""
        from api.store.events import MEMBER_TOKENS_REVOKED, TOKEN_REVOKED

        hub.observe(MEMBER_TOKENS_REVOKED, lambda doc: self.cut(doc["member_id"], int(doc["version"])))
        hub.observe(TOKEN_REVOKED, lambda doc: self.end(doc["member_id"], doc["jti"], doc["exp"] / 1000))

    async def load(self, store: MongoStore) -> None:
        """What was revoked before this instance started (merged: events dispatched meanwhile stay)."""
        for member_id, version in (await store.token_versions()).items():
            self.cut(member_id, version)
        for token_id, expires in (await store.revoked_tokens.live(datetime.now(UTC))).items():
            self._remember_ended(token_id, expires.timestamp())

    def accepts(self, claims: Claims) -> bool:
        if claims.version < self._floor.get(claims.member_id, 0):
            return False
        return not (claims.token_id and claims.token_id in self._ended)

    def cut(self, member_id: str, version: int) -> None:
        """The member's tokens older than ``version`` are refused from now on; their sockets close."""
        if version <= self._floor.get(member_id, 0):
            return
        self._floor[member_id] = version
        self._close(member_id, lambda claims: claims.version < version)

    def end(self, member_id: str, token_id: str, expires_at: float) -> None:
        """One token is refused from now on (until it expires anyway); its sockets close."""
        if not token_id:
            return
        self._remember_ended(token_id, expires_at)
        self._close(member_id, lambda claims: claims.token_id == token_id)

    def on_revoked(self, claims: Claims, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once when the token of ``claims`` stops working (soon, if it already
        has); returns what stops that."""
        if not self.accepts(claims):
            asyncio.get_running_loop().call_soon(callback)
            return lambda: None
        watch = (claims, callback)
        watchers = self._watchers.setdefault(claims.member_id, set())
        watchers.add(watch)

        def stop() -> None:
            watchers.discard(watch)
            if not watchers and self._watchers.get(claims.member_id) is watchers:
                del self._watchers[claims.member_id]

        return stop

    def _close(self, member_id: str, revoked: Callable[[Claims], bool]) -> None:
        watchers = self._watchers.get(member_id, set())
        for watch in [w for w in watchers if revoked(w[0])]:
            watchers.discard(watch)
            try:
                watch[1]()
            except Exception:  # noqa: BLE001 - the other sockets must still be closed
                log.exception("closing a socket of a revoked token failed")
        if not watchers:
            self._watchers.pop(member_id, None)

    def _remember_ended(self, token_id: str, expires_at: float) -> None:
        now = time.time()
        while self._expiries and self._expiries[0][0] < now:
            _, gone = heapq.heappop(self._expiries)
            self._ended.pop(gone, None)
        if expires_at > now and token_id not in self._ended:
            self._ended[token_id] = expires_at
            heapq.heappush(self._expiries, (expires_at, token_id))
