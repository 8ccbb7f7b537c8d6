"""An integrator's webhook endpoint, in the test's event loop.

Every request is verified with the ``standardwebhooks`` package (the specification's own
Python library, an implementation independent of the server's signing) against each
secret the test gave it, and kept with what verified it. The test decides the answer:
a status code, a body, a redirect, or holding the request until released.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.embedded import free_port
from tests.serving import start_serving


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    body: bytes
    host: str
    verified_by: list[int] = field(default_factory=list)  # indexes into Receiver.secrets

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def event_id(self) -> int | None:
        """From the webhook-id (``evt_<event id>_<webhook id>``); None for a ping."""
        kind, _, rest = self.webhook_id.partition("_")
        return int(rest.split("_", 1)[0]) if kind == "evt" else None


class Receiver:
    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.requests: list[Received] = []
        self.status = 200
        self.body = b"ok"
        self.headers: dict[str, str] = {}
        self.hold: asyncio.Event | None = None  # set: answer; unset: the request waits
        self.held = asyncio.Event()  # set once a request is waiting on ``hold``
        self._arrived = asyncio.Condition()
        self.port = free_port()
        app = Starlette(routes=[Route("/hook", self._endpoint, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._task = await start_serving(self.server)
        return self

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        got = Received(
            webhook_id=headers.get("webhook-id", ""),
            timestamp=headers.get("webhook-timestamp", ""),
            signature=headers.get("webhook-signature", ""),
            body=body,
            host=headers.get("host", ""),
        )
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            got.verified_by.append(index)
        if self.hold is not None and not self.hold.is_set():
            self.held.set()
            await self.hold.wait()
        async with self._arrived:
            self.requests.append(got)
            self._arrived.notify_all()
        return Response(self.body, status_code=self.status, headers=self.headers)

    async def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """Once at least ``count`` requests have been answered, all of them."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    def distinct(self) -> list[Received]:
        """The requests as a receiver de-duplicating on ``webhook-id`` keeps them (first copy)."""
        seen: set[str] = set()
        kept = []
        for got in self.requests:
            if got.webhook_id not in seen:
                seen.add(got.webhook_id)
                kept.append(got)
        return kept
