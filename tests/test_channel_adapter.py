"""Custom channel adapters, the way back: a channel given an ``outboundUrl`` has its agents'
replies POSTed there, signed as Standard Webhooks says, and the adapter reports what became of
them with ``POST /channels/{id}/delivery-status``.

A real server, and a fake adapter in the test loop (tests/fakes/webhook_receiver.py) that
verifies every request with the ``standardwebhooks`` package; the agent reads the delivery
through GraphQL as the console does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest

import api.webhooks.address as address
from api.channels.custom import outcome_of
from api.webhooks.sender import Answer
from domain.delivery import Failed, Retry, Sent
from domain.status import Thresholds
from tests.channel_desk import DeliveryWaits
from tests.clock import FakeClock
from tests.fakes.webhook_receiver import Receiver
from tests.world import ChannelInfo, Org, Person, new_org

CALM = Thresholds(soon_after_s=3000, overdue_after_s=5000, auto_close_after_s=86400 * 30, presence_timeout_s=60)
CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id outboundUrl } ingestKey outboundSecret errors { code field message } } }"""
UPDATE = """mutation($i: UpdateChannelInput!) { updateChannel(input: $i) {
    channel { id outboundUrl } outboundSecret errors { code field message } } }"""
CREDENTIALS = """mutation($i: UpdateChannelCredentialsInput!) { updateChannelCredentials(input: $i) {
    errors { code field message } } }"""
CHANNELS = "{ channels { id outboundUrl } }"
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id deliveries { via status } } errors { code message } } }"""
REDIRECT = "The adapter answered 302: redirects are not followed."
NOWHERE = "adapter.example does not resolve."
LOOPBACK = "adapter.example resolves to a loopback address, which replies may not be sent to."
MESSAGES = """query($id: ID!) { conversation(id: $id) { messages(last: 20) { edges { node {
    id text deliveries { via status attempts lastError errorCode } } } } } }"""


@dataclass
class Desk(DeliveryWaits):
    org: Org
    team: str
    agent: Person
    channel: ChannelInfo
    secret: str
    adapter: Receiver

    @property
    def server(self):
        return self.org.server

    async def messages(self, conversation_id: str) -> list[dict]:
        data = await self.org.gql(MESSAGES, {"id": conversation_id}, as_=self.agent)
        return [e["node"] for e in data["conversation"]["messages"]["edges"]]

    async def reply(self, conversation_id: str, text: str) -> dict:
        await self.org.gql(JOIN, {"id": conversation_id}, as_=self.agent)
        data = await self.org.gql(SEND, {"i": {"conversationId": conversation_id, "text": text}}, as_=self.agent)
        assert data["sendMessage"]["errors"] == [], data
        return data["sendMessage"]["message"]

    async def report(
        self, body, key: str | None = None, channel_id: str | None = None, content: bytes = b"", content_type: str = ""
    ) -> httpx.Response:
        """The adapter's report: ``body`` as JSON, or raw ``content`` of ``content_type``."""
        headers = {"X-Channel-Key": key or self.channel.key}
        url = f"/channels/{channel_id or self.channel.id}/delivery-status"
        if body is not None:
            return await self.server.http.post(url, json=body, headers=headers)
        return await self.server.http.post(url, content=content, headers=headers | {"Content-Type": content_type})


async def connect(org: Org, team: str, url: str, type_: str = "WHATSAPP", **extra) -> dict:
    draft = {"type": type_, "name": "Adapter", "teamId": team, "outboundUrl": url, **extra}
    data = await org.gql(CONNECT, {"i": draft})
    return data["connectChannel"]


async def open_desk(make_server, adapter: Receiver, **overrides) -> Desk:
    server = await make_server(webhook_allow_private=True, thresholds=CALM, **overrides)
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("agent")
    await org.add(team, agent)
    payload = await connect(org, team, adapter.url)
    assert payload["errors"] == [] and payload["channel"]["outboundUrl"] == adapter.url, payload
    assert payload["outboundSecret"].startswith("whsec_")
    adapter.secrets = [payload["outboundSecret"]]
    channel = ChannelInfo(payload["channel"]["id"], payload["ingestKey"], "WHATSAPP")
    return Desk(org, team, agent, channel, payload["outboundSecret"], adapter)


@pytest.fixture
async def adapter():
    started = await Receiver().start()
    yield started
    await started.stop()


async def test_a_reply_reaches_the_adapter_signed_and_its_reports_move_the_delivery(make_server, adapter):
    desk = await open_desk(make_server, adapter)
    adapter.body = b'{"messageId": "wamid.ADAPTER-1"}'
    cid = (await desk.org.customer_writes(desk.channel, "+85291234567", "Where is my order?"))["conversationId"]
    reply = await desk.reply(cid, "It ships today.")
    assert reply["deliveries"] == [{"via": "CHANNEL", "status": "QUEUED"}]
    [got] = await adapter.wait_for(1)
    assert got.verified_by == [0] and got.webhook_id == reply["id"]
    body = got.json
    created_at = body.pop("createdAt")
    assert abs((datetime.fromisoformat(created_at) - datetime.now().astimezone()).total_seconds()) < 60
    assert body == {
        "messageId": reply["id"],
        "conversationId": cid,
        "customer": {"externalId": "+85291234567"},
        "kind": "TEXT",
        "text": "It ships today.",
        "files": [],
        "template": None,
    }
    await desk.wait_delivery(cid, reply["id"], "SENT")
    stored = await desk.server.db.messages.find_one({"_id": reply["id"]})
    assert stored["deliveries"]["CHANNEL"]["provider_message_id"] == "wamid.ADAPTER-1"
    # the adapter reports; the agent sees the delivery move, forward only
    delivered = await desk.report({"messageId": reply["id"], "status": "DELIVERED"})
    assert delivered.status_code == 200 and delivered.json() == {
        "messageId": reply["id"],
        "status": "DELIVERED",
        "changed": True,
    }
    assert (await desk.delivery(cid, reply["id"]))["status"] == "DELIVERED"
    assert (await desk.report({"messageId": reply["id"], "status": "READ"})).json()["changed"] is True
    assert (await desk.delivery(cid, reply["id"]))["status"] == "READ"
    again = await desk.report({"messageId": reply["id"], "status": "READ"})
    assert again.status_code == 200 and again.json()["changed"] is False
    behind = await desk.report({"messageId": reply["id"], "status": "DELIVERED"})
    assert behind.status_code == 409 and behind.json()["status"] == "READ"
    failed_late = await desk.report({"messageId": reply["id"], "status": "FAILED", "reason": "gone"})
    assert failed_late.status_code == 409
    assert (await desk.delivery(cid, reply["id"]))["status"] == "READ"
    # only owners and admins see where replies go
    assert (await desk.org.gql(CHANNELS))["channels"] == [{"id": desk.channel.id, "outboundUrl": adapter.url}]
    assert (await desk.org.gql(CHANNELS, as_=desk.agent))["channels"] == [{"id": desk.channel.id, "outboundUrl": None}]


async def test_a_503_is_retried_with_the_same_id_and_a_400_fails_with_the_adapters_reason(make_server, adapter):
    clock = FakeClock()
    desk = await open_desk(make_server, adapter, clock=clock)
    cid = (await desk.org.customer_writes(desk.channel, "c1", "hello"))["conversationId"]
    adapter.status, adapter.body = 503, b"busy"
    reply = await desk.reply(cid, "first")
    await adapter.wait_for(1)
    waiting = await desk.wait_messages(
        cid, lambda ms: any(m["id"] == reply["id"] and m["deliveries"][0]["attempts"] == 1 for m in ms)
    )
    [queued] = [m["deliveries"][0] for m in waiting if m["id"] == reply["id"]]
    assert (queued["status"], queued["errorCode"], queued["lastError"]) == (
        "QUEUED",
        "HTTP_503",
        "The adapter answered 503.",
    )
    adapter.status, adapter.body = 200, b""
    clock.advance(5)
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 2
    first, second = await adapter.wait_for(2)
    assert first.webhook_id == second.webhook_id == reply["id"] and first.body == second.body
    assert first.verified_by == second.verified_by == [0]
    # the adapter refuses for good: FAILED at once, in its words
    adapter.status, adapter.body = 400, b'{"reason": "The customer blocked this number."}'
    refused = await desk.reply(cid, "second")
    failed = await desk.wait_delivery(cid, refused["id"], "FAILED")
    assert failed["attempts"] == 1 and failed["errorCode"] == "HTTP_400"
    assert failed["lastError"] == "The adapter answered 400: The customer blocked this number."
    assert len(adapter.requests) == 3


async def test_refused_reports_change_nothing(make_server, adapter):
    desk = await open_desk(make_server, adapter)
    cid = (await desk.org.customer_writes(desk.channel, "c1", "hello"))["conversationId"]
    reply = await desk.reply(cid, "hi")
    await desk.wait_delivery(cid, reply["id"], "SENT")
    customer_message = (await desk.messages(cid))[0]["id"]
    other = await connect(desk.org, desk.team, adapter.url, "LINE")
    other_key = other["ingestKey"]
    ok = {"messageId": reply["id"], "status": "DELIVERED"}
    # the channel's key, and nothing else, authenticates
    assert (await desk.report(ok, key="ik_wrong")).status_code == 401
    assert (await desk.report(ok, key=other_key)).status_code == 401
    assert (await desk.report(ok, channel_id="0" * 24)).status_code == 404
    # a reply of another channel, a customer's message, an id never issued: not this channel's replies
    assert (await desk.report(ok, key=other_key, channel_id=other["channel"]["id"])).status_code == 404
    for message_id in (customer_message, "0" * 24):
        missing = await desk.report({"messageId": message_id, "status": "READ"})
        assert missing.status_code == 404
        assert missing.json() == {"error": "No reply of this channel has this messageId."}
    # strictly parsed: every offending field named
    for body, fields in (
        ([ok], ["body"]),
        ({"messageId": reply["id"], "status": "delivered"}, ["status"]),
        ({"messageId": reply["id"], "status": "QUEUED"}, ["status"]),
        ({"messageId": {"$ne": None}, "status": "READ"}, ["messageId"]),
        ({"status": "READ", "extra": 1}, ["extra", "messageId"]),
        ({"messageId": reply["id"], "status": "READ", "reason": "because"}, ["reason"]),
        ({"messageId": reply["id"], "status": "FAILED", "reason": "x" * 1001}, ["reason"]),
    ):
        response = await desk.report(body)
        assert response.status_code == 422, (body, response.text)
        assert [f["field"] for f in response.json()["fields"]] == fields, body
    not_json = await desk.report(None, content=b"{", content_type="application/json")
    assert not_json.status_code == 422
    as_form = await desk.report(None, content=b"status=READ", content_type="text/plain")
    assert as_form.status_code == 415
    assert (await desk.delivery(cid, reply["id"]))["status"] == "SENT"
    # FAILED with the adapter's reason, after it took the reply
    failed = await desk.report({"messageId": reply["id"], "status": "FAILED", "reason": "Number unreachable."})
    assert failed.status_code == 200 and failed.json()["status"] == "FAILED"
    assert (await desk.delivery(cid, reply["id"]))["lastError"] == "Number unreachable."


async def test_outbound_urls_are_checked_and_the_secret_rotates(make_server, adapter):
    desk = await open_desk(make_server, adapter)
    org, team = desk.org, desk.team
    for url, type_, extra in (
        ("ftp://adapter.example.com/out", "LINE", {}),
        ("https://user:pw@adapter.example.com/out", "LINE", {}),
        (adapter.url, "WEB_WIDGET", {}),
        (adapter.url, "LINE", {"credentials": {"line": {"channelSecret": "s" * 32, "channelAccessToken": "t" * 40}}}),
    ):
        refused = await connect(org, team, url, type_, **extra)
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID_INPUT", "outboundUrl")], url
    # the channel's replies go one way: no provider credentials beside an adapter
    line = {"line": {"channelSecret": "s" * 32, "channelAccessToken": "t" * 40}}
    both = await org.gql(CREDENTIALS, {"i": {"channelId": desk.channel.id, "credentials": line}})
    assert [e["field"] for e in both["updateChannelCredentials"]["errors"]] == ["credentials"]
    # a new secret, returned once: replies are signed with it alone from then on
    rotated = (await org.gql(UPDATE, {"i": {"id": desk.channel.id, "rotateOutboundSecret": True}}))["updateChannel"]
    assert rotated["errors"] == [] and rotated["outboundSecret"].startswith("whsec_")
    assert rotated["outboundSecret"] != desk.secret
    adapter.secrets = [desk.secret, rotated["outboundSecret"]]
    cid = (await org.customer_writes(desk.channel, "c1", "hello"))["conversationId"]
    reply = await desk.reply(cid, "signed anew")
    [got] = await adapter.wait_for(1)
    assert got.verified_by == [1]
    await desk.wait_delivery(cid, reply["id"], "SENT")
    # removed: later replies are stored with no channel delivery
    both_ways = {"id": desk.channel.id, "removeOutboundUrl": True, "outboundUrl": adapter.url}
    mixed = (await org.gql(UPDATE, {"i": both_ways}))["updateChannel"]
    assert [e["field"] for e in mixed["errors"]] == ["removeOutboundUrl"]
    removed = (await org.gql(UPDATE, {"i": {"id": desk.channel.id, "removeOutboundUrl": True}}))["updateChannel"]
    assert removed["errors"] == [] and removed["channel"]["outboundUrl"] is None and removed["outboundSecret"] is None
    assert (await desk.reply(cid, "kept here"))["deliveries"] == []
    no_url = (await org.gql(UPDATE, {"i": {"id": desk.channel.id, "rotateOutboundSecret": True}}))["updateChannel"]
    assert [e["field"] for e in no_url["errors"]] == ["rotateOutboundSecret"]
    # set again later: a fresh secret comes with it
    again = (await org.gql(UPDATE, {"i": {"id": desk.channel.id, "outboundUrl": adapter.url}}))["updateChannel"]
    assert again["errors"] == [] and again["outboundSecret"] not in (None, desk.secret, rotated["outboundSecret"])
    assert len(adapter.requests) == 1


async def test_private_addresses_are_refused_unless_allowed(make_server, adapter, monkeypatch):
    server = await make_server(thresholds=CALM)  # IMBRACE_WEBHOOK_ALLOW_PRIVATE off
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("agent")
    await org.add(team, agent)
    names = {"adapter.example": ["93.184.216.34"]}

    async def resolve(host, port):
        return [ipaddress.ip_address(a) for a in names.get(host, [])]

    monkeypatch.setattr(address, "resolve_host", resolve)
    for url in (adapter.url, "http://localhost:9/out", "http://169.254.169.254/latest", "http://[::1]:9/out"):
        refused = await connect(org, team, url)
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID_INPUT", "outboundUrl")], url
        assert "may not" in refused["errors"][0]["message"]
    plain = await org.channel(team, "LINE")
    changed = (await org.gql(UPDATE, {"i": {"id": plain.id, "outboundUrl": adapter.url}}))["updateChannel"]
    assert [e["field"] for e in changed["errors"]] == ["outboundUrl"]
    assert (await org.gql(CHANNELS))["channels"] == [{"id": plain.id, "outboundUrl": None}]
    assert await server.db.channels.count_documents({}) == 1
    # public when it was set, private when a reply goes: checked again at every attempt, not sent
    url = f"http://adapter.example:{adapter.port}/hook"
    public = await connect(org, team, url)
    assert public["errors"] == []
    names["adapter.example"] = ["127.0.0.1"]
    channel = ChannelInfo(public["channel"]["id"], public["ingestKey"], "WHATSAPP")
    desk = Desk(org, team, agent, channel, public["outboundSecret"], adapter)
    cid = (await org.customer_writes(channel, "c1", "hello"))["conversationId"]
    reply = await desk.reply(cid, "never sent")
    failed = await desk.wait_delivery(cid, reply["id"], "FAILED")
    assert failed["errorCode"] == "ADDRESS_REFUSED" and "loopback" in failed["lastError"]
    assert adapter.requests == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(True, 5, 200, '{"messageId": "ext-1"}'), Sent("ext-1", reports_by_id=False)),
        (Answer(True, 5, 204, '{"messageId": "' + "x" * 201 + '"}'), Sent(None, reports_by_id=False)),
        (Answer(False, 5, 429, "", retry_after="7"), Retry("The adapter answered 429.", "HTTP_429", 7.0)),
        (Answer(False, 5, 302, "", retry_after="7"), Failed(REDIRECT, "HTTP_302")),
        (Answer(False, 5, 410, '{"reason": 3}'), Failed("The adapter answered 410.", "HTTP_410")),
        (Answer(False, 5, error="No answer within 10 s."), Retry("No answer within 10 s.", unknown=True)),
        (Answer(False, 5, error=f"Not sent: {NOWHERE}"), Retry(f"Not sent: {NOWHERE}", unknown=True)),
        (Answer(False, 5, error=f"Not sent: {LOOPBACK}"), Failed(f"Not sent: {LOOPBACK}", "ADDRESS_REFUSED")),
    ],
)
def test_what_each_answer_of_the_adapter_makes_of_a_reply(answer, expected):
    assert outcome_of(answer) == expected
