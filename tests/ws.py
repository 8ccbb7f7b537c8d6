"""A minimal graphql-transport-ws client over a real WebSocket."""

from __future__ import annotations

import asyncio
import itertools
import json

import websockets

SUBPROTOCOL = "graphql-transport-ws"


class Subscriber:
    def __init__(self, url: str, token: str | None, origin: str | None = None) -> None:
        self.url = url
        self.token = token
        self.origin = origin
        self.socket = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Subscriber:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> dict:
        headers = {"Origin": self.origin} if self.origin else None
        self.socket = await websockets.connect(self.url, subprotocols=[SUBPROTOCOL], additional_headers=headers)
        payload = {"authorization": f"Bearer {self.token}"} if self.token else {}
        await self.socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        return await self.receive()

    async def subscribe(self, query: str, variables: dict | None = None) -> str:
        op_id = str(next(self._ids))
        await self.socket.send(
            json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
        )
        return op_id

    async def receive(self, timeout: float = 5) -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), timeout))
            if message.get("type") == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def next_data(self, timeout: float = 5) -> dict:
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]

    async def collect(self, count: int, timeout: float = 10) -> list[dict]:
        return [await self.next_data(timeout) for _ in range(count)]

    async def nothing_within(self, seconds: float) -> bool:
        try:
            message = await self.receive(seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message {message}")

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
