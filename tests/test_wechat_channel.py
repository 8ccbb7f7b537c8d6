"""WeChat end to end: XML pushes in, customer service messages and temporary media out.

A real server, a fake WeChat API speaking the documented shapes (tests/fakes/wechat_api.py),
and pushes built and signed as WeChat sends them (tests/fakes/wechat_webhooks.py). What an
agent or a customer would notice: the server verification, refused signatures and hostile
XML storing nothing, each message kind as the agent reads it, files copied in and uploaded
out, retried pushes stored once, follows, replies with their delivery states, the access
token refreshed once when WeChat refuses it and shared by two instances, the 48-hour window,
and no secret or token in any answer, log line or stored document.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

import pytest

from api.channels import wechat
from api.delivery.setup import build_worker, wechat_tokens
from domain.credentials import WeChatCredentials
from domain.status import Thresholds
from tests.clock import FakeClock
from tests.fakes import wechat_webhooks as push
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.world import Org, Person, new_org

APP_ID = "wx5f2b7c9e1a3d4b6c"
APP_SECRET = "3c9a6f0e8b7d4c2a1f5e9d8c7b6a5f4e"
TOKEN = "serverToken7Kq2Ws9Lx"
SECRETS = (APP_SECRET, TOKEN)
OPENID = "oV5Xq1BzK9mYp3Lr7Tn2Wc4Hd6Fs"
PUBLIC_URL = "https://inbox.example.com"
HOUR = 3600

CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id credentials { appId appSecret token } } webhookUrl errors { code field message } } }"""
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id deliveries { via status } } errors { code message } } }"""
CONVERSATION = """query($id: ID!) { conversation(id: $id) { customer { name attributes }
    messages(last: 50) { edges { node { id kind text sender { kind }
      attachments { url mimeType name }
      deliveries { via status attempts lastError errorCode } } } } } }"""


@dataclass
class Desk:
    org: Org
    agent: Person
    api: FakeWeChatAPI
    clock: FakeClock
    channel: str
    url: str  # the webhook URL on the local server

    @property
    def server(self):
        return self.org.server

    async def wechat_posts(self, body: bytes) -> None:
        response = await push.push(self.server.http, self.url, TOKEN, body)
        assert (response.status_code, response.text) == (200, "success"), response.text

    async def customer_writes(self, body: bytes | None = None, openid: str = OPENID) -> str:
        """A follower writes (a text by default); returns the conversation id."""
        await self.wechat_posts(body or push.text(openid, "你好, is my order on its way?"))
        return await self.conversation_of(openid)

    async def conversation_of(self, openid: str) -> str:
        doc = await self.server.db.customers.find_one({"channel_id": self.channel, "external_id": openid})
        assert doc is not None
        return doc["_id"]

    async def send(self, conversation_id: str, text: str = "Hello from support", **draft) -> dict:
        await self.org.gql(JOIN, {"id": conversation_id}, as_=self.agent)
        variables = {"i": {"conversationId": conversation_id, "kind": "TEXT", "text": text, **draft}}
        return (await self.org.gql(SEND, variables, as_=self.agent))["sendMessage"]

    async def reply(self, conversation_id: str, text: str = "Hello from support", **draft) -> dict:
        sent = await self.send(conversation_id, text, **draft)
        assert sent["errors"] == [], sent
        return sent["message"]

    async def conversation(self, conversation_id: str) -> dict:
        return (await self.org.gql(CONVERSATION, {"id": conversation_id}, as_=self.agent))["conversation"]

    async def messages(self, conversation_id: str) -> list[dict]:
        return [e["node"] for e in (await self.conversation(conversation_id))["messages"]["edges"]]

    async def delivery(self, conversation_id: str, message_id: str) -> dict:
        [message] = [m for m in await self.messages(conversation_id) if m["id"] == message_id]
        [delivery] = message["deliveries"]
        return delivery

    async def wait_delivery(self, conversation_id: str, message_id: str, status: str, timeout_s: float = 8) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (delivery := await self.delivery(conversation_id, message_id))["status"] != status:
            assert asyncio.get_running_loop().time() < deadline, delivery
            await asyncio.sleep(0.05)
        return delivery

    async def wait_messages(self, conversation_id: str, predicate, timeout_s: float = 8) -> list[dict]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(messages := await self.messages(conversation_id)):
            assert asyncio.get_running_loop().time() < deadline, messages
            await asyncio.sleep(0.05)
        return messages

    async def upload_image(self, conversation_id: str, data: bytes, name: str = "photo.png") -> None:
        await self.org.gql(JOIN, {"id": conversation_id}, as_=self.agent)
        response = await self.server.http.post(
            "/graphql",
            headers={"Authorization": f"Bearer {self.agent.token}"},
            data={
                "operations": '{"query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { '
                'message { id } errors { code } } }", "variables": {"i": {"conversationId": "'
                + conversation_id
                + '", "kind": "IMAGE", "text": "Here it is", "attachments": [null]}}}',
                "map": '{"0": ["variables.i.attachments.0"]}',
            },
            files={"0": (name, data, "image/png")},
        )
        assert response.status_code == 200 and response.json()["data"]["sendMessage"]["errors"] == [], response.text


@pytest.fixture
async def api():
    async with FakeWeChatAPI(apps={APP_ID: APP_SECRET}) as fake:
        yield fake


def credentials_input(app_secret: str = APP_SECRET) -> dict:
    return {"wechat": {"appId": APP_ID, "appSecret": app_secret, "token": TOKEN}}


async def open_desk(make_server, api: FakeWeChatAPI, app_secret: str = APP_SECRET, **overrides) -> Desk:
    clock = overrides.pop("clock", None) or FakeClock()
    server = await make_server(
        clock=clock,
        wechat_api_url=api.base_url,
        public_url=PUBLIC_URL,
        delivery_backoff_s=0.05,
        # conversations stay open for a month: only WeChat's own 48-hour window applies
        thresholds=Thresholds(auto_close_after_s=30 * 86400),
        **overrides,
    )
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("Alice")
    await org.add(team, agent)
    data = await org.gql(
        CONNECT,
        {"i": {"type": "WECHAT", "name": "WeChat", "teamId": team, "credentials": credentials_input(app_secret)}},
    )
    connected = data["connectChannel"]
    assert connected["errors"] == [], connected
    channel_id = connected["channel"]["id"]
    assert connected["webhookUrl"] == f"{PUBLIC_URL}/webhooks/wechat/{channel_id}"
    hints = connected["channel"]["credentials"]
    assert hints == {"appId": APP_ID, "appSecret": "…" + app_secret[-4:], "token": "…" + TOKEN[-4:]}
    return Desk(org, agent, api, clock, channel_id, connected["webhookUrl"].replace(PUBLIC_URL, server.url))


@pytest.fixture
async def desk(make_server, api) -> Desk:
    return await open_desk(make_server, api)


# Verification and signatures


async def test_the_server_verification_answers_echostr_only_to_a_right_signature(desk):
    http = desk.server.http
    ok = await http.get(desk.url, params={**push.signed_params(TOKEN), "echostr": "5837397749340012"})
    assert (ok.status_code, ok.text) == (200, "5837397749340012")
    assert ok.headers["content-type"].startswith("text/plain")
    for params in (
        {**push.signed_params("another-token"), "echostr": "5837397749340012"},
        {**push.signed_params(TOKEN), "signature": "0" * 40, "echostr": "5837397749340012"},
        {"echostr": "5837397749340012"},
    ):
        wrong = await http.get(desk.url, params=params)
        assert wrong.status_code == 403 and "5837397749340012" not in wrong.text
    unknown = desk.url.rsplit("/", 1)[0] + "/" + "0" * 24
    assert (await http.get(unknown, params={**push.signed_params(TOKEN), "echostr": "1"})).status_code == 404


async def test_a_push_with_a_missing_or_wrong_signature_is_refused_and_stores_nothing(desk):
    http, body = desk.server.http, push.text(OPENID, "forged")
    for params in (
        {},
        push.signed_params("not-the-token"),
        {**push.signed_params(TOKEN), "nonce": "changed"},
        {**push.signed_params(TOKEN), "signature": "zz" * 20},
    ):
        response = await http.post(desk.url, params=params, content=body, headers={"Content-Type": "text/xml"})
        assert response.status_code == 403, response.text
    assert await desk.server.db.messages.count_documents({}) == 0
    assert await desk.server.db.customers.count_documents({}) == 0


async def test_hostile_malformed_encrypted_or_oversized_xml_is_refused_and_stores_nothing(make_server, api):
    desk = await open_desk(make_server, api, max_body_bytes=16 * 1024)
    http = desk.server.http
    for body in (
        push.billion_laughs(OPENID),
        push.external_entity(OPENID),
        push.external_entity(OPENID, "http://169.254.169.254/latest/meta-data/"),
        push.encrypted(OPENID),
        b"<xml><ToUserName>unclosed",
        b'{"not": "xml"}',
    ):
        response = await push.push(http, desk.url, TOKEN, body)
        assert response.status_code == 400, (body[:60], response.text)
    large = push.text(OPENID, "x" * 20_000)
    assert (await push.push(http, desk.url, TOKEN, large)).status_code == 413
    assert await desk.server.db.messages.count_documents({}) == 0
    assert await desk.server.db.customers.count_documents({}) == 0
    assert [r for r in api.requests if r.kind != "token"] == []  # nothing was fetched on the parser's say


# Inbound


async def test_every_message_kind_reads_as_the_customer_sent_it_and_media_is_copied_in(desk):
    photo = desk.api.add_media(b"\xff\xd8\xff JPEG from WeChat", "image/jpeg")
    voice = desk.api.add_media(b"#!AMR voice", "audio/amr")
    clip = desk.api.add_media(b"\x00\x00\x00 ftypmp4 video", "video/mp4", video=True)
    bodies = [
        push.text(OPENID, "纯文本 plain text"),
        push.image(OPENID, photo),
        push.voice(OPENID, voice, recognition="我想退货"),
        push.video(OPENID, clip),
        push.location(OPENID, 23.134521, 113.358803, "广州市天河区"),
        push.link(OPENID, "Order 1234", "My order page", "https://shop.example.com/orders/1234"),
        push.message(OPENID, "miniprogrampage", Title="A mini program"),
    ]
    for body in bodies:
        await desk.wechat_posts(body)
    cid = await desk.conversation_of(OPENID)
    messages = await desk.wait_messages(
        cid, lambda ms: len(ms) == len(bodies) and all(a["url"] for m in ms for a in m["attachments"])
    )
    assert all(m["sender"]["kind"] == "CUSTOMER" for m in messages)
    texts = [m["text"] or "" for m in messages]
    assert texts[0] == "纯文本 plain text"
    assert texts[2] == "我想退货"  # WeChat's speech recognition, beside the recording
    assert "广州市天河区" in texts[4] and "23.134521,113.358803" in texts[4]
    assert "Order 1234" in texts[5] and "https://shop.example.com/orders/1234" in texts[5]
    assert "miniprogrampage" in texts[6]  # said, never dropped silently
    image, audio, video = (messages[i]["attachments"] for i in (1, 2, 3))
    assert image[0]["mimeType"] == "image/jpeg" and audio[0]["mimeType"] == "audio/amr"
    assert video[0]["mimeType"] == "video/mp4"
    # the files are ours now: an agent downloads them from this server, not from WeChat
    auth = {"Authorization": f"Bearer {desk.agent.token}"}
    for attachment, data in ((image, b"\xff\xd8\xff JPEG from WeChat"), (video, b"\x00\x00\x00 ftypmp4 video")):
        assert attachment[0]["url"].startswith("/files/")
        assert (await desk.server.http.get(attachment[0]["url"], headers=auth)).content == data
    # fetched by MediaId, with one token for all of them
    assert {r.query["media_id"] for r in desk.api.requests if r.kind == "media"} == {photo, voice, clip}
    assert desk.api.refreshes == 1


async def test_a_retried_push_stores_nothing_new(desk):
    body = push.text(OPENID, "Where is my order?", msg_id=6054768590064713728)
    for _ in range(3):  # WeChat retries three times when it gets no answer within five seconds
        await desk.wechat_posts(body)
    cid = await desk.conversation_of(OPENID)
    assert [m["text"] for m in await desk.messages(cid)] == ["Where is my order?"]


async def test_media_wechat_no_longer_has_is_noted_not_retried_forever(desk):
    cid = await desk.customer_writes(push.image(OPENID, "expired-media-id-older-than-three-days"))
    [message] = await desk.wait_messages(cid, lambda ms: ms and ms[0]["attachments"][0]["name"])
    assert message["attachments"][0]["name"] == "File not received"


async def test_subscribe_and_unsubscribe_are_recorded_on_the_customer(desk):
    await desk.wechat_posts(push.event("oSomeoneWhoNeverWrote", "subscribe"))
    assert await desk.server.db.customers.count_documents({}) == 0  # not a customer yet
    cid = await desk.customer_writes()
    await desk.wechat_posts(push.event(OPENID, "unsubscribe"))
    assert (await desk.conversation(cid))["customer"]["attributes"]["following"] is False
    await desk.wechat_posts(push.event(OPENID, "subscribe", "qrscene_123123"))
    customer = (await desk.conversation(cid))["customer"]
    assert customer["attributes"]["following"] is True and customer["name"] is None  # names stay unknown
    await desk.wechat_posts(push.event(OPENID, "CLICK", "V1001_TODAY_MUSIC"))  # other events: nothing
    assert len(await desk.messages(cid)) == 1


# Outbound


async def test_a_reply_reaches_wechat_as_a_customer_service_message_and_shows_sent(desk):
    cid = await desk.customer_writes()
    reply = await desk.reply(cid, "您好! We are on it.")
    assert reply["deliveries"] == [{"via": "CHANNEL", "status": "QUEUED"}]
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 1 and sent["lastError"] is None
    [received] = desk.api.sent()
    assert received.body == {"touser": OPENID, "msgtype": "text", "text": {"content": "您好! We are on it."}}
    assert b"\\u" not in received.request.raw_body  # UTF-8 as WeChat wants it, not \\uXXXX escapes
    assert received.request.query["access_token"] == desk.api.issued[0]


async def test_an_image_reply_is_uploaded_then_sent_by_media_id(desk):
    cid = await desk.customer_writes()
    await desk.upload_image(cid, b"\x89PNG agent photo")
    await desk.api.wait_until(lambda: len(desk.api.sent()) == 2)
    caption, image = (s.body for s in desk.api.sent())
    assert caption == {"touser": OPENID, "msgtype": "text", "text": {"content": "Here it is"}}
    [(media_id, uploaded)] = desk.api.uploads
    assert image == {"touser": OPENID, "msgtype": "image", "image": {"media_id": media_id}}
    assert uploaded.data == b"\x89PNG agent photo" and uploaded.mime_type == "image/png"
    # read from our own file store, never fetched back over HTTP from the public URL
    assert not any(PUBLIC_URL in r.raw_body.decode("latin-1") for r in desk.api.requests)


async def test_a_refused_token_is_refreshed_once_and_the_send_retried(desk):
    cid = await desk.customer_writes()
    first = await desk.reply(cid, "First")
    await desk.wait_delivery(cid, first["id"], "SENT")
    desk.api.expire_all(40001)  # say, another system fetched a token for this AppID
    second = await desk.reply(cid, "Second")
    sent = await desk.wait_delivery(cid, second["id"], "SENT")
    assert sent["attempts"] == 1  # the refresh happened within the attempt
    assert desk.api.refreshes == 2
    assert [r.errcode for r in desk.api.sends()] == [0, 40001, 0]
    desk.api.expire_all(42001)  # expired instead of invalid: the same
    third = await desk.reply(cid, "Third")
    await desk.wait_delivery(cid, third["id"], "SENT")
    assert desk.api.refreshes == 3
    stored = await desk.server.db.provider_tokens.find({}).to_list()
    assert len(stored) == 1 and desk.api.issued[-1] not in str(stored)  # kept sealed


async def test_two_instances_share_one_token(make_server, api):
    desk = await open_desk(make_server, api)
    other = await make_server(clock=desk.clock, wechat_api_url=api.base_url, database=desk.server.settings.database)
    api.delay_tokens(0.3)  # the two fetches would overlap, if both instances fetched
    credentials = WeChatCredentials(APP_ID, APP_SECRET, TOKEN)
    tokens = [wechat_tokens(server.services, server.app.state.runtime.provider_http) for server in (desk.server, other)]
    first, second = await asyncio.gather(*(t.get(credentials) for t in tokens))
    assert first == second == api.issued[0] and api.refreshes == 1
    # and the worker of either instance sends with it
    api.delay_tokens(0)
    cid = await desk.customer_writes()
    replies = [await desk.reply(cid, f"Part {i}") for i in range(3)]
    await desk.wait_delivery(cid, replies[-1]["id"], "SENT")
    assert {s.request.query["access_token"] for s in api.sent()} == {first}
    assert api.refreshes == 1
    # when WeChat refuses it, one instance refreshes and the other uses the new one
    api.expire_all()
    await asyncio.gather(*(t.invalidate(credentials, first) for t in tokens))
    api.delay_tokens(0.3)
    renewed = await asyncio.gather(*(t.get(credentials) for t in tokens))
    assert renewed == [api.issued[1]] * 2 and api.refreshes == 2


async def test_a_token_is_refreshed_ahead_of_its_expiry(desk):
    cid = await desk.customer_writes()
    await desk.wait_delivery(cid, (await desk.reply(cid, "One"))["id"], "SENT")
    desk.clock.advance(7200 - 4 * 60)  # within five minutes of the token's expiry
    await desk.wait_delivery(cid, (await desk.reply(cid, "Two"))["id"], "SENT")
    assert desk.api.refreshes == 2
    assert [r.errcode for r in desk.api.sends()] == [0, 0]  # no send met a refused token


async def test_the_48_hour_window_is_checked_before_storing_and_before_sending(desk):
    cid = await desk.customer_writes()
    desk.clock.advance(47 * HOUR)
    await desk.wait_delivery(cid, (await desk.reply(cid, "Still in time"))["id"], "SENT")
    # a reply queued in time but sent after the window closed fails, without asking WeChat
    server = desk.server
    await server.app.state.runtime.delivery.stop()
    late = await desk.reply(cid, "Just in time?")
    desk.clock.advance(2 * HOUR)
    assert await build_worker(server.services, server.app.state.runtime.provider_http).run_once() == 1
    failed = await desk.delivery(cid, late["id"])
    assert (failed["status"], failed["errorCode"]) == ("FAILED", "WECHAT_WINDOW_CLOSED")
    assert len(desk.api.sends()) == 1
    # past the window, sendMessage refuses and stores nothing
    refused = await desk.send(cid, "Hello?")
    assert [e["code"] for e in refused["errors"]] == ["WECHAT_WINDOW_CLOSED"] and refused["message"] is None
    assert len(await desk.messages(cid)) == 3


async def test_wechat_45015_fails_the_delivery_as_a_closed_window(desk):
    cid = await desk.customer_writes()
    desk.api.close_window(OPENID)  # e.g. the follower unsubscribed in between
    reply = await desk.reply(cid, "Are you there?")
    failed = await desk.wait_delivery(cid, reply["id"], "FAILED")
    assert failed["errorCode"] == "WECHAT_WINDOW_CLOSED" and failed["attempts"] == 1
    assert "45015" in failed["lastError"]


async def test_system_busy_is_retried_and_other_codes_fail_with_wechats_words(desk):
    cid = await desk.customer_writes()
    desk.api.busy(2)
    reply = await desk.reply(cid, "Eventually")
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 3 and len(desk.api.sent()) == 1
    desk.api.fail_next(1, 45047, "out of response count limit")
    limited = await desk.reply(cid, "One too many")
    failed = await desk.wait_delivery(cid, limited["id"], "FAILED")
    assert failed["errorCode"] == "45047" and "out of response count limit" in failed["lastError"]
    assert failed["attempts"] == 1


async def test_a_wrong_app_secret_fails_the_delivery_with_wechats_reason(make_server, api):
    desk = await open_desk(make_server, api, app_secret="0" * 32)
    cid = await desk.customer_writes()
    reply = await desk.reply(cid, "Hello")
    failed = await desk.wait_delivery(cid, reply["id"], "FAILED")
    assert failed["errorCode"] == "40125" and "invalid appsecret" in failed["lastError"]
    assert failed["attempts"] == 1 and api.sends() == []


# Secrets


async def test_no_secret_or_access_token_appears_in_any_answer_log_line_or_document(make_server, api, caplog):
    caplog.set_level(logging.DEBUG)
    desk = await open_desk(make_server, api)
    photo = api.add_media(b"\xff\xd8\xff photo", "image/jpeg")
    cid = await desk.customer_writes(push.image(OPENID, photo))
    await desk.wait_messages(cid, lambda ms: ms and ms[0]["attachments"][0]["url"])
    api.busy()  # a failure's reason is logged and shown
    api.expire_all()
    reply = await desk.reply(cid, "Hello")
    await desk.wait_delivery(cid, reply["id"], "SENT")
    await push.push(desk.server.http, desk.url, TOKEN, push.billion_laughs(OPENID))  # logged as refused
    channels = await desk.org.gql("{ channels { id name type webhookUrl credentials { appId appSecret token } } }")
    answer = str(channels) + str(await desk.messages(cid))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    db = desk.server.db
    stored = "".join(
        [str(await db[name].find({}).to_list()) for name in ("channels", "provider_tokens", "messages", "events")]
    )
    assert len(api.issued) == 2
    for secret in (*SECRETS, *api.issued):
        assert secret not in answer and secret not in logged and secret not in stored


# The module's pure parts


def test_signature_is_the_sha1_of_the_sorted_token_timestamp_and_nonce():
    expected = hashlib.sha1("".join(sorted(["token", "1409304348", "xxxxxx"])).encode()).hexdigest()
    assert wechat.signature_matches("token", expected, "1409304348", "xxxxxx")
    assert wechat.signature_matches("token", expected.upper(), "1409304348", "xxxxxx")
    assert not wechat.signature_matches("token", expected, "1409304349", "xxxxxx")
    assert not wechat.signature_matches("", expected, "1409304348", "xxxxxx")
    assert not wechat.signature_matches("token", None, "1409304348", "xxxxxx")
    assert not wechat.signature_matches("token", "not-hex", "1409304348", "xxxxxx")


@pytest.mark.parametrize(
    "body",
    [push.billion_laughs(OPENID), push.external_entity(OPENID), b"", b"<xml>", b"<other/>", push.encrypted(OPENID)],
)
def test_parse_refuses_what_is_not_a_plain_wechat_document(body):
    with pytest.raises(wechat.WeChatXMLError):
        wechat.parse(body)


def test_parse_skips_a_push_without_a_sender_and_never_drops_a_message():
    assert wechat.parse(push.xml({"ToUserName": "gh_x", "MsgType": "text", "Content": "who?"})).messages == []
    [empty] = wechat.parse(push.message(OPENID, "text")).messages
    assert empty.text == "[Empty WeChat text message]"
    [no_media] = wechat.parse(push.message(OPENID, "image")).messages
    assert no_media.text == "[WeChat image that could not be received]" and no_media.attachments == ()


async def test_wechat_credentials_are_checked_before_anything_is_stored(make_server):
    server = await make_server()
    org = await new_org(server)
    team = await org.team("Support")
    for type_, credentials, field in (
        ("WECHAT", {"wechat": {"appId": "wx 12", "appSecret": APP_SECRET, "token": TOKEN}}, "credentials.appId"),
        ("WECHAT", {"wechat": {"appId": APP_ID, "appSecret": " ", "token": TOKEN}}, "credentials.appSecret"),
        ("FACEBOOK", credentials_input(), "credentials"),  # WeChat credentials on another type
        ("WECHAT", {**credentials_input(), "messenger": None}, None),  # one member set: fine
    ):
        value = {"type": type_, "name": "WeChat", "teamId": team, "credentials": credentials}
        errors = (await org.gql(CONNECT, {"i": value}))["connectChannel"]["errors"]
        assert [(e["code"], e["field"]) for e in errors] == ([("INVALID_INPUT", field)] if field else [])
    assert await server.db.channels.count_documents({}) == 1
