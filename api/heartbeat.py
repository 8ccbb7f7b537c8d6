"""What the members' and the widget visitors' presence trackers share: a tick that pushes
their "online until" entries forward while sockets stay open.

The tick runs every sixth of ``IMBRACE_PRESENCE_TIMEOUT_S`` (between 0.2 and 5 s), so an
entry refreshed once a third of the timeout has passed is pushed forward long before it
expires, and an instance that dies stops keeping anyone online within the timeout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from api.periodic import Periodic


class Heartbeat:
    def __init__(self, services: Any, name: str) -> None:
        self.services = services
        self._name = name
        self._periodic: Periodic | None = None

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.services.settings.thresholds.presence_timeout_s)

    @property
    def interval_s(self) -> float:
        return max(0.2, min(5.0, self.timeout.total_seconds() / 6))

    def start(self) -> None:
        self._periodic = Periodic(self._name, lambda: self.tick(self.services.clock()), self.interval_s)
        self._periodic.start()

    async def stop(self) -> None:
        if self._periodic is not None:
            await self._periodic.stop()

    async def tick(self, now: datetime) -> None:
        raise NotImplementedError
