"""Hostile or broken input gets a clear typed answer, never a crash, a traceback or a leak."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.world import new_org, support_desk
from tests.ws import Subscriber

ME = "{ me { id } }"

# What a real conversations screen asks for: a page of 50 with everything the list shows,
# and the chat pane of the open conversation with its last 100 messages.
REAL_PAGE = """query Inbox($id: ID!) {
  conversations(first: 50) { totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id status waitingSince joinedByMe representativeCount emailFallbackActive
      customer { id name email phone online location { city country } }
      team { id name mode members { role member { id name } } }
      channel { id type name }
      representatives { id name }
      owner { id name }
      lastMessage { id text seq createdAt kind attachments { url name } sender { kind member { id name } } } } } }
  conversation(id: $id) { id
    messages(last: 100) { pageInfo { hasPreviousPage startCursor }
      edges { cursor node { id seq text kind createdAt sentAt
        attachments { url mimeType name size }
        deliveries { via status attempts at }
        sender { kind member { id name } customer { id name } } } } } }
}"""

CONVERSATIONS_AND_MESSAGES = (
    "c{i}: conversations(first: 100) {{ edges {{ node {{ id messages(last: 100) "
    "{{ edges {{ node {{ id text }} }} }} }} }} }}"
)


def tracebacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def _errors(server, query, token=None, variables=None):
    body = await server.gql(query, variables, token, expect_errors=True)
    return body.get("errors") or []


# -- 1. query cost ---------------------------------------------------------------------------------------


async def test_a_costly_query_is_refused_before_it_runs_with_its_figures(server, caplog):
    org, team, _agents, channel = await support_desk(server, "ann")
    for i in range(3):
        await org.customer_writes(channel, f"cust-{i}", "Hello")
    attack = "{ " + " ".join(CONVERSATIONS_AND_MESSAGES.format(i=i) for i in range(30)) + " }"
    started = time.monotonic()
    body = await server.gql(attack, token=org.owner.token, expect_errors=True)
    assert time.monotonic() - started < 2
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    # 30 × (100 conversations + 100 × 100 messages)
    assert "303,000" in error["message"] and "10,000" in error["message"]
    assert error["extensions"]["cost"] == 303000 and error["extensions"]["maxCost"] == 10000
    assert not tracebacks(caplog)


async def test_cost_counts_variables_defaults_and_fragments(make_server):
    server = await make_server(max_query_nodes=1000)
    org = await new_org(server)
    by_variable = """query($n: Int!) { conversations(first: $n) { edges { node { id
        messages(last: $n) { edges { node { id } } } } } } }"""
    # 40 + 40 × 40 = 1,640
    errors = await _errors(server, by_variable, org.owner.token, {"n": 40})
    assert errors[0]["extensions"]["code"] == "QUERY_TOO_COSTLY" and "1,640" in errors[0]["message"]
    assert (await server.gql(by_variable, {"n": 20}, org.owner.token))["conversations"]["edges"] == []
    # argument defaults: first 20, last 50 → 20 + 20 × 50 = 1,020
    by_default = "{ conversations { edges { node { messages { edges { node { id } } } } } } }"
    errors = await _errors(server, by_default, org.owner.token)
    assert errors[0]["extensions"]["code"] == "QUERY_TOO_COSTLY" and "1,020" in errors[0]["message"]
    through_fragments = """query { conversations(first: 30) { ...Page } }
        fragment Page on ConversationConnection { edges { node { ... on Conversation {
            messages(last: 40) { edges { node { id } } } } } } }"""
    errors = await _errors(server, through_fragments, org.owner.token)
    assert errors[0]["extensions"]["code"] == "QUERY_TOO_COSTLY" and "1,230" in errors[0]["message"]


async def test_a_real_conversations_page_passes_with_room_to_spare(server):
    org, team, _agents, channel = await support_desk(server, "ann")
    reply = await org.customer_writes(channel, "cust", "Hello")
    data = await server.gql(REAL_PAGE, {"id": reply["conversationId"]}, org.owner.token)
    assert data["conversations"]["totalCount"] == 1
    assert data["conversation"]["messages"]["edges"][0]["node"]["text"] == "Hello"
    # the same screen four times over still fits
    four = (
        "query($id: ID!) { "
        + " ".join(
            f"p{i}: conversations(first: 50) {{ edges {{ node {{ id representatives {{ id }} }} }} }} "
            f"m{i}: conversation(id: $id) {{ messages(last: 100) {{ edges {{ node {{ id attachments {{ url }} "
            f"deliveries {{ status }} }} }} }} }}"
            for i in range(4)
        )
        + " }"
    )
    await server.gql(four, {"id": reply["conversationId"]}, org.owner.token)


async def test_a_costly_subscription_is_refused_and_the_socket_stays(make_server):
    server = await make_server(max_query_nodes=5)
    org, _team, _agents, channel = await support_desk(server)
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        costly = await sub.subscribe(
            "subscription { conversationEvents { id conversation { messages(last: 10) { edges { node { id } } } } } }"
        )
        message = await sub.receive()
        assert message["type"] == "error" and message["id"] == costly
        error = message["payload"][0]
        assert error["extensions"]["code"] == "QUERY_TOO_COSTLY" and "up to 10 nodes" in error["message"]
        await sub.subscribe(
            "subscription { conversationEvents { kind conversation { "
            "messages(last: 5) { edges { node { text } } } } } }"
        )
        await server.subscribed(1)
        await org.customer_writes(channel, "cust", "Hello")
        [data] = await sub.collect(1)
        assert data["conversationEvents"]["kind"] == "CREATED"


async def test_a_slow_request_answers_a_timeout_and_others_go_on(make_server, caplog):
    server = await make_server(request_timeout_s=0.3)
    org = await new_org(server)
    store = server.services.store
    real = store.members

    async def slow(org_id):
        await asyncio.sleep(5)
        return await real(org_id)

    store.members = slow
    started = time.monotonic()
    body = await server.gql("{ members { id } }", token=org.owner.token, expect_errors=True)
    assert time.monotonic() - started < 2
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert "0.3" in body["errors"][0]["message"]
    assert (await server.gql(ME, token=org.owner.token))["me"]["id"] == org.owner.id
    assert not tracebacks(caplog)


async def test_a_slow_mutation_is_let_finish(make_server):
    """Stopping a mutation halfway could leave half its writes: the deadline is for reads."""
    server = await make_server(request_timeout_s=0.3)
    org = await new_org(server)
    store = server.services.store
    real = store.create_team

    async def slow(*args):
        await asyncio.sleep(0.6)
        return await real(*args)

    store.create_team = slow
    team = await org.team("Support")
    assert (await org.gql("{ teams { id } }"))["teams"] == [{"id": team}]


# -- 2. crashes become typed errors -----------------------------------------------------------------------


async def test_deeply_nested_json_body_is_a_400(server, caplog):
    body = b'{"query": "{ me { id } }", "variables": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = await server.http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert not tracebacks(caplog)


async def test_invalid_utf8_body_is_a_400(server, caplog):
    response = await server.http.post(
        "/graphql", content=b'{"query": "{ me { id \xff\xfe } }"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert not tracebacks(caplog)


async def test_cursors_with_huge_numbers_are_invalid_input(server, caplog):
    org, team, _agents, channel = await support_desk(server, "ann")
    cid = (await org.customer_writes(channel, "cust", "Hello"))["conversationId"]
    query = "query($id: ID!, $b: String) { conversation(id: $id) { messages(before: $b) { edges { node { id } } } } }"
    for seq in ("9" * 30, str(2**63), "²"):
        cursor = base64.urlsafe_b64encode(f"m:{seq}".encode()).decode()
        errors = await _errors(server, query, org.owner.token, {"id": cid, "b": cursor})
        assert errors[0]["extensions"]["code"] == "INVALID_INPUT", errors
        assert errors[0]["extensions"]["field"] == "before"
    assert not tracebacks(caplog)


async def test_subscription_after_with_a_huge_or_odd_id_is_invalid_input(server, caplog):
    org = await new_org(server)
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        for after in ("1" * 23, "²"):
            op = await sub.subscribe("subscription($a: ID) { conversationEvents(after: $a) { id } }", {"a": after})
            message = await sub.receive()
            assert message["id"] == op and message["type"] == "next", message
            error = message["payload"]["errors"][0]
            assert error["extensions"]["code"] == "INVALID_INPUT" and "8-byte" not in error["message"]
            assert (await sub.receive())["type"] == "complete"
    assert not tracebacks(caplog)


async def test_a_subscription_over_http_points_to_the_websocket(server, caplog):
    org = await new_org(server)
    response = await server.http.post(
        "/graphql",
        json={"query": "subscription { notificationReceived { id } }"},
        headers={"Authorization": f"Bearer {org.owner.token}"},
    )
    assert 400 <= response.status_code < 500
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "SUBSCRIPTION_NEEDS_WEBSOCKET" and "WebSocket" in error["message"]
    assert not tracebacks(caplog)


async def test_websocket_syntax_error_and_unknown_operation_fail_only_their_id(server, caplog):
    org, _team, _agents, channel = await support_desk(server)
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe("subscription { conversationEvents { kind } }")
        await server.subscribed(1)
        broken = await sub.subscribe("subscription { conversationEvents { id ")
        message = await sub.receive()
        assert message["type"] == "error" and message["id"] == broken
        assert "Syntax Error" in message["payload"][0]["message"]
        await sub.socket.send(
            json.dumps(
                {
                    "id": "x",
                    "type": "subscribe",
                    "payload": {"query": "subscription A { conversationEvents { id } }", "operationName": "B"},
                }
            )
        )
        message = await sub.receive()
        assert message["type"] == "error" and message["id"] == "x"
        assert message["payload"][0]["extensions"]["code"] == "UNKNOWN_OPERATION"
        assert '"B"' in message["payload"][0]["message"]
        # the socket and its live subscription are still there
        await org.customer_writes(channel, "cust", "Hello")
        [data] = await sub.collect(1)
        assert data["conversationEvents"]["kind"] == "CREATED"
    assert not tracebacks(caplog)


# -- 3. production exposure -------------------------------------------------------------------------------

SUGGESTIONS = [
    "{ mee { id } }",  # field
    "{ conversations(frist: 1) { totalCount } }",  # argument
    "{ conversations(orderBy: LAST_ACTIVITY) { totalCount } }",  # enum value
    "query($f: ConversationFiltr) { conversations(filter: $f) { totalCount } }",  # type
    "{ conversations(filter: {statuss: [OPEN]}) { totalCount } }",  # input field
]


@pytest.mark.parametrize("overrides", [{"env": "production"}, {"introspection": False}])
async def test_no_suggestions_of_any_kind(make_server, overrides):
    server = await make_server(**overrides)
    org = await new_org(server)
    for query in SUGGESTIONS:
        for token in (None, org.owner.token):
            errors = await _errors(server, query, token)
            assert errors and all("Did you mean" not in e["message"] for e in errors), (query, errors)
    enum_variable = "query($o: ConversationOrder) { conversations(orderBy: $o) { totalCount } }"
    errors = await _errors(server, enum_variable, org.owner.token, {"o": "LAST_ACTIVITY"})
    assert errors and all("Did you mean" not in e["message"] for e in errors), errors


async def test_development_still_suggests(server):
    for query in SUGGESTIONS:
        assert any("Did you mean" in e["message"] for e in await _errors(server, query)), query


async def test_production_hides_graphiql_and_introspection_needs_a_token(make_server):
    prod = await make_server(env="production")
    org = await new_org(prod)
    introspect = "{ __schema { queryType { name } } }"
    errors = await _errors(prod, introspect)
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await prod.gql(introspect, token=org.owner.token))["__schema"]["queryType"]["name"] == "Query"
    page = await prod.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "graphiql" not in page.text.lower()

    opened = await make_server(env="production", graphiql=True, introspection=True)
    assert (await opened.gql(introspect))["__schema"]["queryType"]["name"] == "Query"
    page = await opened.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()

    dev = await make_server()
    assert (await dev.gql(introspect))["__schema"]["queryType"]["name"] == "Query"
    assert "graphiql" in (await dev.http.get("/graphql", headers={"Accept": "text/html"})).text.lower()


def test_exposure_settings_read_from_the_environment(monkeypatch):
    from api.settings import Settings

    monkeypatch.setenv("IMBRACE_ENV", "production")
    monkeypatch.setenv("IMBRACE_SECRET_KEY", TEST_SECRET_KEY)  # production refuses to start without it
    prod = Settings.from_env()
    assert (prod.introspection_policy, prod.graphiql_enabled, prod.hide_suggestions) == ("authenticated", False, True)
    monkeypatch.setenv("IMBRACE_INTROSPECTION", "true")
    monkeypatch.setenv("IMBRACE_GRAPHIQL", "on")
    assert (Settings.from_env().introspection_policy, Settings.from_env().graphiql_enabled) == ("public", True)
    monkeypatch.setenv("IMBRACE_ENV", "development")
    monkeypatch.setenv("IMBRACE_INTROSPECTION", "false")
    dev = Settings.from_env()
    assert (dev.introspection_policy, dev.hide_suggestions) == ("off", True)
    monkeypatch.delenv("IMBRACE_INTROSPECTION")
    assert (Settings.from_env().introspection_policy, Settings.from_env().hide_suggestions) == ("public", False)
