"""Hostile or broken input gets a clear typed answer, never a crash, a traceback or a leak."""

from __future__ import annotations

import asyncio
import base64
import json

from tests.world import new_org, support_desk
from tests.ws import Subscriber


def tracebacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def _errors(server, query, token=None, variables=None):
    body = await server.gql(query, variables, token, expect_errors=True)
    return body.get("errors") or []


# -- 2. crashes become typed errors -----------------------------------------------------------------------


async def test_deeply_nested_json_body_is_a_400(server, caplog):
    body = b'{"query": "{ me { id } }", "variables": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = await server.http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert not tracebacks(caplog)


async def test_invalid_utf8_body_is_a_400(server, caplog):
    response = await server.http.post("/graphql", content=b'{"query": "{ me { id \xff\xfe } }"}',
                                      headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert not tracebacks(caplog)


async def test_cursors_with_huge_numbers_are_invalid_input(server, caplog):
    org, team, _agents, channel = await support_desk(server, "ann")
    cid = (await org.customer_writes(channel, "cust", "Hello"))["conversationId"]
    query = "query($id: ID!, $b: String) { conversation(id: $id) { messages(before: $b) { edges { node { id } } } } }"
    for seq in ("9" * 30, str(2 ** 63), "²"):
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
    response = await server.http.post("/graphql", json={"query": "subscription { notificationReceived { id } }"},
                                      headers={"Authorization": f"Bearer {org.owner.token}"})
    assert 400 <= response.status_code < 500
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "SUBSCRIPTION_NEEDS_WEBSOCKET" and "WebSocket" in error["message"]
    assert not tracebacks(caplog)


async def test_websocket_syntax_error_and_unknown_operation_fail_only_their_id(server, caplog):
    org, _team, _agents, channel = await support_desk(server)
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe("subscription { conversationEvents { kind } }")
        await asyncio.sleep(0.2)
        broken = await sub.subscribe("subscription { conversationEvents { id ")
        message = await sub.receive()
        assert message["type"] == "error" and message["id"] == broken
        assert "Syntax Error" in message["payload"][0]["message"]
        await sub.socket.send(json.dumps({"id": "x", "type": "subscribe", "payload": {
            "query": "subscription A { conversationEvents { id } }", "operationName": "B"}}))
        message = await sub.receive()
        assert message["type"] == "error" and message["id"] == "x"
        assert message["payload"][0]["extensions"]["code"] == "UNKNOWN_OPERATION"
        assert '"B"' in message["payload"][0]["message"]
        # the socket and its live subscription are still there
        await org.customer_writes(channel, "cust", "Hello")
        [data] = await sub.collect(1)
        assert data["conversationEvents"]["kind"] == "CREATED"
    assert not tracebacks(caplog)
