"""Property-based fuzzing: hostile input never crashes the server nor changes the database.

Hypothesis drives the inbound/presence webhooks; schemathesis's GraphQL
support drives every query and mutation of the live schema. The server runs
in its own thread so these synchronous property tests can call it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import jwt
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings, strategies as st
from pymongo import MongoClient

from api.app import create_app
from api.auth import Passwords
from api.embedded import free_port
from api.store.database import connect
from api.store.mongo import MongoStore
from domain.status import Thresholds
from domain.usecases.onboarding import create_organization
from tests.conftest import make_settings
from tests.world import PASSWORD

WATCHED = ("organizations", "members", "teams", "channels", "customers", "conversations", "messages", "templates",
           "notifications", "events", "fs.files")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


class LiveServer:
    def __init__(self, mongo_uri, data_dir) -> None:
        # No timer transitions: the sweeper must not write while snapshots are compared.
        self.settings = make_settings(mongo_uri, data_dir, thresholds=Thresholds(
            soon_after_s=3600, overdue_after_s=7200, auto_close_after_s=86400))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.db = MongoClient(mongo_uri, tz_aware=True)[self.settings.database]
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> "LiveServer":
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.http.close()

    def gql(self, query, variables=None, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers).json()

    def snapshot(self) -> dict:
        return {name: list(self.db[name].find({}, sort=[("_id", 1)])) for name in WATCHED}


@pytest.fixture(scope="module")
def live(mongo_uri, data_dir):
    server = LiveServer(mongo_uri, data_dir).start()

    async def owner():
        client = connect(mongo_uri)
        try:
            await create_organization(MongoStore(client[server.settings.database]), Passwords(), "Fuzz",
                                      "owner@fuzz.example", PASSWORD, "Owner", datetime.now(timezone.utc))
        finally:
            await client.close()
    asyncio.run(owner())
    token = server.gql("mutation($i: LoginInput!) { login(input: $i) { token } }",
                       {"i": {"email": "owner@fuzz.example", "password": PASSWORD}})["data"]["login"]["token"]
    team = server.gql('mutation { createTeam(input: {name: "T", mode: GRAB}) { team { id } } }',
                      token=token)["data"]["createTeam"]["team"]["id"]
    channel = server.gql("""mutation($t: ID!) { connectChannel(input: {type: WEB_WIDGET, name: "W", teamId: $t}) {
        channel { id } ingestKey } }""", {"t": team}, token)["data"]["connectChannel"]
    server.token, server.channel_id, server.channel_key = token, channel["channel"]["id"], channel["ingestKey"]
    server.http.post(f"/channels/{server.channel_id}/inbound", headers={"X-Channel-Key": server.channel_key},
                     json={"customer": {"externalId": "seed"}, "text": "seed"})
    yield server
    server.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40) | st.sampled_from(["$where", "a.b", "\x00", "x" * 5000, "0123456789abcdef01234567"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8) | st.sampled_from(["$gt", "$ne", "a.b", "externalId"]), children, max_size=4),
    max_leaves=20)
customers = st.one_of(json_values, st.fixed_dictionaries(
    {"externalId": json_values | st.text(max_size=300)},
    optional={"name": json_values, "email": json_values | st.emails(), "phone": json_values}))
inbound_bodies = st.fixed_dictionaries({}, optional={
    "customer": customers, "text": json_values | st.text(max_size=5000), "messageId": json_values,
    "attachments": json_values | st.lists(st.fixed_dictionaries({"url": json_values}), max_size=20),
    "sentAt": json_values | st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", "9999-99-99"])})
presence_bodies = st.fixed_dictionaries({}, optional={"customer": customers, "online": json_values,
                                                      "location": json_values})


def _post(live, path, body) -> httpx.Response:
    return live.http.post(f"/channels/{live.channel_id}/{path}", headers={"X-Channel-Key": live.channel_key},
                          content=json.dumps(body).encode(), timeout=30) if not isinstance(body, bytes) else \
        live.http.post(f"/channels/{live.channel_id}/{path}", headers={
            "X-Channel-Key": live.channel_key, "Content-Type": "application/json"}, content=body)


@FUZZ
@given(body=inbound_bodies | st.binary(max_size=200))
def test_inbound_never_crashes_and_refusals_write_nothing(live, body):
    before = live.snapshot()
    response = _post(live, "inbound", body) if isinstance(body, bytes) else live.http.post(
        f"/channels/{live.channel_id}/inbound", headers={"X-Channel-Key": live.channel_key}, json=body)
    assert response.status_code in (202, 413, 415, 422), response.text
    if response.status_code != 202:
        assert live.snapshot() == before


@FUZZ
@given(body=presence_bodies)
def test_presence_never_crashes_and_refusals_write_nothing(live, body):
    before = live.snapshot()
    response = live.http.post(f"/channels/{live.channel_id}/presence", headers={"X-Channel-Key": live.channel_key},
                              json=body)
    assert response.status_code in (200, 422), response.text
    if response.status_code != 200:
        assert live.snapshot() == before


def _refused(body: dict) -> bool:
    """A top-level error, or a mutation payload whose `errors` list is not empty."""
    if body.get("errors"):
        return True
    data = body.get("data") or {}
    return any(isinstance(v, dict) and v.get("errors") for v in data.values())


def test_every_operation_fuzzed_by_schemathesis(live):
    schema = schemathesis.graphql.from_url(live.url + "/graphql")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    headers = {"Authorization": f"Bearer {live.token}"}
    for operation in operations:
        if operation.label.startswith("Subscription."):
            continue

        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def check(case):
            before = live.snapshot()
            response = case.call(base_url=live.url + "/graphql", headers=headers, timeout=30)
            assert response.status_code in (200, 400), (operation.label, response.text)
            body = response.json()
            codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
            assert "INTERNAL_SERVER_ERROR" not in codes, (operation.label, body)
            if _refused(body):
                assert live.snapshot() == before, (operation.label, body)
        check()


def _token(payload: dict, key: str = "a-wrong-secret-of-sufficient-length!", alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def test_expired_forged_and_alg_none_tokens(live):
    claims = jwt.decode(live.token, options={"verify_signature": False})
    expired = jwt.encode({**claims, "exp": datetime.now(timezone.utc) - timedelta(minutes=1)},
                         live.settings.jwt_secret, algorithm="HS256")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for token in (expired, _token(claims), f"{header}.{body}.", live.token + "x", "", "a.b.c"):
        answer = live.gql("{ me { id } }", token=token)
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
