"""The event log: every conversation change, stored with a monotonic id.

Events live in MongoDB (:mod:`api.store.events`), not in process memory, so
every server instance reads the same ordered stream and a reconnecting client
can ask for what it missed. Notifications are decided and stored here, once,
by the instance that makes the change (:func:`domain.usecases.notifications.notify`);
the event names their recipients so every instance can push them to
connected members.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from api.metrics import Metrics
from api.store.codec import ms
from api.store.events import API_KEY_REVOKED, MEMBER_TOKENS_REVOKED, TEAMS_CHANGED, TOKEN_REVOKED
from api.store.mongo import MongoStore
from domain.events import Event
from domain.status import Thresholds, status_of
from domain.usecases.notifications import notify


class EventLog:
    def __init__(self, store: MongoStore, thresholds: Thresholds, metrics: Metrics | None = None) -> None:
        self.store = store
        self.thresholds = thresholds
        self.metrics = metrics or Metrics()
        self.on_publish: Callable[[], None] | None = None

    async def publish(self, event: Event) -> int:
        if event.new_status is None:
            event = replace(event, new_status=status_of(event.conversation, event.at, self.thresholds))
        notified = await notify(self.store.notifications, self.store, event)
        event_id = await self.store.events.next_id()
        await self.store.events.append(event, event_id, notified)
        self.metrics.published(event.kind.value)
        self._wake()
        return event_id

    async def publish_teams_changed(self, org_id: str, at: datetime) -> None:
        """Subscribers of the organization re-read their teams: a removed member stops seeing at once."""
        event_id = await self.store.events.next_id()
        await self.store.events.append_teams_changed(event_id, org_id, at)
        self.metrics.published(TEAMS_CHANGED)
        self._wake()

    async def publish_api_key_revoked(self, org_id: str, key_id: str, at: datetime) -> None:
        """Every instance forgets the key and closes the WebSockets opened with it
        (:class:`api.api_keys.ApiKeyRegistry`, told by its hub)."""
        event_id = await self.store.events.next_id()
        await self.store.events.append_api_key_revoked(event_id, org_id, key_id, at)
        self.metrics.published(API_KEY_REVOKED)
        self._wake()

    async def publish_member_tokens_revoked(self, org_id: str, member_id: str, version: int, at: datetime) -> None:
        """Every instance refuses the member's tokens older than ``version`` and closes the
        WebSockets opened with them (:class:`api.sessions.MemberSessions`, told by its hub)."""
        await self._notice(org_id, MEMBER_TOKENS_REVOKED, at, member_id=member_id, version=version)

    async def publish_token_revoked(
        self, org_id: str, member_id: str, token_id: str, expires_at: datetime, at: datetime
    ) -> None:
        """Every instance refuses this one token (``logout``) until it expires."""
        await self._notice(org_id, TOKEN_REVOKED, at, member_id=member_id, jti=token_id, exp=ms(expires_at))

    async def _notice(self, org_id: str, kind: str, at: datetime, **fields) -> None:
        event_id = await self.store.events.next_id()
        await self.store.events.append_notice(event_id, org_id, kind, at, **fields)
        self.metrics.published(kind)
        self._wake()

    async def publish_notified(self, org_id: str, at: datetime, notified: dict[str, str]) -> None:
        """Pushes stored notifications that are about no conversation (a webhook disabled) to
        the members they name, on every instance."""
        if not notified:
            return
        event_id = await self.store.events.next_id()
        await self.store.events.append_notified(event_id, org_id, at, notified)
        self._wake()

    def _wake(self) -> None:
        if self.on_publish is not None:
            self.on_publish()
