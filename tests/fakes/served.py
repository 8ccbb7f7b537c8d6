"""What every fake provider shares: served by uvicorn in the test's own event loop, on a free port."""

from __future__ import annotations

import asyncio
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from tests.serving import start_serving


class ServedInLoop:
    """The lifecycle of a fake provider server: ``async with Fake() as fake``, or ``start()``/``stop()``.

    A subclass sets ``port`` and calls :meth:`_serve` with its ASGI app once it is built.
    """

    port: int

    def _serve(self, app: ASGIApp, *, backlog: int = 2048) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            interface="asgi3",  # a bound method: uvicorn's guess would take it for ASGI 2
            lifespan="off",
            proxy_headers=False,
            backlog=backlog,
            # longer than any client's keep-alive, so a client never reuses a connection the fake is closing
            timeout_keep_alive=120,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        self._task = await start_serving(self._server)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
