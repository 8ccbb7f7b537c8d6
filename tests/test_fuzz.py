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
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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

WATCHED = (
    "organizations",
    "members",
    "teams",
    "channels",
    "customers",
    "conversations",
    "messages",
    "templates",
    "notifications",
    "events",
    "fs.files",
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


class LiveServer:
    def __init__(self, mongo_uri, data_dir) -> None:
        # No timer transitions: the sweeper must not write while snapshots are compared.
        self.settings = make_settings(
            mongo_uri,
            data_dir,
            thresholds=Thresholds(soon_after_s=3600, overdue_after_s=7200, auto_close_after_s=86400),
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.db = MongoClient(mongo_uri, tz_aware=True)[self.settings.database]
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> LiveServer:
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
            await create_organization(
                MongoStore(client[server.settings.database]),
                Passwords(),
                "Fuzz",
                "owner@fuzz.example",
                PASSWORD,
                "Owner",
                datetime.now(UTC),
            )
        finally:
            await client.close()

    asyncio.run(owner())
    token = server.gql(
        "mutation($i: LoginInput!) { login(input: $i) { token } }",
        {"i": {"email": "owner@fuzz.example", "password": PASSWORD}},
    )["data"]["login"]["token"]
    team = server.gql('mutation { createTeam(input: {name: "T", mode: GRAB}) { team { id } } }', token=token)["data"][
        "createTeam"
    ]["team"]["id"]
    channel = server.gql(
        """mutation($t: ID!) { connectChannel(input: {type: WEB_WIDGET, name: "W", teamId: $t}) {
        channel { id } ingestKey } }""",
        {"t": team},
        token,
    )["data"]["connectChannel"]
    server.token, server.channel_id, server.channel_key = token, channel["channel"]["id"], channel["ingestKey"]
    server.http.post(
        f"/channels/{server.channel_id}/inbound",
        headers={"X-Channel-Key": server.channel_key},
        json={"customer": {"externalId": "seed"}, "text": "seed"},
    )
    seed = server.db.conversations.find_one({})["_id"]
    server.gql("mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }", {"id": seed}, token)
    yield server
    server.stop()


# Text as hostile clients send it: any code point, lone surrogates included
# (``\ud800``, which JSON can carry as an escape but no database can store).
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_text = st.one_of(
    st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.text(max_size=10),
        surrogates | st.sampled_from(["\x00", "\n", "\x7f", "\u2028"]),
        st.text(max_size=10),
    ),
    st.text(surrogates | st.characters(codec=None), max_size=40),
)
# Moments that parse, in every year and with extreme offsets, and ones that don't.
hostile_times = st.builds(
    lambda moment, offset: moment.isoformat() + offset,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(["", "Z", "+14:00", "-23:59", "+23:59", "+00:00", "-12:00"]),
) | st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-23:59",
        "1999-12-31T23:59:59Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30",
        "",
        "T",
        "2026-01-01T25:00:00",
        "+275760-09-13T00:00:00Z",
        "2026-01-01T00:00:00+24:00",
        "yesterday",
        "9999-99-99",
        "2026-01-01T00:00:00Z",
    ]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | hostile_text
    | st.sampled_from(["$where", "a.b", "\x00", "x" * 5000, "0123456789abcdef01234567", "\ud800", "a\udfffb"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | hostile_text | st.sampled_from(["$gt", "$ne", "a.b", "externalId", "\ud800"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
customers = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"externalId": json_values | st.text(max_size=300) | hostile_text},
        optional={"name": json_values, "email": json_values | st.emails(), "phone": json_values},
    ),
)
inbound_bodies = st.fixed_dictionaries(
    {},
    optional={
        "customer": customers,
        "text": json_values | st.text(max_size=5000) | hostile_text,
        "messageId": json_values,
        "attachments": json_values
        | st.lists(
            st.fixed_dictionaries({"url": json_values}, optional={"name": json_values, "mimeType": json_values}),
            max_size=20,
        ),
        "sentAt": json_values | hostile_times,
    },
)
presence_bodies = st.fixed_dictionaries(
    {}, optional={"customer": customers, "online": json_values, "location": json_values}
)


def _nested(depth: int, kind: str) -> bytes:
    opening, closing = (b"[", b"]") if kind == "list" else (b'{"a":', b"}")
    return b'{"customer": {"externalId": "deep"}, "text": "hi", "x": ' + opening * depth + b"1" + closing * depth + b"}"


# Bodies json.dumps can't produce: deep nesting, numbers too long to convert or
# out of float range, invalid UTF-8, non-standard constants.
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(_nested, st.integers(1, 100_000), st.sampled_from(["list", "dict"])),
    st.builds(
        lambda digits, where: where.replace(b"N", b"1" + b"0" * digits),
        st.integers(300, 20_000),
        st.sampled_from(
            [
                b'{"customer": {"externalId": "n"}, "text": N}',
                b'{"sentAt": N}',
                b'{"customer": {"externalId": N}, "text": "hi"}',
            ]
        ),
    ),
    st.sampled_from(
        [
            b'{"customer": {"externalId": "n"}, "text": "hi", "sentAt": 1e400}',
            b'{"customer": {"externalId": "n"}, "text": NaN}',
            b'{"text": -Infinity}',
            b'{"customer": {"externalId": "n"}, "text": "\xff\xfe"}',
            b"\xef\xbb\xbf{}",
        ]
    ),
)


def _post(live, path, body) -> httpx.Response:
    """Bodies are encoded here (``ensure_ascii``: lone surrogates travel as ``\\ud800``)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return live.http.post(
        f"/channels/{live.channel_id}/{path}",
        content=content,
        timeout=30,
        headers={"X-Channel-Key": live.channel_key, "Content-Type": "application/json"},
    )


@FUZZ
@given(body=inbound_bodies | raw_bodies)
def test_inbound_never_crashes_and_refusals_write_nothing(live, body):
    before = live.snapshot()
    response = _post(live, "inbound", body)
    assert response.status_code in (202, 413, 415, 422), response.text
    assert response.json(), response.text
    if response.status_code != 202:
        assert live.snapshot() == before


@FUZZ
@given(body=presence_bodies | raw_bodies)
def test_presence_never_crashes_and_refusals_write_nothing(live, body):
    before = live.snapshot()
    response = _post(live, "presence", body)
    assert response.status_code in (200, 413, 415, 422), response.text
    if response.status_code != 200:
        assert live.snapshot() == before


HOSTILE_MUTATIONS = {
    "updateCustomer": "mutation($s: String, $j: JSON) { updateCustomer(input: {id: $id, name: $s, "
    "attributes: $j}) { errors { code } } }",
    "createTeam": "mutation($s: String!) { createTeam(input: {name: $s, mode: GRAB}) { errors { code } } }",
    "connectChannel": "mutation($s: String!) { connectChannel(input: {type: LINE, name: $s, teamId: $team}) "
    "{ errors { code } } }",
    "createMessageTemplate": "mutation($s: String!) { createMessageTemplate(input: {name: $s, body: $s}) "
    "{ errors { code } } }",
    "sendMessage": "mutation($s: String) { sendMessage(input: {conversationId: $id, kind: TEXT, text: $s}) "
    "{ errors { code } } }",
    "inviteMember": "mutation($s: String!) { inviteMember(input: {email: $s, name: $s, password: $s, "
    "role: MEMBER}) { errors { code } } }",
    "login": "mutation($s: String!) { login(input: {email: $s, password: $s}) { errors { code } } }",
}


@FUZZ
@given(
    name=st.sampled_from(sorted(HOSTILE_MUTATIONS)), text=hostile_text | st.text(max_size=300), attributes=json_values
)
def test_hostile_text_in_mutations_is_refused_without_internal_errors(live, name, text, attributes):
    """Strings (and attribute trees) with lone surrogates, NULs and control characters
    in every free-text argument: a typed refusal and no write, or a clean success."""
    seed = live.db.conversations.find_one({})
    query = (
        HOSTILE_MUTATIONS[name].replace("$id", json.dumps(seed["_id"])).replace("$team", json.dumps(seed["team_id"]))
    )
    variables = {"s": text, **({"j": attributes} if "$j" in query else {})}
    before = live.snapshot()
    response = live.http.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Authorization": f"Bearer {live.token}", "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 400), response.text
    body = response.json()
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert "INTERNAL_SERVER_ERROR" not in codes, body
    if _refused(body):
        assert live.snapshot() == before, body


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
    expired = jwt.encode(
        {**claims, "exp": datetime.now(UTC) - timedelta(minutes=1)},
        live.settings.jwt_secret,
        algorithm="HS256",
    )
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for token in (expired, _token(claims), f"{header}.{body}.", live.token + "x", "", "a.b.c"):
        answer = live.gql("{ me { id } }", token=token)
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
