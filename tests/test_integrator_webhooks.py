"""Integrators' webhooks, end to end: a real server delivering to a receiver in the test loop
that verifies every request with the ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import datetime, timedelta

import pytest

import api.webhooks.address as address
from api.embedded import free_port
from domain.status import Thresholds
from domain.webhooks import RETRY_DELAYS_S, url_problem
from tests.clock import FakeClock
from tests.fakes.webhook_receiver import Receiver
from tests.world import Person, new_org
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


def kind_of(payload: dict) -> str:
    return payload["data"]["conversationEvents"]["kind"]


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
        # The reply's DELIVERY event (the widget's way) lands somewhere after the reply, as the worker goes.
        live: list[dict] = []
        while len([p for p in live if kind_of(p) != "DELIVERY"]) < 4:
            live.append((await sub.receive())["payload"])
    got = (await receiver.wait_for(len(live)))[: len(live)]
    assert [g.json for g in got] == live
    assert [k for k in map(kind_of, live) if k != "DELIVERY"] == ["CREATED", "JOINED", "MESSAGE", "MESSAGE"]
    for g in got:
        assert g.verified_by == [0]
        assert g.webhook_id == f"evt_{g.json['data']['conversationEvents']['id']}_{created['webhook']['id']}"
        assert abs(int(g.timestamp) - datetime.now().timestamp()) < 60
    # a webhook sees as an admin of its teams: never "in the room"
    assert {g.json["data"]["conversationEvents"]["conversation"]["joinedByMe"] for g in got} == {False}
    last = got[-1].json["data"]["conversationEvents"]["id"]

    async def caught_up():
        found = await state(org, created["webhook"]["id"])
        return found if int(found["lastEventId"]) >= int(last) else None

    log = await until(caught_up)
    attempts = [e["node"] for e in log["deliveries"]["edges"]]  # the reply's DELIVERY may be one more
    assert len(attempts) in (len(live), len(live) + 1)
    assert all(a["succeeded"] and a["response"] == "ok" for a in attempts)


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


async def failed_attempts(org, webhook_id: str, count: int) -> dict:
    """The webhook's state once ``count`` attempts in a row have failed."""

    async def reached():
        found = await state(org, webhook_id)
        return found if found["failedAttempts"] >= count else None

    return await until(reached)


def seconds_between(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


async def test_a_receiver_down_then_up_gets_everything_in_order(make_server, receiver):
    clock = FakeClock()
    server = await make_server(clock=clock, webhook_allow_private=True, thresholds=CALM)
    org, team, agent, channel = await desk(server)
    created = await create(org, receiver.url, [team])
    webhook_id = created["webhook"]["id"]
    receiver.secrets = [created["secret"]]
    receiver.status = 503
    for customer, text in (("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2")):
        await org.customer_writes(channel, customer, text)
    first = await failed_attempts(org, webhook_id, 1)
    attempt = first["deliveries"]["edges"][0]["node"]
    assert (attempt["succeeded"], attempt["statusCode"], attempt["response"]) == (False, 503, "ok")
    assert RETRY_DELAYS_S[0] * 0.9 <= seconds_between(attempt["nextRetryAt"], attempt["at"]) <= RETRY_DELAYS_S[0] * 1.1
    assert first["nextAttemptAt"] == attempt["nextRetryAt"] and first["failingSince"] is not None
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 1  # the events after it wait their turn
    clock.advance(RETRY_DELAYS_S[0] * 1.2)
    failing = await failed_attempts(org, webhook_id, 2)
    second = failing["deliveries"]["edges"][0]["node"]
    assert RETRY_DELAYS_S[1] * 0.9 <= seconds_between(second["nextRetryAt"], second["at"]) <= RETRY_DELAYS_S[1] * 1.1
    # a change of settings is no success: the endpoint's failures are kept
    await org.gql(UPDATE, {"i": {"id": webhook_id, "description": "CRM"}})
    kept = await state(org, webhook_id)
    assert (kept["failedAttempts"], kept["failingSince"]) == (2, failing["failingSince"])
    # down longer than the event retention: the events it has not had are kept for it
    runtime = server.app.state.runtime
    await runtime.retention.purge(clock() + timedelta(days=3))
    receiver.status = 200
    clock.advance(RETRY_DELAYS_S[1] * 1.2)
    await receiver.wait_for(6)
    delivered = receiver.distinct()
    texts = [g.json["data"]["conversationEvents"]["message"]["text"] for g in delivered]
    assert texts == ["a1", "b1", "a2", "b2"]
    assert [g.event_id for g in delivered] == sorted(g.event_id for g in delivered)
    assert receiver.requests[0].webhook_id == receiver.requests[1].webhook_id == delivered[0].webhook_id
    assert all(g.verified_by == [0] for g in receiver.requests)
    recovered = await state(org, webhook_id)
    assert (recovered["failedAttempts"], recovered["failingSince"], recovered["nextAttemptAt"]) == (0, None, None)


async def kill(follower) -> None:
    """The instance dies: its follower stops wherever it is, writing nothing more."""
    tasks = [follower._task, *follower._running.values()]
    follower._task = None
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_server_killed_mid_delivery_loses_nothing(make_server, receiver):
    first = await make_server(webhook_allow_private=True, thresholds=CALM)
    org, team, agent, channel = await desk(first)
    created = await create(org, receiver.url, [team])
    receiver.secrets = [created["secret"]]
    receiver.hold = asyncio.Event()
    await org.customer_writes(channel, "c1", "one")
    await asyncio.wait_for(receiver.held.wait(), 10)
    await kill(first.app.state.runtime.webhooks)
    receiver.hold.set()  # it got the request; the server never learnt the answer
    await first.stop()
    clock = FakeClock()
    second = await make_server(
        clock=clock, database=first.settings.database, webhook_allow_private=True, thresholds=CALM
    )
    org.server = second
    await org.customer_writes(channel, "c1", "two")
    await org.customer_writes(channel, "c2", "three")
    await asyncio.sleep(1)
    assert len(receiver.requests) == 1  # the dead instance's lease holds until it ends
    clock.advance(120)
    await receiver.wait_for(4)
    delivered = receiver.distinct()
    assert [g.json["data"]["conversationEvents"]["message"]["text"] for g in delivered] == ["one", "two", "three"]
    assert receiver.requests[1].webhook_id == receiver.requests[0].webhook_id  # sent again, same id
    assert all(g.verified_by == [0] for g in receiver.requests)


async def test_instances_share_the_work_one_at_a_time(make_server, receiver):
    first = await make_server(webhook_allow_private=True, thresholds=CALM)
    second = await make_server(database=first.settings.database, webhook_allow_private=True, thresholds=CALM)
    org, team, agent, channel = await desk(first)
    created = await create(org, receiver.url, [team], MESSAGES)
    receiver.secrets = [created["secret"]]
    texts = [f"m{i}" for i in range(12)]
    for i, text in enumerate(texts):
        await (first if i % 2 else second).inbound(
            channel.id, channel.key, {"customer": {"externalId": "c"}, "text": text}
        )
    got = await receiver.wait_for(len(texts))
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == len(texts)  # none sent twice
    assert [g.json["data"]["messageAdded"]["text"] for g in got] == texts


async def test_redelivery_from_an_event_id(server, receiver):
    org, team, agent, channel = await desk(server)
    created = await create(org, receiver.url, [team])
    webhook_id = created["webhook"]["id"]
    receiver.secrets = [created["secret"]]
    for text in ("one", "two", "three"):
        await org.customer_writes(channel, "c1", text)
    first = await receiver.wait_for(3)
    redeliver = """mutation($i: RedeliverWebhookInput!) { redeliverWebhook(input: $i) {
        webhook { lastEventId } errors { code field message } } }"""
    again = await org.gql(redeliver, {"i": {"webhookId": webhook_id, "fromEventId": str(first[1].event_id)}})
    assert again["redeliverWebhook"] == {"webhook": {"lastEventId": str(first[1].event_id - 1)}, "errors": []}
    replayed = (await receiver.wait_for(5))[3:]
    assert [(g.webhook_id, g.body) for g in replayed] == [(g.webhook_id, g.body) for g in first[1:]]
    for bad in ("abc", "0", str(first[-1].event_id + 100)):
        refused = await org.gql(redeliver, {"i": {"webhookId": webhook_id, "fromEventId": bad}})
        assert refused["redeliverWebhook"]["errors"][0]["field"] == "fromEventId", bad
    # past the retention (nothing held: the webhook has every event), they are gone
    await server.app.state.runtime.retention.purge(server.services.clock() + timedelta(days=3))
    gone = await org.gql(redeliver, {"i": {"webhookId": webhook_id, "fromEventId": str(first[0].event_id)}})
    assert gone["redeliverWebhook"]["errors"][0]["code"] == "INVALID_INPUT"
    assert "no longer kept" in gone["redeliverWebhook"]["errors"][0]["message"]


async def test_secret_rotation_signs_with_both_for_a_day(make_server, receiver):
    clock = FakeClock()
    server = await make_server(clock=clock, webhook_allow_private=True, thresholds=CALM)
    org, team, agent, channel = await desk(server)
    created = await create(org, receiver.url, [team])
    webhook_id = created["webhook"]["id"]
    receiver.secrets = [created["secret"]]
    await org.customer_writes(channel, "c1", "before")
    before = (await receiver.wait_for(1))[0]
    assert before.verified_by == [0] and " " not in before.signature
    rotated = await org.gql(
        """mutation($id: ID!) { rotateWebhookSecret(id: $id) {
        secret webhook { previousSecretExpiresAt } errors { code } } }""",
        {"id": webhook_id},
    )
    new_secret = rotated["rotateWebhookSecret"]["secret"]
    assert new_secret.startswith("whsec_") and new_secret != created["secret"]
    expires = rotated["rotateWebhookSecret"]["webhook"]["previousSecretExpiresAt"]
    assert 23.9 < seconds_between(expires, clock().isoformat()) / 3600 <= 24
    receiver.secrets = [created["secret"], new_secret]
    await org.customer_writes(channel, "c1", "during")
    during = (await receiver.wait_for(2))[1]
    assert during.verified_by == [0, 1] and len(during.signature.split(" ")) == 2
    clock.advance(24 * 3600 + 60)
    await org.customer_writes(channel, "c1", "after")
    after = (await receiver.wait_for(3))[2]
    assert after.verified_by == [1] and " " not in after.signature
    assert (await state(org, webhook_id))["previousSecretExpiresAt"] is None


async def test_addresses_that_are_not_public_are_refused(make_server, receiver, monkeypatch):
    server = await make_server(thresholds=CALM)  # IMBRACE_WEBHOOK_ALLOW_PRIVATE off
    org, team, agent, channel = await desk(server)
    names = {
        "internal.example": ["127.0.0.1"],
        "hooks.example": ["93.184.216.34"],
        "mixed.example": ["8.8.8.8", "10.0.0.7"],
    }

    async def resolve(host, port):
        return [ipaddress.ip_address(a) for a in names.get(host, [])]

    monkeypatch.setattr(address, "resolve_host", resolve)
    refused = {
        receiver.url: "loopback",
        f"http://localhost:{receiver.port}/hook": "names this server",
        "http://[::1]:8080/": "loopback",
        "http://[::ffff:127.0.0.1]/": "not",
        "http://169.254.169.254/latest/meta-data/": "metadata",
        "http://10.1.2.3/": "private",
        "http://0.0.0.0/": "not",
        f"http://internal.example:{receiver.port}/hook": "resolves to a loopback",
        "https://mixed.example/hook": "resolves to a private",
    }
    for url, why in refused.items():
        payload = await create(org, url, [team], expect_ok=False)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", "url")], url
        assert why in payload["errors"][0]["message"] or why == "not", (url, payload["errors"])
    created = await create(org, f"http://hooks.example:{receiver.port}/hook", [team])
    webhook_id = created["webhook"]["id"]
    names["hooks.example"] = ["127.0.0.1"]  # the name now points inside: checked again at send time
    await org.customer_writes(channel, "c1", "hello")
    attempt = (await failed_attempts(org, webhook_id, 1))["deliveries"]["edges"][0]["node"]
    assert attempt["statusCode"] is None and attempt["nextRetryAt"] is not None
    assert "hooks.example resolves to a loopback address" in attempt["error"]
    assert receiver.requests == []


def test_url_rules():
    assert url_problem("https://hooks.example.com/in?x=1", https_only=True) is None
    assert url_problem("http://hooks.example.com/in", https_only=False) is None
    assert "https" in url_problem("http://hooks.example.com/in", https_only=True)
    for bad in ("ftp://x.example/", "https://user:pw@x.example/", "https://x.example/#top", "https:///path", "x"):
        assert url_problem(bad, https_only=False), bad


async def test_the_request_goes_to_the_checked_address(server, receiver, monkeypatch):
    """The name is resolved once, checked, and the request sent to that address with the name
    as Host: a second lookup (DNS rebinding) never happens."""
    lookups = []

    async def resolve(host, port):
        lookups.append(host)
        # nothing listens on the first address: the next one checked is tried
        return [ipaddress.ip_address(a) for a in ("127.0.0.2", "127.0.0.1")] if host == "receiver.test" else []

    monkeypatch.setattr(address, "resolve_host", resolve)
    org, team, agent, channel = await desk(server)
    created = await create(org, f"http://receiver.test:{receiver.port}/hook", [team])
    receiver.secrets = [created["secret"]]
    lookups.clear()
    await org.customer_writes(channel, "c1", "hello")
    got = (await receiver.wait_for(1))[0]
    assert got.host == f"receiver.test:{receiver.port}" and got.verified_by == [0]
    assert lookups == ["receiver.test"]


async def test_pings_never_follow_redirects_and_read_a_bounded_answer(server, receiver):
    org, team, agent, channel = await desk(server)
    created = await create(org, receiver.url, [team])
    receiver.secrets = [created["secret"]]
    ping = """mutation($id: ID!) { pingWebhook(id: $id) { delivery { eventId messageId succeeded statusCode
        response error latencyMs } errors { code } } }"""
    receiver.status, receiver.headers = 302, {"location": "http://127.0.0.1:1/elsewhere"}
    moved = (await org.gql(ping, {"id": created["webhook"]["id"]}))["pingWebhook"]
    assert moved["delivery"]["succeeded"] is False and moved["delivery"]["statusCode"] == 302
    assert len(receiver.requests) == 1
    receiver.status, receiver.headers, receiver.body = 200, {}, b"x" * (1024 * 1024)
    big = (await org.gql(ping, {"id": created["webhook"]["id"]}))["pingWebhook"]["delivery"]
    assert big["succeeded"] is True and big["eventId"] is None and big["response"] == "x" * 1024
    got = receiver.requests[-1]
    assert got.verified_by == [0] and got.webhook_id == big["messageId"] and got.webhook_id.startswith("ping_")
    assert got.json["extensions"]["ping"]["webhookId"] == created["webhook"]["id"]


async def test_a_webhook_never_sees_beyond_its_teams(server, receiver):
    org = await new_org(server)
    grab = await org.team("Grabbers", "GRAB")
    other = await org.team("Elsewhere")
    alice = await org.member("alice")
    await org.add(grab, alice)
    grab_channel = await org.channel(grab, "WEB_WIDGET", "Grab site")
    other_channel = await org.channel(other, "WEB_WIDGET", "Other site")
    query = "subscription { conversationEvents { kind conversationId conversation { team { id } } } }"
    created = await create(org, receiver.url, [grab], query)
    receiver.secrets = [created["secret"]]
    await org.customer_writes(other_channel, "o1", "not yours")
    cid = (await org.customer_writes(grab_channel, "g1", "grab me"))["conversationId"]
    await org.gql("mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }", {"id": cid}, as_=alice)
    await org.customer_writes(other_channel, "o1", "still not yours")
    await org.customer_writes(grab_channel, "g1", "private to alice, not to the integration")
    got = [g.json["data"]["conversationEvents"] for g in await receiver.wait_for(3)]
    outsider = await new_org(server, "Outsider")
    outsider_channel = await outsider.channel(await outsider.team("Theirs"))
    await outsider.customer_writes(outsider_channel, "x1", "another organization")
    newest = await server.services.store.events.issued_id()

    async def passed_it():
        return int((await state(org, created["webhook"]["id"]))["lastEventId"]) >= newest

    await until(passed_it)  # moved past the other organization's event, sending nothing
    assert [e["kind"] for e in got] == ["CREATED", "GRABBED", "MESSAGE"]
    assert len(receiver.requests) == 3
    assert {e["conversationId"] for e in got} == {cid} and {e["conversation"]["team"]["id"] for e in got} == {grab}
    # Handed to the other team: the webhook learns it is gone, as its team's live subscribers do, then nothing more.
    transfer = "mutation($i: TransferConversationInput!) { transferConversation(input: $i) { errors { code } } }"
    assert (await org.gql(transfer, {"i": {"id": cid, "toTeamId": other}}))["transferConversation"]["errors"] == []
    await org.customer_writes(grab_channel, "g1", "now the other team's")
    gone = (await receiver.wait_for(4))[3].json["data"]["conversationEvents"]
    assert gone["kind"] == "HIDDEN" and gone["conversationId"] == cid
    newest = await server.services.store.events.issued_id()
    await until(passed_it)
    assert len(receiver.requests) == 4


async def test_failing_for_too_long_disables_and_tells_the_admins(make_server, receiver):
    clock = FakeClock()
    server = await make_server(clock=clock, webhook_allow_private=True, thresholds=CALM, webhook_disable_after_s=30)
    org, team, agent, channel = await desk(server)
    admin = await org.member("admin", "ADMIN")
    created = await create(org, receiver.url, [team])
    webhook_id = created["webhook"]["id"]
    receiver.secrets = [created["secret"]]
    receiver.status = 500
    async with Subscriber(server.ws_url, admin.token) as sub:
        await sub.subscribe(
            "subscription { notificationReceived { kind webhookId conversationId conversation { id } } }"
        )
        await server.subscribed(1)
        await org.customer_writes(channel, "c1", "one")
        await failed_attempts(org, webhook_id, 1)
        clock.advance(10)
        await failed_attempts(org, webhook_id, 2)
        await org.customer_writes(channel, "c1", "two")
        clock.advance(40)
        live = (await sub.next_data())["notificationReceived"]
    assert live == {"kind": "WEBHOOK_DISABLED", "webhookId": webhook_id, "conversationId": None, "conversation": None}
    stopped = await state(org, webhook_id)
    assert stopped["enabled"] is False and "500" in stopped["disabledReason"]
    notes = "{ notifications { edges { node { kind webhookId conversationId } } } }"
    for person in (org.owner, admin):
        found = [e["node"] for e in (await org.gql(notes, as_=person))["notifications"]["edges"]]
        assert {"kind": "WEBHOOK_DISABLED", "webhookId": webhook_id, "conversationId": None} in found
    assert all(
        e["node"]["kind"] != "WEBHOOK_DISABLED" for e in (await org.gql(notes, as_=agent))["notifications"]["edges"]
    )
    tried = len(receiver.requests)
    clock.advance(3600)
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == tried  # disabled: nothing more is sent
    receiver.status = 200
    enabled = await org.gql(UPDATE, {"i": {"id": webhook_id, "enabled": True}})
    assert enabled["updateWebhook"]["webhook"] == {
        "id": webhook_id,
        "enabled": True,
        "disabledReason": None,
        "failedAttempts": 0,
    }
    await receiver.wait_for(tried + 2)
    texts = [g.json["data"]["conversationEvents"]["message"]["text"] for g in receiver.distinct()]
    assert texts == ["one", "two"]


async def test_managing_webhooks(server, receiver):
    org, team, agent, channel = await desk(server)
    refused = await org.gql(CREATE, {"i": {"url": receiver.url, "teamIds": [team]}}, as_=agent)
    assert refused["createWebhook"]["errors"][0]["code"] == "FORBIDDEN"
    listed = await server.gql("{ webhooks { id } }", token=agent.token, expect_errors=True)
    assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    aliases = " ".join(f"a{i}: id" for i in range(40))
    bad_queries = {
        "query { me { id } }": "one subscription",
        "subscription { notificationReceived { kind } }": "exactly one of",
        "subscription($f: ConversationFilter) { conversationEvents(filter: $f) { id } }": "variables",
        'subscription { conversationEvents(after: "1") { id } }': "after",
        "subscription { conversationEvents { nope } }": "not valid",
        "subscription { conversationEvents { id ": "does not parse",
        f"subscription {{ conversationEvents {{ {aliases} }} }}": "not valid",
    }
    for query, why in bad_queries.items():
        payload = await create(org, receiver.url, [team], query, expect_ok=False)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", "query")], query
        assert why in payload["errors"][0]["message"], (query, payload["errors"])
    assert (await create(org, receiver.url, [], expect_ok=False))["errors"][0]["field"] == "teamIds"
    unknown = await create(org, receiver.url, ["0" * 24], expect_ok=False)
    assert (unknown["errors"][0]["code"], unknown["errors"][0]["field"]) == ("NOT_FOUND", "teamIds")
    assert (await create(org, "ftp://x.example/", [team], expect_ok=False))["errors"][0]["field"] == "url"
    created = await create(org, receiver.url, [team], MESSAGES, description="Analytics")
    webhook_id = created["webhook"]["id"]
    updated = await org.gql(
        """mutation($i: UpdateWebhookInput!) { updateWebhook(input: $i) {
        webhook { description defaultQuery query url } errors { code } } }""",
        {"i": {"id": webhook_id, "query": None, "description": None}},
    )
    assert updated["updateWebhook"]["webhook"]["description"] is None
    assert updated["updateWebhook"]["webhook"]["defaultQuery"] is True
    assert updated["updateWebhook"]["webhook"]["query"].startswith("subscription WebhookDefault")
    fields = await server.gql('{ __type(name: "Webhook") { fields { name } } }', token=org.owner.token)
    assert "secret" not in {f["name"] for f in fields["__type"]["fields"]}  # shown once, never readable
    listed = await org.gql("{ webhooks { id url teams { id } } }")
    assert listed["webhooks"] == [{"id": webhook_id, "url": receiver.url, "teams": [{"id": team}]}]
    deleted = await org.gql(
        "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId errors { code } } }", {"id": webhook_id}
    )
    assert deleted["deleteWebhook"] == {"deletedId": webhook_id, "errors": []}
    assert (await org.gql("query($id: ID!) { webhook(id: $id) { id } }", {"id": webhook_id}))["webhook"] is None
    again = await org.gql(
        "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId errors { code } } }", {"id": webhook_id}
    )
    assert again["deleteWebhook"]["errors"] == [{"code": "NOT_FOUND"}]


async def test_timeouts_and_connection_errors_are_failures(make_server, receiver):
    server = await make_server(webhook_allow_private=True, thresholds=CALM, webhook_timeout_s=0.5)
    org, team, agent, channel = await desk(server)
    ping = """mutation($id: ID!) { pingWebhook(id: $id) { delivery { succeeded statusCode error latencyMs } } }"""
    slow = await create(org, receiver.url, [team])
    receiver.hold = asyncio.Event()
    timed_out = (await org.gql(ping, {"id": slow["webhook"]["id"]}))["pingWebhook"]["delivery"]
    receiver.hold.set()
    assert (timed_out["succeeded"], timed_out["statusCode"]) == (False, None)
    assert timed_out["error"] == "No answer within 0.5 s." and 450 <= timed_out["latencyMs"] < 2000
    closed = await create(org, f"http://127.0.0.1:{free_port()}/hook", [team])
    refused = (await org.gql(ping, {"id": closed["webhook"]["id"]}))["pingWebhook"]["delivery"]
    assert refused == {
        "succeeded": False,
        "statusCode": None,
        "error": refused["error"],
        "latencyMs": refused["latencyMs"],
    }
    assert refused["error"].startswith("Could not deliver (ConnectError)")


def test_an_api_key_with_manage_webhooks_opens_every_webhook_field():
    from api.graphql.schema import build_schema
    from api.graphql.scopes import APP_FIELDS
    from api.graphql.strawberry_adapter import graphql_schema_of
    from api.settings import Settings
    from domain.enums import ApiKeyScope

    schema = graphql_schema_of(build_schema(Settings()))
    found = {
        (root.name, name)
        for root in (schema.query_type, schema.mutation_type)
        for name in root.fields
        if "ebhook" in name
    }
    opened = {field for field, scope in APP_FIELDS.items() if scope is ApiKeyScope.MANAGE_WEBHOOKS}
    assert found == opened and len(found) == 8


def test_a_caller_held_to_some_teams_reaches_only_webhooks_of_those():
    """Owners and admins reach every team; an app acting through an API key with MANAGE_WEBHOOKS
    reaches only webhooks within its key's teams."""
    from domain.enums import ApiKeyScope, OrgRole
    from domain.usecases.webhooks import _within_reach, may_manage_webhooks
    from domain.visibility import App, Viewer

    admin = Viewer(member_id="m", org_id="o", org_role=OrgRole.ADMIN)
    app = App(key_id="k", scopes=frozenset({ApiKeyScope.MANAGE_WEBHOOKS}), team_ids=frozenset({"t1", "t2"}))
    held = Viewer(member_id="k", org_id="o", org_role=OrgRole.MEMBER, app=app)
    reader = Viewer(
        member_id="r", org_id="o", org_role=OrgRole.MEMBER, app=App("r", frozenset({ApiKeyScope.READ_CONVERSATIONS}))
    )
    assert may_manage_webhooks(admin) and may_manage_webhooks(held) and not may_manage_webhooks(reader)
    assert _within_reach(admin, ("t1", "t9"))
    assert _within_reach(held, ("t1",)) and _within_reach(held, ("t1", "t2"))
    assert not _within_reach(held, ("t1", "t9"))


async def test_an_api_key_with_manage_webhooks_manages_the_webhooks_of_its_teams(server, receiver):
    org, team, agent, channel = await desk(server)
    other = await org.team("Elsewhere")
    theirs = await create(org, receiver.url, [other])  # the owner's, on a team the key doesn't have

    async def key(scopes):
        data = await org.gql(
            """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key errors { code } } }""",
            {"i": {"name": "Integrator", "scopes": scopes, "teamIds": [team]}},
        )
        return Person("", "", data["createApiKey"]["key"])

    manager, reader = await key(["MANAGE_WEBHOOKS"]), await key(["READ_CONVERSATIONS"])
    created = await org.gql(CREATE, {"i": {"url": receiver.url, "teamIds": [team]}}, as_=manager)
    assert created["createWebhook"]["errors"] == [] and created["createWebhook"]["secret"].startswith("whsec_")
    beyond = await org.gql(CREATE, {"i": {"url": receiver.url, "teamIds": [team, other]}}, as_=manager)
    assert [(e["code"], e["field"]) for e in beyond["createWebhook"]["errors"]] == [("NOT_FOUND", "teamIds")]
    listed = await org.gql("{ webhooks { id } }", as_=manager)
    assert listed["webhooks"] == [{"id": created["createWebhook"]["webhook"]["id"]}]
    hidden = await org.gql("query($id: ID!) { webhook(id: $id) { id } }", {"id": theirs["webhook"]["id"]}, as_=manager)
    assert hidden["webhook"] is None
    denied = await server.gql("{ webhooks { id } }", token=reader.token, expect_errors=True)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    receiver.secrets = [created["createWebhook"]["secret"]]
    await org.customer_writes(channel, "c1", "for the integrator")
    got = (await receiver.wait_for(1))[0]
    assert got.verified_by == [0] and got.json["data"]["conversationEvents"]["message"]["text"] == "for the integrator"
