"""Forgetting on schedule: old events and expired login-throttle counters.

Events are kept for ``IMBRACE_EVENT_RETENTION_S`` so a client can resume
after a disconnect; login counters only until their window has ended. Deleting
by an indexed timestamp is idempotent, so every instance may run it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from api.periodic import Periodic
from api.store.mongo import MongoStore

WEBHOOK_DELIVERIES_KEPT = timedelta(days=7)  # webhooks' delivery logs


class Retention:
    def __init__(
        self, store: MongoStore, event_retention_s: float, login_window_s: float, clock, interval_s: float = 60
    ) -> None:
        self.store = store
        self.event_retention_s = event_retention_s
        self.login_window_s = login_window_s
        self.clock = clock
        self.interval_s = interval_s

    def start(self) -> None:
        self._periodic = Periodic("retention", lambda: self.purge(self.clock()), self.interval_s)
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def purge(self, now: datetime) -> tuple[int, int]:
        """Returns (events deleted, login records deleted). An organization's events that one of
        its enabled webhooks has not handled yet are kept until it has (at most
        ``IMBRACE_WEBHOOK_DISABLE_AFTER_S``, after which a failing webhook is disabled)."""
        holds = await self.store.webhooks.holds()
        events = await self.store.events.forget_before(now - timedelta(seconds=self.event_retention_s), holds)
        logins = await self.store.login_attempts.forget_before(now - timedelta(seconds=self.login_window_s))
        await self.store.webhooks.forget_deliveries_before(now - WEBHOOK_DELIVERIES_KEPT)
        return events, logins
