"""LINE end to end: the signed webhook in, push messages, content and profiles out.

A real server, a fake LINE API speaking LINE's documented shapes (tests/fakes/line_api.py),
and webhook calls built and signed as LINE sends them (tests/fakes/line_webhooks.py).
Everything an agent or a customer would notice: refused signatures storing nothing, the
console's verification, each inbound kind as the agent reads it, files copied in, names
looked up once, follows, replies reaching LINE exactly once (X-Line-Retry-Key) with their
delivery states, retries, refusals, and no secret in any answer, log line or document.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass

import httpx
import pytest

from api.channels import line
from api.channels.line import LineTransport, retry_key
from domain.credentials import LineCredentials
from domain.delivery import Failed, Outgoing, OutgoingFile, Retry, Sent
from domain.enums import MessageKind
from tests.channel_desk import DeliveryWaits
from tests.clock import FakeClock
from tests.fakes import line_webhooks as hooks
from tests.fakes.line_api import FakeLineAPI
from tests.world import Org, Person, new_org

CHANNEL_SECRET = "8c4b1f0e2d3a5b6c7d8e9f0a1b2c3d4e"
ACCESS_TOKEN = "lineAccessTOKENsecret/0123456789abcdefXYZ="
SECRETS = (CHANNEL_SECRET, ACCESS_TOKEN)
PUBLIC_URL = "https://inbox.example.com"
CAROL = "U" + "4af4980629" + "0" * 22

CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id credentials { channelSecret channelAccessToken appSecret } } webhookUrl
    errors { code field message } } }"""
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id deliveries { via status } } errors { code message } } }"""
CONVERSATION = """query($id: ID!) { conversation(id: $id) { customer { name attributes }
    messages(last: 50) { edges { node { id kind text sender { kind }
      attachments { url mimeType name }
      deliveries { via status attempts lastError errorCode } } } } } }"""


@dataclass
class Desk(DeliveryWaits):
    org: Org
    agent: Person
    line: FakeLineAPI
    clock: FakeClock
    channel: str
    url: str  # the webhook, on the local server

    @property
    def server(self):
        return self.org.server

    async def line_posts(self, *events: dict, secret: str = CHANNEL_SECRET) -> httpx.Response:
        response = await hooks.signed_post(self.server.http, self.url, hooks.callback(*events), secret)
        assert response.status_code == 200, response.text
        return response

    async def customer_writes(self, *events: dict, user: str = CAROL) -> str:
        """LINE delivers ``events``; returns the conversation of ``user``."""
        await self.line_posts(*events)
        return await self.conversation_of(user)

    async def conversation_of(self, user: str) -> str:
        doc = await self.server.db.customers.find_one({"channel_id": self.channel, "external_id": user})
        assert doc is not None
        return doc["_id"]

    async def conversation(self, conversation_id: str) -> dict:
        return (await self.org.gql(CONVERSATION, {"id": conversation_id}, as_=self.agent))["conversation"]

    async def messages(self, conversation_id: str) -> list[dict]:
        return [e["node"] for e in (await self.conversation(conversation_id))["messages"]["edges"]]

    async def reply(self, conversation_id: str, text: str | None = "Hello from support", **draft) -> dict:
        await self.org.gql(JOIN, {"id": conversation_id}, as_=self.agent)
        data = await self.org.gql(
            SEND, {"i": {"conversationId": conversation_id, "kind": "TEXT", "text": text, **draft}}, as_=self.agent
        )
        assert data["sendMessage"]["errors"] == [], data
        return data["sendMessage"]["message"]

    async def reply_with_file(self, conversation_id: str, kind: str, name: str, data: bytes, mime: str) -> None:
        await self.org.gql(JOIN, {"id": conversation_id}, as_=self.agent)
        draft = {"conversationId": conversation_id, "kind": kind, "text": "Here you are", "attachments": [None]}
        operations = {"query": SEND, "variables": {"i": draft}}
        upload = await self.server.http.post(
            "/graphql",
            headers={"Authorization": f"Bearer {self.agent.token}"},
            data={"operations": json.dumps(operations), "map": '{"0": ["variables.i.attachments.0"]}'},
            files={"0": (name, data, mime)},
        )
        assert upload.status_code == 200 and upload.json()["data"]["sendMessage"]["errors"] == [], upload.text

    async def wait_conversation(self, conversation_id: str, predicate, timeout_s: float = 8) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(conversation := await self.conversation(conversation_id)):
            assert asyncio.get_running_loop().time() < deadline, conversation
            await asyncio.sleep(0.05)
        return conversation


@pytest.fixture
async def fake_line():
    async with FakeLineAPI(tokens=[ACCESS_TOKEN]) as fake:
        yield fake


async def open_desk(make_server, fake: FakeLineAPI, **overrides) -> Desk:
    clock = FakeClock()
    server = await make_server(
        clock=clock,
        line_api_url=fake.api_url,
        line_data_api_url=fake.data_api_url,
        public_url=PUBLIC_URL,
        delivery_backoff_s=0.05,
        **overrides,
    )
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("Alice")
    await org.add(team, agent)
    credentials = {"line": {"channelSecret": CHANNEL_SECRET, "channelAccessToken": ACCESS_TOKEN}}
    connected = await org.gql(
        CONNECT, {"i": {"type": "LINE", "name": "LINE", "teamId": team, "credentials": credentials}}
    )
    payload = connected["connectChannel"]
    assert payload["errors"] == [], payload
    channel = payload["channel"]
    assert payload["webhookUrl"] == f"{PUBLIC_URL}/webhooks/line/{channel['id']}"
    assert channel["credentials"] == {
        "channelSecret": "…" + CHANNEL_SECRET[-4:],
        "channelAccessToken": "…" + ACCESS_TOKEN[-4:],
        "appSecret": None,
    }
    return Desk(org, agent, fake, clock, channel["id"], payload["webhookUrl"].replace(PUBLIC_URL, server.url))


@pytest.fixture
async def desk(make_server, fake_line) -> Desk:
    return await open_desk(make_server, fake_line)


# Signatures and the console's verification


async def test_a_missing_or_wrong_signature_is_refused_and_stores_nothing(desk):
    http = desk.server.http
    body = hooks.encode(hooks.callback(hooks.text(CAROL, "forged"), hooks.follow(CAROL)))
    good = hooks.sign(CHANNEL_SECRET, body)
    for signature in (
        None,
        "",
        hooks.sign("not-the-secret", body),
        hooks.sign(CHANNEL_SECRET, body + b" "),  # any byte changed
        good.rstrip("="),  # not Base64 of a digest
        good[:-2] + ("A=" if good[-2] != "A" else "B="),
        "sha256=" + good,  # Meta's scheme is not LINE's
    ):
        headers = {"Content-Type": "application/json"} | ({"X-Line-Signature": signature} if signature else {})
        response = await http.post(desk.url, content=body, headers=headers)
        assert response.status_code == 401, (signature, response.text)
    assert await desk.server.db.messages.count_documents({}) == 0
    assert await desk.server.db.customers.count_documents({}) == 0
    # the right signature over the same bytes is taken
    response = await http.post(desk.url, content=body, headers={"X-Line-Signature": good})
    assert response.status_code == 200
    assert await desk.server.db.messages.count_documents({}) == 1


async def test_the_consoles_verification_with_no_events_is_answered_200(desk):
    verification = hooks.callback()
    response = await hooks.signed_post(desk.server.http, desk.url, verification, CHANNEL_SECRET)
    assert response.status_code == 200
    unsigned = await desk.server.http.post(desk.url, content=hooks.encode(verification))
    assert unsigned.status_code == 401
    assert await desk.server.db.customers.count_documents({}) == 0


async def test_unknown_and_unconnected_channels_are_not_found(desk):
    http, team = desk.server.http, await desk.org.team("Other")
    bare = await desk.org.gql(CONNECT, {"i": {"type": "LINE", "name": "No credentials", "teamId": team}})
    bare_id = bare["connectChannel"]["channel"]["id"]
    base = desk.url.rsplit("/", 1)[0]
    for channel_id in ("0" * 24, "not-an-id", bare_id):
        response = await hooks.signed_post(http, f"{base}/{channel_id}", hooks.callback(), CHANNEL_SECRET)
        assert response.status_code == 404, channel_id


async def test_a_body_over_the_limit_is_refused(make_server, fake_line):
    desk = await open_desk(make_server, fake_line, max_body_bytes=2048)
    response = await hooks.signed_post(desk.server.http, desk.url, hooks.callback(hooks.text(CAROL, "x" * 4000)), "s")
    assert response.status_code == 413
    assert await desk.server.db.messages.count_documents({}) == 0


# Inbound


async def test_a_customer_writes_gets_a_name_looked_up_once_and_redeliveries_store_nothing_new(desk):
    desk.line.add_profile(CAROL, "Carol Danvers", language="en")
    first = hooks.text(CAROL, "Where is my order? 注文はどこ")
    cid = await desk.customer_writes(first)
    conversation = await desk.wait_conversation(cid, lambda c: c["customer"]["name"] == "Carol Danvers")
    [message] = [e["node"] for e in conversation["messages"]["edges"]]
    assert (message["text"], message["sender"]["kind"]) == ("Where is my order? 注文はどこ", "CUSTOMER")

    await desk.line_posts(first)  # the same event again
    await desk.line_posts(hooks.redelivered(first))  # and as LINE redelivers it
    await desk.customer_writes(hooks.text(CAROL, "Hello?"))
    texts = [m["text"] for m in await desk.messages(cid)]
    assert texts == ["Where is my order? 注文はどこ", "Hello?"]
    await asyncio.sleep(0.3)  # time for a second look-up, were one scheduled
    [profile] = desk.line.of_kind("profile")  # the name was asked for once
    assert profile.path == f"/api/v2/bot/profile/{CAROL}"
    assert profile.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"


async def test_a_redelivered_event_never_seen_before_is_stored(desk):
    """LINE redelivers what this server failed to take: dropping redeliveries would lose it."""
    cid = await desk.customer_writes(hooks.redelivered(hooks.text(CAROL, "Sent while you were down")))
    assert [m["text"] for m in await desk.messages(cid)] == ["Sent while you were down"]


async def test_every_line_message_kind_reads_as_the_customer_sent_it(desk):
    fake = desk.line
    photo, clip, voice, report = (hooks.message_id() for _ in range(4))
    fake.add_content(photo, b"\xff\xd8\xff JPEG from LINE", "image/jpeg")
    fake.add_content(clip, b"\x00\x00\x00\x18ftypmp42 video", "video/mp4", not_ready=1)  # still being prepared
    fake.add_content(voice, b"M4A audio bytes", "audio/x-m4a")
    fake.add_content(report, b"%PDF-1.7 report", "application/pdf")
    elsewhere = fake.add_external(b"\x89PNG from the sender's server", "image/png", name="shared.png")
    events = [
        hooks.text(CAROL, "plain text"),
        hooks.media(CAROL, "image", photo),
        hooks.media(CAROL, "video", clip),
        hooks.media(CAROL, "audio", voice),
        hooks.file(CAROL, report, "report.pdf", len(b"%PDF-1.7 report")),
        hooks.location(CAROL, 35.65910807942215, 139.70372892916203, title="Tokyo office", address="Shibuya"),
        hooks.sticker(CAROL, keywords=["Happy", "Smile"]),
        hooks.sticker(CAROL, text="See you!"),
        hooks.media(CAROL, "image", hooks.message_id(), external_url=elsewhere),
        hooks.message(CAROL, {"type": "beacon-ish"}),
    ]
    cid = await desk.customer_writes(*events)
    # the video is not ready at first: its copy is tried again 30 s later
    await fake.wait_until(lambda: [r.outcome for r in fake.of_kind("content") if clip in r.path] == ["pending"])
    desk.clock.advance(31)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        messages = await desk.messages(cid)
        if all(a["url"] for m in messages for a in m["attachments"]):
            break
        assert asyncio.get_running_loop().time() < deadline, messages
        await asyncio.sleep(0.05)
    assert len(messages) == len(events)
    texts = [m["text"] or "" for m in messages]
    assert texts[0] == "plain text"
    assert "Tokyo office" in texts[5] and "Shibuya" in texts[5] and "35.659108,139.703729" in texts[5]
    assert texts[6] == "[Sticker: Happy, Smile]" and texts[7] == "[Sticker] See you!"
    assert "beacon-ish" in texts[9]  # said, never dropped silently
    files = {i: messages[i]["attachments"][0] for i in (1, 2, 3, 4, 8)}
    assert files[1]["mimeType"] == "image/jpeg" and files[2]["mimeType"] == "video/mp4"
    assert files[3]["mimeType"] == "audio/x-m4a" and files[4]["name"] == "report.pdf"
    assert files[8]["mimeType"] == "image/png"
    # the files are ours now: an agent downloads them from this server, not from LINE
    auth = {"Authorization": f"Bearer {desk.agent.token}"}
    assert (await desk.server.http.get(files[4]["url"], headers=auth)).content == b"%PDF-1.7 report"
    assert (await desk.server.http.get(files[2]["url"], headers=auth)).content.endswith(b"video")
    content = desk.line.of_kind("content")
    assert {r.path for r in content} == {f"/data/v2/bot/message/{m}/content" for m in (photo, clip, voice, report)}
    assert all(r.headers["authorization"] == f"Bearer {ACCESS_TOKEN}" for r in content)
    assert [r.outcome for r in content if clip in r.path] == ["pending", "accepted"]  # 202, then the file
    [external] = desk.line.of_kind("external")
    assert "authorization" not in external.headers  # the token never leaves for the sender's server


async def test_follow_and_unfollow_are_recorded_on_the_customer(desk):
    cid = await desk.customer_writes(hooks.text(CAROL, "Hi"))
    await desk.line_posts(hooks.unfollow(CAROL))
    assert (await desk.conversation(cid))["customer"]["attributes"]["following"] is False
    await desk.line_posts(hooks.follow(CAROL, unblocked=True))
    attributes = (await desk.conversation(cid))["customer"]["attributes"]
    assert attributes["following"] is True and attributes["followChangedAt"]
    # someone who never wrote is nobody's customer yet; group chats are not conversations here
    group = {"type": "group", "groupId": "C" + "1" * 32, "userId": hooks.user_id()}
    await desk.line_posts(hooks.follow(hooks.user_id()), hooks.text("", "in a group", source=group))
    assert await desk.server.db.customers.count_documents({}) == 1


# Replies


async def test_an_agent_reply_is_pushed_with_a_retry_key_and_shows_sent(desk):
    cid = await desk.customer_writes(hooks.text(CAROL, "Hi"))
    reply = await desk.reply(cid, "We are on it")
    assert reply["deliveries"] == [{"via": "CHANNEL", "status": "QUEUED"}]
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 1 and sent["lastError"] is None
    [push] = desk.line.pushes()
    assert push.to == CAROL and push.messages == [{"type": "text", "text": "We are on it"}]
    headers = push.request.headers
    assert headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert uuid.UUID(headers["x-line-retry-key"]) and headers["x-line-retry-key"] == retry_key(reply["id"])
    stored = await desk.server.db.messages.find_one({"_id": reply["id"]})
    assert push.request_id in str(stored)  # the accepted request's id, for LINE support
    await asyncio.sleep(0.3)
    assert (await desk.delivery(cid, reply["id"]))["status"] == "SENT"  # LINE reports nothing later


async def test_an_image_reply_is_pushed_with_a_signed_link_line_can_fetch_and_a_file_as_a_link(desk):
    cid = await desk.customer_writes(hooks.text(CAROL, "Hi"))
    await desk.reply_with_file(cid, "IMAGE", "photo.png", b"\x89PNG agent photo", "image/png")
    await desk.line.wait_until(lambda: len(desk.line.pushes()) == 1)
    [image] = desk.line.pushes()
    caption, picture = image.messages
    assert caption == {"type": "text", "text": "Here you are"}
    link = picture["originalContentUrl"]
    assert picture == {"type": "image", "originalContentUrl": link, "previewImageUrl": link}
    assert link.startswith(PUBLIC_URL + "/files/")
    fetched = await desk.server.http.get(link.replace(PUBLIC_URL, ""))  # LINE fetches it without our token
    assert fetched.status_code == 200 and fetched.content == b"\x89PNG agent photo"

    await desk.reply_with_file(cid, "ATTACHMENT", "terms.pdf", b"%PDF terms", "application/pdf")
    await desk.line.wait_until(lambda: len(desk.line.pushes()) == 2)
    [text] = desk.line.pushes()[1].messages
    assert text["type"] == "text" and text["text"].startswith("Here you are\n\nterms.pdf: " + PUBLIC_URL + "/files/")
    link = text["text"].rsplit(" ", 1)[1]
    assert (await desk.server.http.get(link.replace(PUBLIC_URL, ""))).content == b"%PDF terms"


async def test_a_lost_answer_is_retried_with_the_same_key_and_the_customer_gets_it_exactly_once(desk):
    cid = await desk.customer_writes(hooks.text(CAROL, "Hi"))
    desk.line.drop_next()  # LINE takes the push, and the answer never arrives
    reply = await desk.reply(cid, "Did you get this?")
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 2
    first, second = desk.line.push_requests()
    assert (first.outcome, second.outcome, second.status) == ("dropped", "conflict", 409)
    assert first.retry_key == second.retry_key == retry_key(reply["id"])
    assert [p.messages for p in desk.line.pushes()] == [[{"type": "text", "text": "Did you get this?"}]]


async def test_rate_limits_and_outages_are_retried_and_refusals_fail_with_lines_words(desk):
    cid = await desk.customer_writes(hooks.text(CAROL, "Hi"))
    desk.line.fail_rate_limited(retry_after=0.3)
    desk.line.fail_server_error()
    reply = await desk.reply(cid, "Eventually")
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 3 and len(desk.line.pushes()) == 1
    attempts = [r.received_at for r in desk.line.push_requests()]
    assert attempts[1] - attempts[0] >= 0.3  # Retry-After was a floor
    assert [r.status for r in desk.line.push_requests()] == [429, 500, 200]

    details = [{"message": "May not be empty", "property": "messages[0].text"}]
    desk.line.fail_bad_request(message="The request body has 1 error(s)", details=details)
    refused = await desk.reply(cid, "Refused")
    failed = await desk.wait_delivery(cid, refused["id"], "FAILED")
    assert failed["attempts"] == 1 and failed["errorCode"] == "400"
    assert failed["lastError"] == "The request body has 1 error(s) — messages[0].text: May not be empty"


async def test_no_secret_appears_in_any_answer_log_line_or_document(make_server, fake_line, caplog):
    caplog.set_level(logging.DEBUG)
    desk = await open_desk(make_server, fake_line)
    desk.line.add_profile(CAROL, "Carol")
    cid = await desk.customer_writes(hooks.text(CAROL, "Hi"))
    desk.line.fail_next(1, 401, message=f"Authentication failed: {ACCESS_TOKEN} is not a valid token")
    refused = await desk.reply(cid, "Hello")
    await desk.wait_delivery(cid, refused["id"], "FAILED")
    channels = await desk.org.gql("{ channels { id name type webhookUrl credentials { channelSecret } } }")
    answer = str(channels) + str(await desk.messages(cid))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    stored = str(await desk.server.db.channels.find({}).to_list()) + str(
        await desk.server.db.messages.find({}).to_list()
    )
    for secret in SECRETS:
        assert secret not in answer and secret not in logged and secret not in stored


# The module on its own: several pushes per message, parsing hostile input


def outgoing(kind: MessageKind, text: str | None = None, files: int = 0, message_id: str = "64f1c0ffee") -> Outgoing:
    links = tuple(OutgoingFile(f"{PUBLIC_URL}/files/{i}?s=sig", "image/jpeg", f"p{i}.jpg") for i in range(files))
    return Outgoing(message_id=message_id, kind=kind, recipient=CAROL, text=text, files=links)


async def test_a_message_of_more_than_five_parts_goes_as_several_pushes_each_exactly_once(fake_line):
    credentials = LineCredentials(CHANNEL_SECRET, ACCESS_TOKEN)
    async with httpx.AsyncClient() as http:
        transport = LineTransport(http, fake_line.api_url, fake_line.data_api_url)
        message = outgoing(MessageKind.IMAGE, "Seven photos", files=7)  # a text and 7 images: 5 + 3
        fake_line.drop_next(1, accepted=True)  # the first push went out, its answer was lost
        assert isinstance(await transport.send(credentials, message), Retry)
        fake_line.fail_server_error()  # the second push fails once
        outcome = await transport.send(credentials, message)  # first: 409, second: 500
        assert isinstance(outcome, Retry)
        outcome = await transport.send(credentials, message)  # first: 409, second: taken
        assert isinstance(outcome, Sent) and outcome.provider_message_id == fake_line.pushes()[0].request_id
    pushes = fake_line.pushes()
    assert [len(p.messages) for p in pushes] == [5, 3]
    assert [p.retry_key for p in pushes] == [retry_key(message.message_id, 0), retry_key(message.message_id, 1)]
    assert [r.outcome for r in fake_line.push_requests()] == ["dropped", "conflict", "injected", "conflict", "accepted"]


async def test_what_line_cannot_take_is_refused_before_a_request(fake_line):
    credentials = LineCredentials(CHANNEL_SECRET, ACCESS_TOKEN)
    async with httpx.AsyncClient() as http:
        transport = LineTransport(http, fake_line.api_url, fake_line.data_api_url)
        template = await transport.send(credentials, outgoing(MessageKind.WHATSAPP_TEMPLATE))
        plain = Outgoing("m1", MessageKind.IMAGE, CAROL, None, (OutgoingFile("http://localhost:8000/files/1", None),))
        insecure = await transport.send(credentials, plain)
        long = await transport.send(credentials, outgoing(MessageKind.TEXT, "😀" * 3000))  # 6,000 UTF-16 units
    assert isinstance(template, Failed) and isinstance(insecure, Failed) and "HTTPS" in insecure.message
    assert isinstance(long, Sent)
    [push] = fake_line.pushes()
    assert [len(m["text"]) for m in push.messages] == [2500, 500]


def test_parse_takes_nothing_it_should_not():
    assert line.parse(None).messages == [] and line.parse({"events": "x"}).messages == []
    weird = [
        {"type": "message", "source": {"type": "user"}, "message": {"type": "text", "text": "no user"}},
        {"type": "message", "source": {"type": "user", "userId": "U../../x"}, "message": {"type": "text"}},
        {"type": "message", "source": {"type": "room", "roomId": "R1", "userId": CAROL}, "message": {"type": "text"}},
        {"type": "message", "source": {"type": "user", "userId": CAROL}, "message": "not an object"},
        {"type": "postback", "source": {"type": "user", "userId": CAROL}, "postback": {"data": "x"}},
        hooks.media(CAROL, "image", "../../etc/passwd"),
        hooks.media(CAROL, "video", "1", external_url="file:///etc/passwd"),
    ]
    parsed = line.parse(hooks.callback(*weird))
    assert [m.text for m in parsed.messages] == [
        "[LINE image that could not be received]",
        "[LINE video that could not be received]",
    ]
    assert all(not m.attachments for m in parsed.messages) and parsed.follows == []


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body():
    body = hooks.encode(hooks.callback(hooks.text(CAROL, "héllo")))
    assert line.signature_matches(CHANNEL_SECRET, body, hooks.sign(CHANNEL_SECRET, body))
    assert not line.signature_matches("", body, hooks.sign("", body))  # an empty secret verifies nothing
    assert not line.signature_matches(CHANNEL_SECRET, body, None)
    assert not line.signature_matches(CHANNEL_SECRET, body, " " + hooks.sign(CHANNEL_SECRET, body))
