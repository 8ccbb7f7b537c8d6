"""A network between the browser and the server that a test can cut.

``Link`` forwards a loopback port to the server's. ``cut()`` resets every connection
through it and refuses new ones, as a dropped Wi-Fi does to a page's WebSocket (which
Playwright's ``set_offline`` leaves open); ``restore()`` lets connections through again.
"""

from __future__ import annotations

import asyncio
import contextlib

from api.embedded import free_port


class Link:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: asyncio.Server | None = None
        self._transports: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Link:
        await self.restore()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.cut()

    async def restore(self) -> None:
        if self._listener is None:
            self._listener = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Every open connection reset, new ones refused."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for writer in list(self._transports):
            writer.transport.abort()
        self._transports.clear()
        await asyncio.sleep(0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, upstream_writer}
        self._transports |= pair
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            self._transports -= pair

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
