"""API keys at the door: which bearer keys work, known on every instance at once.

Each process keeps the keys it has seen in memory, so a request with a known key
costs no database read to authenticate. What keeps that cache true:

- **Revocation** is stored, then written to the event log (``API_KEY_REVOKED``),
  which every instance's hub follows within about 100 ms (a change stream, else
  a 250 ms poll): each instance forgets the key and closes the WebSockets opened
  with it (code 4401), and the revoking instance does so before it answers.
- **A refresh a minute**: a key is read again (and its ``lastUsedAt`` moved) at
  most once a minute per instance, when it is used, in one command; so
  ``lastUsedAt`` is precise to the minute, and even a revocation an instance
  somehow missed takes at most a minute there.
- **Unknown keys** are remembered too (the least recently seen dropped first):
  a key can't be created with a hash someone has already tried (256 random bits),
  so a guess is read from the database once per instance. A malformed key
  (not ``imb_`` and 43 base64url characters) is refused without a read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from domain.entities import ApiKey
from domain.usecases.api_keys import hash_api_key, well_formed
from domain.visibility import Viewer, app_viewer

if TYPE_CHECKING:
    from api.hub import EventHub
    from api.store.mongo import MongoStore

log = logging.getLogger("imbrace.api_keys")

REFRESH = timedelta(seconds=60)
UNKNOWN_KEPT = 10_000


@dataclass(slots=True)
class _Known:
    key: ApiKey
    digest: str
    checked_at: datetime


class ApiKeyRegistry:
    def __init__(self, store: MongoStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self._by_hash: dict[str, _Known] = {}
        self._by_id: dict[str, _Known] = {}
        self._unknown: OrderedDict[str, None] = OrderedDict()
        self._revoked: set[str] = set()
        self._on_revoke: dict[str, set[Callable[[], None]]] = {}

    def follow(self, hub: EventHub) -> None:
        """Revocations made on any instance reach this one through the event log."""
        from api.store.events import API_KEY_REVOKED

        hub.observe(API_KEY_REVOKED, lambda doc: self.revoked(doc["key_id"]))

    async def key(self, token: str) -> ApiKey | None:
        """The working key ``token`` is; None for a malformed, unknown or revoked one."""
        if not well_formed(token):
            return None
        digest = hash_api_key(token)
        now = self.clock()
        known = self._by_hash.get(digest)
        if known is not None and now - known.checked_at < REFRESH:
            return known.key
        if known is None and digest in self._unknown:
            self._unknown.move_to_end(digest)
            return None
        found = await self.store.api_keys.used(digest, now)
        if found is None or found.id in self._revoked:  # revoked while it was read
            self._forget(digest)
            return None
        known = _Known(found, digest, now)
        self._by_hash[digest] = self._by_id[found.id] = known
        return found

    async def viewer(self, token: str) -> Viewer | None:
        """The app a bearer key acts as, with its organization's teams (read as a member's are)."""
        key = await self.key(token)
        if key is None:
            return None
        return app_viewer(key, await self.store.teams(key.org_id))

    async def reload(self, viewer: Viewer) -> Viewer | None:
        """The app again, with the teams as they are now (a subscription after a team change);
        None once its key is revoked."""
        assert viewer.app is not None, "for apps only"
        key_id = viewer.app.key_id
        if key_id in self._revoked:
            return None
        known = self._by_id.get(key_id)
        key = known.key if known is not None else await self.store.api_keys.working(key_id)
        if key is None or key_id in self._revoked:
            return None
        return app_viewer(key, await self.store.teams(key.org_id))

    def revoked(self, key_id: str) -> None:
        """The key is refused from now on, and the sockets opened with it are closed."""
        self._revoked.add(key_id)
        known = self._by_id.pop(key_id, None)
        if known is not None:
            self._forget(known.digest)
        for callback in self._on_revoke.pop(key_id, set()):
            try:
                callback()
            except Exception:  # noqa: BLE001 - the other sockets must still be closed
                log.exception("closing a socket of a revoked API key failed")

    def on_revoked(self, key_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once when the key is revoked (at once, soon, if it already is);
        returns what stops that."""
        if key_id in self._revoked:
            asyncio.get_running_loop().call_soon(callback)
            return lambda: None
        callbacks = self._on_revoke.setdefault(key_id, set())
        callbacks.add(callback)

        def stop() -> None:
            callbacks.discard(callback)
            if not callbacks and self._on_revoke.get(key_id) is callbacks:
                del self._on_revoke[key_id]

        return stop

    def _forget(self, digest: str) -> None:
        known = self._by_hash.pop(digest, None)
        if known is not None and self._by_id.get(known.key.id) is known:
            del self._by_id[known.key.id]
        self._unknown[digest] = None
        self._unknown.move_to_end(digest)
        if len(self._unknown) > UNKNOWN_KEPT:
            self._unknown.popitem(last=False)
