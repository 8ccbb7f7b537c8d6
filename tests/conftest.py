"""Test harness: one embedded MongoDB per session, one real server per test.

Every test gets its own database name and a real uvicorn server on a free
loopback port, and talks to it over HTTP/WebSocket exactly as a frontend would.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pymongo import AsyncMongoClient

from api.app import create_app
from api.embedded import EmbeddedMongo, free_port
from api.services import utc_now
from api.settings import Settings
from domain.status import Thresholds
from domain.usecases.messaging import MessagingSettings
from tests.serving import start_serving


@pytest.fixture(scope="session")
def mongo_uri():
    """Real MongoDB when MONGODB_URI is set, else the embedded nx-27017 server."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    with tempfile.TemporaryDirectory(prefix="imbrace-test-db-") as data_dir:
        embedded = EmbeddedMongo(Path(data_dir)).start()
        try:
            yield embedded.uri
        finally:
            embedded.stop()


@pytest.fixture(scope="session")
def data_dir():
    with tempfile.TemporaryDirectory(prefix="imbrace-test-") as path:
        yield Path(path)


# IMBRACE_SECRET_KEY of every test server (32 bytes, base64): one key, none generated into the shared data_dir.
TEST_SECRET_KEY = base64.b64encode(b"test-secret-key-".ljust(32, b"k")).decode()


def make_settings(mongo_uri: str, data_dir: Path, **overrides: Any) -> Settings:
    thresholds = overrides.pop(
        "thresholds", Thresholds(soon_after_s=3, overdue_after_s=5, auto_close_after_s=3600, presence_timeout_s=60)
    )
    messaging = overrides.pop("messaging", MessagingSettings(max_upload_bytes=64 * 1024))
    base = Settings(
        mongodb_uri=mongo_uri,
        database="t" + uuid.uuid4().hex[:16],
        data_dir=data_dir,
        jwt_secret="test-secret-" + "x" * 32,
        secret_key=TEST_SECRET_KEY,
        thresholds=thresholds,
        messaging=messaging,
        sweep_interval_s=0.2,
        email_backoff_s=0.05,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )  # cheap KDF: tests log in hundreds of times
    return dataclasses.replace(base, **overrides)


class Server:
    """A real uvicorn server in this event loop, plus a client speaking to it."""

    def __init__(self, settings: Settings, listeners=None, clock=utc_now) -> None:
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings, listeners, clock=clock)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
            ws_per_message_deflate=settings.ws_compression,
            lifespan="on",
            timeout_graceful_shutdown=5,
            proxy_headers=False,
        )  # as `imbrace serve`: the app decides whom to trust
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task | None = None
        # Idle connections expire before uvicorn's 5 s keep-alive does, so a loaded
        # machine never reuses a connection the server is closing.
        self.http = httpx.AsyncClient(base_url=self.url, timeout=30, limits=httpx.Limits(keepalive_expiry=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def services(self):
        return self.app.state.services

    @property
    def db(self):
        return self.services.store.db

    async def start(self) -> Server:
        self.task = await start_serving(self.server)
        return self

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.http.aclose()
        if self.task:
            await self.task

    async def sweep(self) -> int:
        """One sweep at the server's now, as its periodic sweeper would run it; how many it announced."""
        return await self.app.state.runtime.sweeper.sweep(self.services.clock())

    async def subscribed(self, operations: int, streams: int | None = None, timeout: float = 5) -> None:
        """Returns once ``operations`` WebSocket subscriptions run on this server and ``streams``
        (default: as many) of them follow the event hub, so an event published now reaches them.

        Identical ``conversationEvents`` subscriptions share one stream (:mod:`api.graphql.multiplex`):
        four of them are four operations and one stream. An operation joins its group as soon as it
        counts as running. Counts are of the whole server, not of one socket.
        """
        metrics, audience = self.app.state.runtime.metrics, self.services.hub.audience
        deadline = asyncio.get_running_loop().time() + timeout
        streams = operations if streams is None else streams
        while True:
            running = metrics.registry.get_sample_value("imbrace_active_subscriptions")
            following = sum(len(subscriptions) for subscriptions in audience.by_org.values())
            if running >= operations and following >= streams:
                return
            assert asyncio.get_running_loop().time() < deadline, (
                f"{running:.0f} of {operations} subscriptions running, {following} of {streams} streams"
            )
            await asyncio.sleep(0.005)

    async def gql(
        self, query: str, variables: dict | None = None, token: str | None = None, expect_errors: bool = False
    ) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        if not expect_errors:
            assert "errors" not in body, body
            return body["data"]
        return body

    async def inbound(self, channel_id: str, key: str, body: dict) -> httpx.Response:
        return await self.http.post(f"/channels/{channel_id}/inbound", json=body, headers={"X-Channel-Key": key})

    async def presence(self, channel_id: str, key: str, body: dict) -> httpx.Response:
        return await self.http.post(f"/channels/{channel_id}/presence", json=body, headers={"X-Channel-Key": key})


@pytest.fixture
async def make_server(mongo_uri, data_dir):
    started: list[Server] = []

    async def make(listeners=None, clock=utc_now, **overrides) -> Server:
        """``clock``: the server's time, e.g. a :class:`tests.clock.FakeClock` a test moves forward."""
        server = await Server(make_settings(mongo_uri, data_dir, **overrides), listeners, clock).start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        await server.stop()
    await drop_databases(mongo_uri, {server.settings.database for server in started})


async def drop_databases(mongo_uri: str, names: set[str]) -> None:
    """Each test's database is dropped when it ends.

    nx-27017 keeps at most 100 databases open and closes the least recently used
    one past that, even while another connection is about to use it ("Cannot
    operate on a closed database"); a suite that leaves one database per test
    behind crosses that line. Dropping them keeps the count at a handful.
    """
    client = AsyncMongoClient(mongo_uri)
    try:
        for name in names:
            await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture
async def server(make_server) -> Server:
    return await make_server()


@pytest.fixture
async def raw_db(mongo_uri):
    client = AsyncMongoClient(mongo_uri, tz_aware=True)
    yield client
    await client.close()
