"""Integrators' webhooks, end to end: a real server delivering to a receiver in the test loop
that verifies every request with the ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from domain.status import Thresholds
from tests.fakes.webhook_receiver import Receiver
from tests.world import new_org
from tests.ws import Subscriber

CREATE = """mutation($i: CreateWebhookInput!) { createWebhook(input: $i) {
    webhook { id url enabled defaultQuery lastEventId teams { id } } secret errors { code field message } } }"""
UPDATE = """mutation($i: UpdateWebhookInput!) { updateWebhook(input: $i) {
    webhook { id enabled disabledReason failedAttempts } errors { code field message } } }"""
STATE = """query($id: ID!) { webhook(id: $id) { enabled disabledReason failedAttempts failingSince nextAttemptAt
    lastEventId previousSecretExpiresAt
    deliveries(first: 50) { edges { node { eventId messageId succeeded statusCode latencyMs response error
    nextRetryAt at } } pageInfo { hasNextPage endCursor } } } }"""
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { errors { code } } }"
EVENTS = """subscription { conversationEvents(filter: {channels: [WEB_WIDGET]}) {
    id kind conversationId previousStatus at
    actor { id name }
    conversation { id status team { id name } customer { name } representatives { name } joinedByMe
      messages(last: 3) { edges { node { text sender { kind } } } } }
    message { id text sender { kind } } } }"""
CALM = Thresholds(soon_after_s=3000, overdue_after_s=5000, auto_close_after_s=86400 * 30, presence_timeout_s=60)
MESSAGES = """subscription { messageAdded { id text conversationId sender { kind } } }"""


@pytest.fixture
async def server(make_server):
    """Receivers listen on 127.0.0.1: private addresses are allowed, except where a test says not.
    No status changes with time while a test runs (thresholds far away)."""
    return await make_server(webhook_allow_private=True, thresholds=CALM)


@pytest.fixture
async def receiver():
    started = await Receiver().start()
    yield started
    await started.stop()


async def create(org, url: str, team_ids: list[str], query: str | None = None, expect_ok: bool = True, **extra):
    data = await org.gql(CREATE, {"i": {"url": url, "teamIds": team_ids, "query": query, **extra}})
    payload = data["createWebhook"]
    if expect_ok:
        assert payload["errors"] == [], payload
    return payload


async def state(org, webhook_id: str) -> dict:
    return (await org.gql(STATE, {"id": webhook_id}))["webhook"]


async def desk(server):
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("agent")
    await org.add(team, agent)
    return org, team, agent, await org.channel(team, "WEB_WIDGET")


async def until(predicate, timeout: float = 10, step: float = 0.05):
    """Polls ``predicate`` (async) until it returns something truthy; returns that."""
    async with asyncio.timeout(timeout):
        while not (found := await predicate()):
            await asyncio.sleep(step)
    return found


async def test_payload_is_the_subscriptions_result_and_verifies(server, receiver):
    org, team, agent, channel = await desk(server)
    created = await create(org, receiver.url, [team], EVENTS, description="CRM sync")
    assert created["secret"].startswith("whsec_") and created["webhook"]["defaultQuery"] is False
    receiver.secrets = [created["secret"]]
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        cid = (await org.customer_writes(channel, "c1", "hello"))["conversationId"]
        await org.gql(JOIN, {"id": cid}, as_=agent)
        await org.gql(SEND, {"i": {"conversationId": cid, "text": "hi, how can I help?"}}, as_=agent)
        await org.customer_writes(channel, "c1", "my order")
        live = [(await sub.receive())["payload"] for _ in range(4)]
    got = await receiver.wait_for(4)
    assert [g.json for g in got] == live
    assert [g.json["data"]["conversationEvents"]["kind"] for g in got] == ["CREATED", "JOINED", "MESSAGE", "MESSAGE"]
    for g in got:
        assert g.verified_by == [0]
        assert g.webhook_id == f"evt_{g.json['data']['conversationEvents']['id']}_{created['webhook']['id']}"
        assert abs(int(g.timestamp) - datetime.now().timestamp()) < 60
    # a webhook sees as an admin of its teams: never "in the room"
    assert {g.json["data"]["conversationEvents"]["conversation"]["joinedByMe"] for g in got} == {False}
    log = await state(org, created["webhook"]["id"])
    assert [e["node"]["succeeded"] for e in log["deliveries"]["edges"]] == [True] * 4
    assert [e["node"]["response"] for e in log["deliveries"]["edges"]] == ["ok"] * 4
    assert log["lastEventId"] == got[-1].json["data"]["conversationEvents"]["id"]


async def test_the_default_selection_and_message_added(server, receiver):
    org, team, agent, channel = await desk(server)
    default = await create(org, receiver.url, [team])
    assert default["webhook"]["defaultQuery"] is True
    messages = await create(org, receiver.url, [team], MESSAGES)
    receiver.secrets = [default["secret"], messages["secret"]]
    await org.customer_writes(channel, "c1", "hello", customer={"name": "Ann"})
    got = await receiver.wait_for(2)
    by_webhook = {g.webhook_id.rsplit("_", 1)[1]: g for g in got}
    event = by_webhook[default["webhook"]["id"]].json["data"]["conversationEvents"]
    assert event["kind"] == "CREATED" and event["message"]["text"] == "hello"
    assert event["conversation"]["customer"]["name"] == "Ann" and event["conversation"]["team"]["id"] == team
    assert by_webhook[default["webhook"]["id"]].verified_by == [0]
    added = by_webhook[messages["webhook"]["id"]]
    assert added.json == {
        "data": {
            "messageAdded": {
                "id": event["message"]["id"],
                "text": "hello",
                "conversationId": event["conversationId"],
                "sender": {"kind": "CUSTOMER"},
            }
        }
    }
    assert added.verified_by == [1]
