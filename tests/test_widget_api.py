"""The web widget's server side: channel set-up, visitor sessions, the visitor's schema over HTTP
and WebSocket, delivery states, typing, presence from the connection, location, the email
fallback, rate limits and the tokens that never cross between visitors and agents.

A real server per test, spoken to as a browser's widget would (httpx with an ``Origin``
header, real WebSockets), and as agents do (``/graphql``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import websockets

from domain.status import Thresholds
from domain.widget import identity_hash
from tests.clock import FakeClock
from tests.smtp_server import SmtpServer
from tests.world import Org, Person, new_org
from tests.ws import Subscriber

SITE = "https://shop.example.com"
OTHER_SITE = "https://evil.example.net"

CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id widget { widgetKey allowedOrigins identityVerification snippet } }
    ingestKey widgetKey widgetSnippet identitySecret errors { code field message } } }"""
UPDATE = """mutation($i: UpdateChannelInput!) { updateChannel(input: $i) {
    channel { id name widget { widgetKey allowedOrigins identityVerification } }
    widgetKey widgetSnippet identitySecret errors { code field message } } }"""
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
REPLY = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id deliveries { via status } } errors { code message } } }"""
AGENT_TYPING = """mutation($id: ID!, $typing: Boolean!) { setTyping(conversationId: $id, typing: $typing) {
    conversationId errors { code } } }"""
AGENT_EVENTS = """subscription($after: ID) { conversationEvents(after: $after) {
    id kind conversationId typing actor { id } message { id deliveries { via status } }
    conversation { customer { online pageUrl timeZone language } } } }"""
CONVERSATION = """query($id: ID!) { conversation(id: $id) { id emailFallbackActive
    customer { name email online lastActiveAt pageUrl timeZone language location { city country countryCode } }
    messages(last: 50) { edges { node { id text sender { kind } deliveries { via status } } } } } }"""

SEND = """mutation($i: WidgetSendMessageInput!) { sendMessage(input: $i) {
    message { id sender text status attachments { url name size } }
    errors { code field message retryAfterSeconds } } }"""
MESSAGES = """query($last: Int, $before: String) { messages(last: $last, before: $before) {
    eventCursor pageInfo { hasPreviousPage startCursor }
    edges { cursor node { id sender agentName text status createdAt } } } }"""
EVENTS = """subscription($after: String) { widgetEvents(after: $after) {
    cursor kind typing agentName message { id sender agentName text status } } }"""
MARK_READ = """mutation($id: ID!) { markRead(input: {upToMessageId: $id}) { marked errors { code field } } }"""
TYPING = """mutation($t: Boolean!) { setTyping(input: {typing: $t}) { typing errors { code } } }"""
PROFILE = """mutation($i: UpdateProfileInput!) { updateProfile(input: $i) {
    visitor { visitorId name email conversationId } errors { code field retryAfterSeconds } } }"""


# Long enough that no status changes with time while a test runs (the sweeper stays quiet).
CALM = Thresholds(soon_after_s=600, overdue_after_s=900, auto_close_after_s=86400, presence_timeout_s=60)


@pytest.fixture
async def server(make_server):
    return await make_server(thresholds=CALM)


@dataclass
class Desk:
    """An organization with a team, an agent in it and a WEB_WIDGET channel."""

    org: Org
    team: str
    agent: Person
    channel_id: str
    key: str
    secret: str | None

    @property
    def server(self):
        return self.org.server


async def widget_desk(server, origins=(SITE,), identity: bool = False) -> Desk:
    org = await new_org(server)
    team = await org.team("Web")
    agent = await org.member("Alice")
    await org.add(team, agent)
    data = await org.gql(
        CONNECT,
        {
            "i": {
                "type": "WEB_WIDGET",
                "name": "Shop",
                "teamId": team,
                "allowedOrigins": list(origins),
                "identityVerification": identity,
            }
        },
    )
    payload = data["connectChannel"]
    assert payload["errors"] == [], payload
    return Desk(org, team, agent, payload["channel"]["id"], payload["widgetKey"], payload["identitySecret"])


async def session_response(server, key: str, origin: str | None = SITE, headers=None, **body) -> httpx.Response:
    return await server.http.post(
        "/widget/v1/sessions",
        json={"widgetKey": key, **body},
        headers={**({"Origin": origin} if origin else {}), **(headers or {})},
    )


@dataclass
class Visitor:
    server: object
    token: str
    visitor_id: str
    origin: str = SITE

    async def gql(self, query: str, variables: dict | None = None, origin: str | None = None) -> dict:
        response = await self.post({"query": query, "variables": variables or {}}, origin=origin)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, (response.status_code, body)
        return body["data"]

    async def post(self, body: dict, origin: str | None = None, token: str | None = None) -> httpx.Response:
        return await self.server.http.post(
            "/widget/graphql",
            json=body,
            headers={"Authorization": f"Bearer {token or self.token}", "Origin": origin or self.origin},
        )

    def socket(self, origin: str | None = None) -> WidgetSocket:
        return WidgetSocket(self.server, self.token, origin or self.origin)

    async def send(self, text: str) -> dict:
        data = await self.gql(SEND, {"i": {"text": text}})
        assert data["sendMessage"]["errors"] == [], data
        return data["sendMessage"]["message"]


class WidgetSocket(Subscriber):
    """graphql-transport-ws on /widget/graphql, initialised as widget.js does: ``{"token": …}``."""

    def __init__(self, server, token: str, origin: str | None) -> None:
        super().__init__(f"ws://127.0.0.1:{server.port}/widget/graphql", token, origin)

    async def __aenter__(self) -> WidgetSocket:
        acknowledged = await self.connect()
        assert acknowledged["type"] == "connection_ack", acknowledged
        return self

    async def connect(self) -> dict:
        headers = {"Origin": self.origin} if self.origin else None
        self.socket = await websockets.connect(
            self.url, subprotocols=["graphql-transport-ws"], additional_headers=headers
        )
        await self.socket.send(json.dumps({"type": "connection_init", "payload": {"token": self.token}}))
        return await self.receive()


async def refused_with(socket: Subscriber, code: int) -> None:
    """The socket is closed with ``code`` once its ``connection_init`` is read."""
    try:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.connect()
            await socket.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code, closed.value
    finally:
        await socket.close()


async def visit(server, key: str, origin: str = SITE, **body) -> Visitor:
    response = await session_response(server, key, origin, **body)
    assert response.status_code == 201, response.text
    answer = response.json()
    return Visitor(server, answer["token"], answer["visitorId"], origin)


async def agent_reply(desk: Desk, conversation_id: str, text: str) -> dict:
    await desk.org.gql(JOIN, {"id": conversation_id}, as_=desk.agent)
    data = await desk.org.gql(REPLY, {"i": {"conversationId": conversation_id, "text": text}}, as_=desk.agent)
    assert data["sendMessage"]["errors"] == [], data
    return data["sendMessage"]["message"]


async def conversation(desk: Desk, conversation_id: str) -> dict:
    return (await desk.org.gql(CONVERSATION, {"id": conversation_id}, as_=desk.agent))["conversation"]


async def eventually(check, timeout_s: float = 5.0):
    """``check()``'s value once it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def widget_subscribed(server, count: int = 1) -> None:
    """Until ``count`` visitor streams follow the event hub."""

    async def following():
        return sum(len(s) for s in server.services.hub.audience.by_conversation.values()) >= count

    await eventually(following)


async def next_event(socket: Subscriber, timeout: float = 5) -> dict:
    return (await socket.next_data(timeout))["widgetEvents"]


async def agent_event(socket: Subscriber, skip: tuple[str, ...] = ("PRESENCE",)) -> dict:
    """The agents' next conversation event, past those of the kinds in ``skip``."""
    while True:
        event = (await socket.next_data())["conversationEvents"]
        if event["kind"] not in skip:
            return event


# Channel set-up


async def test_connecting_a_widget_returns_its_key_snippet_and_secret_once(server, raw_db):
    desk = await widget_desk(server, origins=("https://Shop.Example.com:443/", "http://localhost:3000"), identity=True)
    assert desk.key.startswith("wk_") and len(desk.key) > 30
    assert desk.secret is not None and len(desk.secret) == 64
    data = await desk.org.gql(
        "{ channels { id type widget { widgetKey allowedOrigins identityVerification snippet } } }"
    )
    (channel,) = data["channels"]
    assert channel["widget"] == {
        "widgetKey": desk.key,
        "allowedOrigins": [SITE, "http://localhost:3000"],
        "identityVerification": True,
        "snippet": f'<script src="http://localhost:8000/widget.js" data-widget-key="{desk.key}" async></script>',
    }
    # members who are not admins see no widget settings
    other = await desk.org.gql("{ channels { widget { widgetKey } } }", as_=desk.agent)
    assert other["channels"] == [{"widget": None}]
    # the secret is never stored in clear, nor readable again
    doc = await raw_db[server.settings.database].channels.find_one({"_id": desk.channel_id})
    assert desk.secret not in json.dumps(doc, default=str)
    assert doc["widget_secret"].startswith("v1.")
    assert "identitySecret" not in json.dumps(await desk.org.gql("{ channels { id name type widget { snippet } } }"))


@pytest.mark.parametrize(
    "origins, field",
    [
        (["https://shop.example.com/path"], "allowedOrigins"),
        (["ftp://shop.example.com"], "allowedOrigins"),
        (["null"], "allowedOrigins"),
        ([f"https://s{i}.example.com" for i in range(21)], "allowedOrigins"),
    ],
)
async def test_allowed_origins_are_exact_origins(server, origins, field):
    org = await new_org(server)
    team = await org.team("Web")
    data = await org.gql(
        CONNECT, {"i": {"type": "WEB_WIDGET", "name": "Shop", "teamId": team, "allowedOrigins": origins}}
    )
    assert [e["code"] for e in data["connectChannel"]["errors"]] == ["INVALID_INPUT"]
    assert data["connectChannel"]["errors"][0]["field"] == field


async def test_widget_settings_are_for_web_widget_channels_only(server):
    org = await new_org(server)
    team = await org.team("Web")
    data = await org.gql(CONNECT, {"i": {"type": "LINE", "name": "Line", "teamId": team, "allowedOrigins": [SITE]}})
    assert [e["code"] for e in data["connectChannel"]["errors"]] == ["INVALID_INPUT"]
    line = await org.channel(team, "LINE")
    data = await org.gql(UPDATE, {"i": {"id": line.id, "rotateWidgetKey": True}})
    assert [e["code"] for e in data["updateChannel"]["errors"]] == ["INVALID_INPUT"]
    data = await org.gql(UPDATE, {"i": {"id": line.id, "name": "LINE official"}})
    assert data["updateChannel"]["errors"] == [] and data["updateChannel"]["channel"]["name"] == "LINE official"


# Sessions


async def test_a_session_from_an_allowed_origin_and_the_refusals(server):
    desk = await widget_desk(server)
    response = await session_response(
        server, desk.key, pageUrl="https://shop.example.com/cart", timeZone="Europe/Berlin", language="de-DE"
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert response.headers["access-control-allow-origin"] == SITE
    assert answer["visitorId"].startswith("v_") and len(answer["visitorId"]) == 24
    assert answer["conversationId"] is None and answer["expiresAt"].endswith("Z") and answer["token"]

    refused = await session_response(server, desk.key, origin=OTHER_SITE)
    assert (refused.status_code, refused.json()["code"]) == (403, "ORIGIN_NOT_ALLOWED")
    assert "access-control-allow-origin" not in refused.headers
    no_origin = await session_response(server, desk.key, origin=None)
    assert (no_origin.status_code, no_origin.json()["code"]) == (403, "ORIGIN_NOT_ALLOWED")
    unknown = await session_response(server, "wk_" + "x" * 32)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "UNKNOWN_WIDGET")
    assert unknown.headers["access-control-allow-origin"] == SITE  # the page may read why
    bad = await session_response(server, desk.key, timeZone="Mars/Olympus Mons!")
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (400, "INVALID_INPUT", "timeZone")
    not_json = await server.http.post("/widget/v1/sessions", content=b"widgetKey", headers={"Origin": SITE})
    assert not_json.status_code == 415
    array = await server.http.post("/widget/v1/sessions", json=[desk.key], headers={"Origin": SITE})
    assert (array.status_code, array.json()["code"]) == (400, "INVALID_INPUT")

    # the preflight is answered for origins some widget allows, and only for them
    preflight = await server.http.options(
        "/widget/v1/sessions",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == SITE
    assert "POST" in preflight.headers["access-control-allow-methods"]
    for path in ("/widget/v1/sessions", "/widget/graphql"):
        stranger = await server.http.options(
            path, headers={"Origin": OTHER_SITE, "Access-Control-Request-Method": "POST"}
        )
        assert stranger.status_code == 403 and "access-control-allow-origin" not in stranger.headers
    graphql_preflight = await server.http.options(
        "/widget/graphql",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert graphql_preflight.status_code == 204
    assert graphql_preflight.headers["access-control-allow-headers"] == "authorization, content-type"


async def test_a_known_visitor_keeps_their_conversation_and_an_unknown_id_is_never_taken_over(server):
    desk = await widget_desk(server)
    first = await visit(server, desk.key)
    sent = await first.send("Hello from the first tab")
    again = await visit(server, desk.key, visitorId=first.visitor_id)
    assert again.visitor_id == first.visitor_id
    page = (await again.gql(MESSAGES))["messages"]
    assert [e["node"]["id"] for e in page["edges"]] == [sent["id"]]
    # a well-formed id nobody was given is not adopted: a fresh one is drawn
    made_up = "v_" + "A" * 22
    stranger = await visit(server, desk.key, visitorId=made_up)
    assert stranger.visitor_id not in (made_up, first.visitor_id)
    assert (await stranger.gql(MESSAGES))["messages"]["edges"] == []
    garbage = await visit(server, desk.key, visitorId="../../etc")
    assert garbage.visitor_id.startswith("v_")


async def test_identity_verification_binds_the_same_customer_across_devices(server):
    desk = await widget_desk(server, identity=True)
    assert desk.secret
    proof = identity_hash(desk.secret, "user-42")
    laptop = await visit(server, desk.key, identifier="user-42", identifierHash=proof, name="Ann", email="ann@x.org")
    sent = await laptop.send("From my laptop")
    phone = await visit(server, desk.key, identifier="user-42", identifierHash=proof.upper())
    assert phone.visitor_id != laptop.visitor_id
    assert [e["node"]["id"] for e in (await phone.gql(MESSAGES))["messages"]["edges"]] == [sent["id"]]
    visitor = (await phone.gql("{ visitor { name email conversationId } }"))["visitor"]
    assert visitor == {"name": "Ann", "email": "ann@x.org", "conversationId": visitor["conversationId"]}
    # the anonymous visitor id handed to a verified session never leads to that customer
    anonymous = await visit(server, desk.key, visitorId=laptop.visitor_id)
    assert (await anonymous.gql(MESSAGES))["messages"]["edges"] == []

    wrong = await session_response(server, desk.key, identifier="user-42", identifierHash=identity_hash("x", "user-42"))
    assert (wrong.status_code, wrong.json()["code"]) == (401, "IDENTITY_MISMATCH")
    other_user = await session_response(server, desk.key, identifier="user-43", identifierHash=proof)
    assert other_user.status_code == 401
    half = await session_response(server, desk.key, identifier="user-42")
    assert (half.status_code, half.json()["code"]) == (400, "INVALID_INPUT")


async def test_without_identity_verification_an_identifier_is_refused(server):
    desk = await widget_desk(server)
    response = await session_response(server, desk.key, identifier="user-1", identifierHash="a" * 64)
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        400,
        "INVALID_INPUT",
        "identifier",
    )


# The visitor's schema


async def test_a_visitor_reaches_only_their_own_conversation(server):
    desk = await widget_desk(server)
    ann, bob = await visit(server, desk.key), await visit(server, desk.key)
    ann_message = await ann.send("I am Ann")
    conversation_id = (await ann.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    async with bob.socket() as bob_socket, ann.socket() as ann_socket:
        await bob_socket.subscribe(EVENTS)
        await ann_socket.subscribe(EVENTS)
        await widget_subscribed(server, 2)
        reply = await agent_reply(desk, conversation_id, "Hello Ann")
        assert (await next_event(ann_socket))["message"]["id"] == reply["id"]
        assert await bob_socket.nothing_within(0.5)
    assert (await bob.gql(MESSAGES))["messages"]["edges"] == []
    refused = (await bob.gql(MARK_READ, {"id": reply["id"]}))["markRead"]
    assert refused == {"marked": None, "errors": [{"code": "NOT_FOUND", "field": "upToMessageId"}]}
    assert (await bob.gql(MARK_READ, {"id": ann_message["id"]}))["markRead"]["errors"][0]["code"] == "NOT_FOUND"
    assert (await bob.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"] is None


async def test_widget_and_agent_tokens_never_cross(server):
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key)
    # a widget token on the agent API: HTTP and WebSocket
    answer = await server.gql("{ me { id } }", token=visitor.token, expect_errors=True)
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await refused_with(Subscriber(server.ws_url, visitor.token), 4403)
    # an agent token on the widget API: HTTP and WebSocket
    response = await visitor.post({"query": "{ visitor { visitorId } }"}, token=desk.org.owner.token)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert response.headers["access-control-allow-origin"] == SITE  # the widget may read it and start over
    await refused_with(WidgetSocket(server, desk.org.owner.token, SITE), 4403)
    # the token only works from the origin its session started on
    response = await visitor.post({"query": "{ visitor { visitorId } }"}, origin=OTHER_SITE)
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
    await refused_with(WidgetSocket(server, visitor.token, OTHER_SITE), 4403)
    # and with it: the visitor, with CORS for the session's origin
    response = await visitor.post({"query": "{ visitor { visitorId } }"})
    assert response.json() == {"data": {"visitor": {"visitorId": visitor.visitor_id}}}
    assert response.headers["access-control-allow-origin"] == SITE
    async with visitor.socket() as ws:
        assert ws.socket is not None
    # no token, GET, form posts
    assert (await server.http.post("/widget/graphql", json={"query": "{ __typename }"})).status_code == 401
    assert (await server.http.get("/widget/graphql", headers={"Origin": SITE})).status_code == 405
    form = await server.http.post(
        "/widget/graphql",
        content=b"query=%7B__typename%7D",
        headers={"Authorization": f"Bearer {visitor.token}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415


async def test_a_conversation_through_the_widget_with_delivery_states(server):
    desk = await widget_desk(server)
    visitor = await visit(
        server,
        desk.key,
        name="Carol",
        pageUrl="https://shop.example.com/checkout",
        timeZone="Asia/Hong_Kong",
        language="zh-HK",
    )
    async with Subscriber(server.ws_url, desk.org.owner.token) as agents, visitor.socket() as widget:
        await agents.subscribe(AGENT_EVENTS)
        await widget.subscribe(EVENTS)
        await server.subscribed(2)
        await widget_subscribed(server)
        mine = await visitor.send("Do you ship to Kowloon?")
        assert mine["sender"] == "VISITOR" and mine["status"] is None
        created = (await agents.next_data())["conversationEvents"]
        assert created["kind"] == "CREATED"
        assert created["conversation"]["customer"] == {
            "online": True,
            "pageUrl": "https://shop.example.com/checkout",
            "timeZone": "Asia/Hong_Kong",
            "language": "zh-HK",
        }
        conversation_id = created["conversationId"]
        echo = await next_event(widget)  # the visitor's own message, for their other tabs
        assert (echo["kind"], echo["message"]["id"], echo["message"]["sender"]) == ("MESSAGE", mine["id"], "VISITOR")

        reply = await agent_reply(desk, conversation_id, "We do!")
        assert [d["via"] for d in reply["deliveries"]] == ["CHANNEL"]  # online: no email
        event = await next_event(widget)
        assert event["kind"] == "MESSAGE"
        assert event["message"] == {
            "id": reply["id"],
            "sender": "AGENT",
            "agentName": "Alice",
            "text": "We do!",
            "status": event["message"]["status"],
        }
        # agents see the reply go SENT, then DELIVERED once the widget's stream carried it
        statuses = []
        while "DELIVERED" not in statuses:
            agent_event = (await agents.next_data())["conversationEvents"]
            if agent_event["kind"] == "DELIVERY":
                assert agent_event["message"]["id"] == reply["id"]
                statuses.append(agent_event["message"]["deliveries"][0]["status"])
        assert statuses[-1] == "DELIVERED" and set(statuses) <= {"SENT", "DELIVERED"}

        read = (await visitor.gql(MARK_READ, {"id": reply["id"]}))["markRead"]
        assert read == {"marked": 1, "errors": []}
        while True:
            agent_event = (await agents.next_data())["conversationEvents"]
            if agent_event["kind"] == "DELIVERY" and agent_event["message"]["deliveries"][0]["status"] == "READ":
                break
        # the widget hears its reply's status move too
        while (event := await next_event(widget))["message"]["status"] != "READ":
            assert event["kind"] == "DELIVERY"
    seen = await conversation(desk, conversation_id)
    by_id = {e["node"]["id"]: e["node"] for e in seen["messages"]["edges"]}
    assert by_id[reply["id"]]["deliveries"] == [{"via": "CHANNEL", "status": "READ"}]
    assert by_id[mine["id"]]["sender"] == {"kind": "CUSTOMER"}
    page = (await visitor.gql(MESSAGES))["messages"]
    assert [(e["node"]["sender"], e["node"]["status"]) for e in page["edges"]] == [("VISITOR", None), ("AGENT", "READ")]
    assert seen["customer"]["name"] == "Carol"


async def test_resuming_with_after_loses_nothing_and_replays_no_typing(server):
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key)
    await visitor.send("Hi")
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    first = await agent_reply(desk, conversation_id, "First")
    page = (await visitor.gql(MESSAGES))["messages"]
    assert [e["node"]["text"] for e in page["edges"]] == ["Hi", "First"]
    cursor = page["eventCursor"]
    # offline for a while: two replies and some typing happen
    await desk.org.gql(AGENT_TYPING, {"id": conversation_id, "typing": True}, as_=desk.agent)
    second = await agent_reply(desk, conversation_id, "Second")
    await desk.org.gql(AGENT_TYPING, {"id": conversation_id, "typing": False}, as_=desk.agent)
    third = await agent_reply(desk, conversation_id, "Third")
    async with visitor.socket() as widget:
        await widget.subscribe(EVENTS, {"after": cursor})
        got = []
        while third["id"] not in [e["message"]["id"] for e in got if e["kind"] == "MESSAGE"]:
            got.append(await next_event(widget))
        messages = [e["message"]["id"] for e in got if e["kind"] == "MESSAGE"]
        # `eventCursor` is where the stream stood before the page was read: what the page
        # already had may come again (the widget keeps one per id), nothing after it is lost
        assert [m for m in messages if m != first["id"]] == [second["id"], third["id"]]
        assert all(e["kind"] != "TYPING" for e in got)
        assert [int(e["cursor"]) for e in got] == sorted(int(e["cursor"]) for e in got)
        last = got[-1]["cursor"]
    # a reconnect from the last cursor: only what came after it, live included
    fourth = await agent_reply(desk, conversation_id, "Fourth")
    async with visitor.socket() as widget:
        await widget.subscribe(EVENTS, {"after": last})
        event = await next_event(widget)
        while event["kind"] != "MESSAGE":
            event = await next_event(widget)
        assert event["message"]["id"] == fourth["id"]
        await widget_subscribed(server)
        fifth = await agent_reply(desk, conversation_id, "Fifth")
        event = await next_event(widget)
        while event["kind"] != "MESSAGE":
            event = await next_event(widget)
        assert event["message"]["id"] == fifth["id"]
        await widget.subscribe(EVENTS, {"after": "not-a-cursor"})
        refused = await widget.receive()
        assert refused["type"] in ("error", "next") and "after" in json.dumps(refused)


async def test_typing_both_ways_is_told_live_and_never_replayed(server):
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key)
    # before the first message there is no conversation, and nobody to tell
    assert (await visitor.gql(TYPING, {"t": True}))["setTyping"] == {"typing": True, "errors": []}
    await visitor.send("Hello")
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    await desk.org.gql(JOIN, {"id": conversation_id}, as_=desk.agent)
    async with Subscriber(server.ws_url, desk.org.owner.token) as agents, visitor.socket() as widget:
        await agents.subscribe(AGENT_EVENTS)
        await widget.subscribe(EVENTS)
        await server.subscribed(2)
        await widget_subscribed(server)
        assert (await visitor.gql(TYPING, {"t": True}))["setTyping"]["errors"] == []
        typing = await agent_event(agents)
        assert (typing["kind"], typing["typing"], typing["actor"], typing["conversationId"]) == (
            "TYPING",
            True,
            None,
            conversation_id,
        )
        cursor = typing["id"]
        # a repeat within two seconds is not told again; a change is
        await visitor.gql(TYPING, {"t": True})
        await visitor.gql(TYPING, {"t": False})
        stopped = await agent_event(agents)
        assert (stopped["kind"], stopped["typing"]) == ("TYPING", False)

        data = await desk.org.gql(AGENT_TYPING, {"id": conversation_id, "typing": True}, as_=desk.agent)
        assert data["setTyping"] == {"conversationId": conversation_id, "errors": []}
        event = await next_event(widget)
        assert (event["kind"], event["typing"], event["agentName"], event["message"]) == ("TYPING", True, "Alice", None)
        agent_typing = await agent_event(agents)
        assert (agent_typing["kind"], agent_typing["actor"]) == ("TYPING", {"id": desk.agent.id})
    # nothing of it is replayed to a resuming agent or visitor
    async with Subscriber(server.ws_url, desk.org.owner.token) as agents:
        await agents.subscribe(AGENT_EVENTS, {"after": str(int(cursor) - 1)})
        assert await agents.nothing_within(0.5)
    async with visitor.socket() as widget:
        await widget.subscribe(EVENTS, {"after": str(int(cursor) - 1)})
        assert await widget.nothing_within(0.5)
    # an agent can't type into a conversation they can't see
    outsider = await new_org(server, "Other")
    refused = await outsider.gql(AGENT_TYPING, {"id": conversation_id, "typing": True})
    assert refused["setTyping"]["errors"] == [{"code": "NOT_FOUND"}]
    # typing rides the event log a minute at most (for the other instances), the rest stays
    assert await server.db.events.count_documents({"kind": "TYPING"}) == 3
    await server.app.state.runtime.retention.purge(server.services.clock() + timedelta(seconds=61))
    assert await server.db.events.count_documents({"kind": "TYPING"}) == 0
    assert await server.db.events.count_documents({"kind": "CREATED"}) == 1


# Presence, location and the email fallback


@pytest.fixture
async def smtp():
    server = await SmtpServer().start()
    yield server
    await server.stop()


async def test_presence_comes_from_the_widget_socket_and_the_email_fallback_follows(make_server, smtp):
    clock = FakeClock()
    server = await make_server(
        clock=clock,
        thresholds=CALM,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_timeout_s=2,
        smtp_from="support@shop.example.com",
    )
    presence = server.services.presence
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key, name="Carol", email="carol@example.com")
    await visitor.send("Anyone there?")
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    await desk.org.gql(JOIN, {"id": conversation_id}, as_=desk.agent)
    before = await conversation(desk, conversation_id)
    assert before["customer"]["online"] is False  # a session alone is not presence
    async with Subscriber(server.ws_url, desk.org.owner.token) as agents:
        await agents.subscribe(AGENT_EVENTS)
        await server.subscribed(1)
        async with visitor.socket():
            came = await agent_event(agents, skip=())
            assert (came["kind"], came["conversation"]["customer"]["online"]) == ("PRESENCE", True)
            now = await conversation(desk, conversation_id)
            assert now["customer"]["online"] is True and now["emailFallbackActive"] is False
            reply = await agent_reply(desk, conversation_id, "Here!")
            assert [d["via"] for d in reply["deliveries"]] == ["CHANNEL"]
            # the socket stays open past the timeout: the visitor stays online
            for _ in range(3):
                clock.advance(40)
                await presence.tick(clock())
            assert (await conversation(desk, conversation_id))["customer"]["online"] is True
        # closed: online for the timeout after the last socket, then offline
        await eventually(lambda: _async(not presence.online_here(conversation_id)))
        clock.advance(30)
        await presence.tick(clock())
        assert (await conversation(desk, conversation_id))["customer"]["online"] is True
        clock.advance(31)
        await presence.tick(clock())
        went = await agent_event(agents, skip=("DELIVERY", "MESSAGE"))
        assert (went["kind"], went["conversation"]["customer"]["online"]) == ("PRESENCE", False)
        after = await conversation(desk, conversation_id)
        assert after["customer"]["online"] is False and after["emailFallbackActive"] is True
        # the next reply goes by email as well, and stays in the widget's history
        late = await agent_reply(desk, conversation_id, "Sorry we missed you: your parcel ships Monday.")
        assert sorted(d["via"] for d in late["deliveries"]) == ["CHANNEL", "EMAIL"]
        [mail] = await smtp.wait_for(1)
        assert mail.rcpt_tos == ["carol@example.com"]
        assert "your parcel ships Monday" in mail.message.get_body(("plain",)).get_content()
    # the visitor comes back: the reply is there, and now DELIVERED to the widget too
    back = await visit(server, desk.key, visitorId=visitor.visitor_id)
    page = (await back.gql(MESSAGES))["messages"]["edges"]
    assert [e["node"]["text"] for e in page][-1] == "Sorry we missed you: your parcel ships Monday."
    assert page[-1]["node"]["status"] == "DELIVERED"

    async def delivered_both_ways():
        messages = (await conversation(desk, conversation_id))["messages"]["edges"]
        deliveries = {d["via"]: d["status"] for d in messages[-1]["node"]["deliveries"]}
        return deliveries == {"CHANNEL": "DELIVERED", "EMAIL": "SENT"}

    await eventually(delivered_both_ways)
    last_active = (await conversation(desk, conversation_id))["customer"]["lastActiveAt"]
    assert last_active >= before["customer"]["lastActiveAt"]


async def _async(value):
    return value


async def test_location_comes_from_the_client_address_behind_a_trusted_proxy(make_server):
    proxied = await make_server(thresholds=CALM, trusted_proxies=("127.0.0.1/32",))
    desk = await widget_desk(proxied)
    visitor = await visit(
        proxied, desk.key, headers={"X-Forwarded-For": "8.8.8.8"}, timeZone="America/New_York", language="en-US"
    )
    await visitor.send("Hi from New York")
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    customer = (await conversation(desk, conversation_id))["customer"]
    assert customer["location"] == {"city": None, "country": "United States", "countryCode": "US"}
    assert (customer["timeZone"], customer["language"]) == ("America/New_York", "en-US")

    # without a trusted proxy the header is anyone's to write: the peer (loopback) has no location
    direct = await make_server(thresholds=CALM)
    desk = await widget_desk(direct)
    visitor = await visit(direct, desk.key, headers={"X-Forwarded-For": "8.8.8.8"})
    await visitor.send("Hi")
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    assert (await conversation(desk, conversation_id))["customer"]["location"] is None


# Abuse


async def test_rate_limits_answer_their_errors_over_http_and_websocket(make_server):
    clock = FakeClock()
    server = await make_server(
        clock=clock,
        thresholds=CALM,
        widget_sessions_per_hour=2,
        widget_messages_per_minute=2,
        widget_messages_per_address_per_minute=3,
    )
    desk = await widget_desk(server)
    ann, bob = await visit(server, desk.key), await visit(server, desk.key)
    third = await session_response(server, desk.key)
    assert (third.status_code, third.json()["code"]) == (429, "RATE_LIMITED")
    assert 3590 <= int(third.headers["retry-after"]) <= 3600
    assert third.headers["access-control-allow-origin"] == SITE

    await ann.send("one")
    await ann.send("two")
    refused = (await ann.gql(SEND, {"i": {"text": "three"}}))["sendMessage"]
    assert refused["message"] is None
    [error] = refused["errors"]
    assert error["code"] == "RATE_LIMITED" and 1 <= error["retryAfterSeconds"] <= 60
    async with ann.socket() as widget:
        await widget.subscribe(SEND, {"i": {"text": "four, over the socket"}})
        over_ws = (await widget.next_data())["sendMessage"]
        assert [e["code"] for e in over_ws["errors"]] == ["RATE_LIMITED"]
    # the address's budget is shared by its visitors (refused messages don't spend it)
    await bob.send("bob's first")
    by_address = (await bob.gql(SEND, {"i": {"text": "bob's second"}}))["sendMessage"]["errors"]
    assert [e["code"] for e in by_address] == ["RATE_LIMITED"] and "address" in by_address[0]["message"]
    # profile updates are counted as messages
    assert [e["code"] for e in (await ann.gql(PROFILE, {"i": {"name": "Ann"}}))["updateProfile"]["errors"]] == [
        "RATE_LIMITED"
    ]
    # a minute later the budgets are back
    clock.advance(61)
    await ann.send("later")
    clock.advance(3600)
    assert (await session_response(server, desk.key)).status_code == 201


async def test_message_and_file_limits_are_the_agent_sides(server):
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key)

    async def refused(variables) -> list[tuple[str, str]]:
        errors = (await visitor.gql(SEND, variables))["sendMessage"]["errors"]
        return [(e["code"], e["field"]) for e in errors]

    assert await refused({"i": {"text": "x" * 4097}}) == [("INVALID_INPUT", "text")]
    assert await refused({"i": {"text": "   "}}) == [("INVALID_INPUT", "text")]
    assert await refused({"i": {"text": "nul \x00"}}) == [("INVALID_INPUT", "text")]

    async def upload(files: dict, text: str | None = "See attached") -> dict:
        paths = {str(i): [f"variables.i.attachments.{i}"] for i in range(len(files))}
        response = await server.http.post(
            "/widget/graphql",
            headers={"Authorization": f"Bearer {visitor.token}", "Origin": SITE},
            data={
                "operations": json.dumps(
                    {"query": SEND, "variables": {"i": {"text": text, "attachments": [None] * len(files)}}}
                ),
                "map": json.dumps(paths),
            },
            files=files,
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]["sendMessage"]

    limit = server.settings.messaging.max_upload_bytes
    too_big = await upload({"0": ("big.bin", b"x" * (limit + 1), "application/octet-stream")})
    assert [(e["code"], e["field"]) for e in too_big["errors"]] == [("PAYLOAD_TOO_LARGE", "attachments")]
    too_many = await upload({str(i): (f"f{i}.txt", b"hi", "text/plain") for i in range(11)})
    assert [(e["code"], e["field"]) for e in too_many["errors"]] == [("INVALID_INPUT", "attachments")]
    sent = await upload({"0": ("note.txt", b"hello file", "text/plain")}, text=None)
    assert sent["errors"] == []
    [attachment] = sent["message"]["attachments"]
    assert (attachment["name"], attachment["size"]) == ("note.txt", 10)
    assert attachment["url"].startswith("/files/") and "signature=" in attachment["url"]
    download = await server.http.get(attachment["url"])  # a signed link: no token needed
    assert download.status_code == 200 and download.content == b"hello file"
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    messages = (await conversation(desk, conversation_id))["messages"]["edges"]
    assert [e["node"]["text"] for e in messages] == [None]


# Changing the channel


async def test_update_channel_rotates_the_key_the_secret_and_the_origins(server):
    desk = await widget_desk(server, origins=(SITE,), identity=True)
    visitor = await visit(server, desk.key)
    data = (await desk.org.gql(UPDATE, {"i": {"id": desk.channel_id, "rotateWidgetKey": True}}))["updateChannel"]
    new_key = data["widgetKey"]
    assert data["errors"] == [] and new_key != desk.key and new_key in data["widgetSnippet"]
    assert data["identitySecret"] is None and data["channel"]["widget"]["identityVerification"] is True
    old = await session_response(server, desk.key)
    assert (old.status_code, old.json()["code"]) == (404, "UNKNOWN_WIDGET")
    assert (await session_response(server, new_key)).status_code == 201
    # a session already started goes on until the origin is taken off
    assert (await visitor.gql("{ visitor { visitorId } }"))["visitor"]["visitorId"] == visitor.visitor_id

    moved = "https://www.example.com"
    data = await desk.org.gql(UPDATE, {"i": {"id": desk.channel_id, "allowedOrigins": [moved]}})
    assert data["updateChannel"]["channel"]["widget"]["allowedOrigins"] == [moved]
    assert (await session_response(server, new_key)).status_code == 403
    assert (await session_response(server, new_key, origin=moved)).status_code == 201
    assert (await visitor.post({"query": "{ visitor { visitorId } }"})).status_code == 403
    await refused_with(visitor.socket(), 4403)

    proof = identity_hash(desk.secret, "user-7")
    assert (
        await session_response(server, new_key, origin=moved, identifier="user-7", identifierHash=proof)
    ).status_code == 201
    rotated = (await desk.org.gql(UPDATE, {"i": {"id": desk.channel_id, "rotateIdentitySecret": True}}))[
        "updateChannel"
    ]
    secret = rotated["identitySecret"]
    assert secret and secret != desk.secret
    stale = await session_response(server, new_key, origin=moved, identifier="user-7", identifierHash=proof)
    assert stale.status_code == 401
    fresh = identity_hash(secret, "user-7")
    assert (
        await session_response(server, new_key, origin=moved, identifier="user-7", identifierHash=fresh)
    ).status_code == 201
    off = await desk.org.gql(UPDATE, {"i": {"id": desk.channel_id, "disableIdentityVerification": True}})
    assert off["updateChannel"]["channel"]["widget"]["identityVerification"] is False
    now_off = await session_response(server, new_key, origin=moved, identifier="user-7", identifierHash=fresh)
    assert (now_off.status_code, now_off.json()["field"]) == (400, "identifier")

    both = await desk.org.gql(
        UPDATE, {"i": {"id": desk.channel_id, "rotateIdentitySecret": True, "disableIdentityVerification": True}}
    )
    assert [e["code"] for e in both["updateChannel"]["errors"]] == ["INVALID_INPUT"]
    member = await desk.org.gql(UPDATE, {"i": {"id": desk.channel_id, "rotateWidgetKey": True}}, as_=desk.agent)
    assert [e["code"] for e in member["updateChannel"]["errors"]] == ["FORBIDDEN"]
    stranger = await new_org(server, "Other")
    theirs = await stranger.gql(UPDATE, {"i": {"id": desk.channel_id, "name": "Mine now"}})
    assert [e["code"] for e in theirs["updateChannel"]["errors"]] == ["NOT_FOUND"]


async def test_a_widget_channel_connected_before_the_widget_gets_its_settings_from_update_channel(server):
    org = await new_org(server)
    team = await org.team("Web")
    legacy = await org.channel(team, "WEB_WIDGET")
    await server.db.channels.update_one(  # as a channel connected before the widget existed: no widget settings
        {"_id": legacy.id}, {"$unset": {"widget_key": "", "widget_origins": "", "widget_verified": ""}}
    )
    server.services.store._channels._cache.clear()
    data = (await org.gql(UPDATE, {"i": {"id": legacy.id, "allowedOrigins": [SITE]}}))["updateChannel"]
    assert data["errors"] == [] and data["widgetKey"].startswith("wk_")
    assert (await session_response(server, data["widgetKey"])).status_code == 201


async def test_the_visitor_updates_their_profile_and_agents_hear_it(server):
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key)
    await visitor.send("Hi")
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    async with Subscriber(server.ws_url, desk.org.owner.token) as agents:
        await agents.subscribe(AGENT_EVENTS)
        await server.subscribed(1)
        data = await visitor.gql(
            PROFILE, {"i": {"name": "Dana", "email": "DANA@example.com", "pageUrl": "https://shop.example.com/faq"}}
        )
        assert data["updateProfile"]["visitor"] == {
            "visitorId": visitor.visitor_id,
            "name": "Dana",
            "email": "dana@example.com",
            "conversationId": conversation_id,
        }
        assert (await agent_event(agents))["kind"] == "CUSTOMER_UPDATED"
    customer = (await conversation(desk, conversation_id))["customer"]
    assert (customer["name"], customer["email"], customer["pageUrl"]) == (
        "Dana",
        "dana@example.com",
        "https://shop.example.com/faq",
    )
    bad = (await visitor.gql(PROFILE, {"i": {"email": "not an email"}}))["updateProfile"]["errors"]
    assert [(e["code"], e["field"]) for e in bad] == [("INVALID_INPUT", "email")]
    cleared = (await visitor.gql(PROFILE, {"i": {"email": None}}))["updateProfile"]["visitor"]
    assert cleared["email"] is None and cleared["name"] == "Dana"


# The schema itself


def test_the_widget_schema_is_described_and_committed():
    from pathlib import Path

    from api.cli import export_widget_schema
    from api.settings import Settings
    from api.widget.view import build_widget_schema
    from tests.test_schema_descriptions import undescribed

    missing = undescribed(build_widget_schema(Settings())._schema)
    assert not missing, f"{len(missing)} without a description:\n" + "\n".join(missing)
    committed = (Path(__file__).resolve().parent.parent / "docs" / "widget-schema.graphql").read_text()
    assert export_widget_schema().strip() == committed.strip(), (
        "docs/widget-schema.graphql is stale: regenerate it with "
        "`imbrace export-schema --widget > docs/widget-schema.graphql`"
    )


async def test_a_delivered_report_that_beats_the_worker_stands(server):
    """The widget may report DELIVERED (or READ) before the delivery worker has recorded SENT:
    the worker then ends the job without writing its SENT over it."""
    from api.delivery.setup import build_worker

    desk = await widget_desk(server)
    visitor = await visit(server, desk.key)
    await visitor.send("Hi")
    conversation_id = (await visitor.gql("{ visitor { conversationId } }"))["visitor"]["conversationId"]
    await server.services.delivery.stop()  # this instance's worker looks away
    reply = await agent_reply(desk, conversation_id, "Hello")
    assert reply["deliveries"] == [{"via": "CHANNEL", "status": "QUEUED"}]
    page = (await visitor.gql(MESSAGES))["messages"]["edges"]
    assert page[-1]["node"]["status"] == "DELIVERED"  # fetched: the browser has it
    async with httpx.AsyncClient() as http:
        worker = build_worker(server.services, http)
        assert await worker.run_once() == 1
    messages = (await conversation(desk, conversation_id))["messages"]["edges"]
    assert messages[-1]["node"]["deliveries"] == [{"via": "CHANNEL", "status": "DELIVERED"}]
    assert await server.db.messages.count_documents({"outbox_due": {"$exists": True}}) == 0


async def test_the_widget_socket_closes_when_its_session_expires(make_server):
    server = await make_server(thresholds=CALM, widget_session_ttl_s=1)
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key)
    async with visitor.socket() as widget:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await widget.receive(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert (await visitor.post({"query": "{ visitor { visitorId } }"})).status_code == 401
