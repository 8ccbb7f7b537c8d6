"""Fault survival: the database dies under load, a server process dies mid-burst."""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from api.embedded import EmbeddedMongo, free_port
from domain.status import Thresholds
from tests.world import new_org
from tests.ws import Subscriber

EVENTS = "subscription($after: ID) { conversationEvents(after: $after) { id kind } }"


async def test_database_killed_then_restarted(make_server):
    with tempfile.TemporaryDirectory() as data_dir:
        databases = [EmbeddedMongo(Path(data_dir)).start()]
        try:
            await _outage_and_recovery(make_server, databases, Path(data_dir))
        finally:
            for db in databases:  # never leak a database process, whatever failed
                db.stop()


async def _outage_and_recovery(make_server, databases: list, data_dir: Path) -> None:
    db = databases[0]
    server = await make_server(
        mongodb_uri=db.uri,  # no timer events: only the outage is under test
        thresholds=Thresholds(soon_after_s=600, overdue_after_s=900),
    )
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"), "LINE")
    acknowledged = [(await org.customer_writes(channel, f"c{i}", f"m{i}"))["messageId"] for i in range(10)]
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(EVENTS)
        db.kill()
        started = time.monotonic()
        while (await server.http.get("/healthz")).status_code != 503:
            assert time.monotonic() - started < 2, "healthz still 200 two seconds after the kill"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        body = await server.gql("{ conversations { totalCount } }", token=org.owner.token, expect_errors=True)
        assert time.monotonic() - started < 5
        assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        response = await server.inbound(channel.id, channel.key, {"customer": {"externalId": "x"}, "text": "t"})
        assert response.status_code == 503
        # the subscription stays open through the outage and works after it
        databases.append(EmbeddedMongo(data_dir, port=db.port).start())
        deadline = time.monotonic() + 15
        while (await server.http.get("/healthz")).status_code != 200:
            assert time.monotonic() < deadline, "server did not recover"
            await asyncio.sleep(0.1)
        await org.customer_writes(channel, "c0", "after the outage")
        assert (await sub.next_data(timeout=10))["conversationEvents"]["kind"] == "MESSAGE"
    stored = {d["_id"] async for d in server.db.messages.find({}, {"_id": 1})}
    assert set(acknowledged) <= stored
    await server.stop()


def _serve(port: int, uri: str, database: str, data_dir: str, secret: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "IMBRACE_DATABASE": database,
        "IMBRACE_DATA_DIR": data_dir,
        "IMBRACE_JWT_SECRET": secret,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            await asyncio.sleep(0.2)


async def test_server_killed_mid_burst_loses_nothing_acknowledged(server, mongo_uri, data_dir):
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"), "LINE")
    port = free_port()
    victim = _serve(port, mongo_uri, server.settings.database, str(data_dir), server.settings.jwt_secret)
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(url)
        async with Subscriber(f"ws://127.0.0.1:{port}/graphql", org.owner.token) as sub:
            await sub.subscribe(EVENTS)
            acknowledged: list[str] = []

            async def poster(worker: int) -> None:
                async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                    for i in range(1000):
                        try:
                            response = await client.post(
                                f"/channels/{channel.id}/inbound",
                                headers={"X-Channel-Key": channel.key},
                                json={"customer": {"externalId": f"w{worker}"}, "text": f"{worker}-{i}"},
                            )
                        except httpx.TransportError:
                            return
                        if response.status_code == 202:
                            acknowledged.append(response.json()["messageId"])

            burst = [asyncio.create_task(poster(w)) for w in range(8)]
            first = (await sub.next_data(timeout=10))["conversationEvents"]
            while len(acknowledged) < 30:
                await asyncio.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
            await asyncio.gather(*burst)
        stored = {d["_id"] async for d in server.db.messages.find({}, {"_id": 1})}
        assert acknowledged and set(acknowledged) <= stored
        # its subscriber moves to another instance and resumes after the last event it saw
        async with Subscriber(server.ws_url, org.owner.token) as resumed:
            await resumed.subscribe(EVENTS, {"after": first["id"]})
            total = await server.db.events.count_documents(
                {"_id": {"$gt": int(first["id"])}, "org_id": {"$exists": True}, "kind": {"$in": ["CREATED", "MESSAGE"]}}
            )
            events = [e["conversationEvents"] for e in await resumed.collect(total, timeout=10)]
            ids = [int(e["id"]) for e in events]
            assert ids == sorted(ids) and len(set(ids)) == total and ids[0] > int(first["id"])
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()
