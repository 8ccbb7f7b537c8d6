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

import httpx
import pytest
import websockets

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
    message { id sender text status attachments { url name size } } errors { code field message retryAfterSeconds } } }"""
MESSAGES = """query($last: Int, $before: String) { messages(last: $last, before: $before) {
    eventCursor pageInfo { hasPreviousPage startCursor }
    edges { cursor node { id sender agentName text status createdAt } } } }"""
EVENTS = """subscription($after: String) { widgetEvents(after: $after) {
    cursor kind typing agentName message { id sender agentName text status } } }"""
MARK_READ = """mutation($id: ID!) { markRead(input: {upToMessageId: $id}) { marked errors { code field } } }"""
TYPING = """mutation($t: Boolean!) { setTyping(input: {typing: $t}) { typing errors { code } } }"""
PROFILE = """mutation($i: UpdateProfileInput!) { updateProfile(input: $i) {
    visitor { visitorId name email conversationId } errors { code field retryAfterSeconds } } }"""


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

    async def connect(self) -> dict:
        headers = {"Origin": self.origin} if self.origin else None
        self.socket = await websockets.connect(
            self.url, subprotocols=["graphql-transport-ws"], additional_headers=headers
        )
        await self.socket.send(json.dumps({"type": "connection_init", "payload": {"token": self.token}}))
        return await self.receive()


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
    sdl = server.app.state.runtime.services  # noqa: F841 - the schema has no field that returns it
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
