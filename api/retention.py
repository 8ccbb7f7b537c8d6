"""Forgetting on schedule: old events (typing indicators after a minute) and expired
login-throttle and widget rate counters.

Events are kept for ``IMBRACE_EVENT_RETENTION_S`` so a client can resume
after a disconnect; login counters only until their window has ended. Deleting
by an indexed timestamp is idempotent, so every instance may run it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from api.periodic import Periodic
from api.store.mongo import MongoStore
from domain.widget import SESSION_WINDOW_S

# Typing indicators ride the event log only to reach every instance's subscribers; they are
# never replayed, so they go after a minute instead of with the other events.
TYPING_KEPT_S = 60

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
        """Returns (events deleted, login records deleted); the web widget's rate counters go too
        once their longest window (an hour) is over. An organization's events that one of its
        enabled webhooks has not handled yet are kept until it has (at most
        ``IMBRACE_WEBHOOK_DISABLE_AFTER_S``, after which a failing webhook is disabled)."""
        holds = await self.store.webhooks.holds()
        events = await self.store.events.forget_before(now - timedelta(seconds=self.event_retention_s), holds)
        logins = await self.store.login_attempts.forget_before(now - timedelta(seconds=self.login_window_s))
        await self.store.rate_limits.forget_before(now - timedelta(seconds=SESSION_WINDOW_S))
        await self.store.events.forget_typing_before(now - timedelta(seconds=TYPING_KEPT_S))
        await self.store.webhooks.forget_deliveries_before(now - WEBHOOK_DELIVERIES_KEPT)
        await self.store.revoked_tokens.forget_before(now)
        return events, logins
