"""A background job that runs every few seconds and survives its own failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    """Calls ``job()`` every ``interval_s`` until stopped; a failing run is logged and retried."""

    def __init__(self, name: str, job: Callable[[], Awaitable[object]], interval_s: float) -> None:
        self.name = name
        self.job = job
        self.interval_s = interval_s
        self.log = logging.getLogger(f"imbrace.{name}")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self.job()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.warning("%s failed; retrying", self.name, exc_info=True)
            await asyncio.sleep(self.interval_s)
