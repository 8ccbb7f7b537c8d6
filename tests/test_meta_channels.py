"""WhatsApp and Messenger end to end: Meta's webhooks in, the Graph API out (issue 14).

A real server, a fake Graph API speaking Meta's documented shapes (tests/fakes), and
webhook calls built and signed as Meta sends them. Everything an agent or a customer
would notice: the handshake, refused signatures storing nothing, each inbound kind as
the agent reads it, files copied in, replies reaching the provider in order with their
delivery states, retries, a dead worker, windows, and no secret in any answer or log.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import pytest

from api.delivery.setup import build_worker
from domain.status import Thresholds
from tests.channel_desk import DeliveryWaits
from tests.clock import FakeClock
from tests.fakes.meta_graph import FakeGraphAPI
from tests.fakes.meta_webhooks import (
    list_reply,
    messenger_attachment,
    messenger_delivery,
    messenger_message,
    messenger_read,
    sign,
    signed_post,
    whatsapp_message,
    whatsapp_status,
)
from tests.world import Org, Person, new_org

PHONE_NUMBER_ID = "106540352242922"
PAGE_ID = "1234567890123"
WA_TOKEN = "EAAwhatsappTOKENsecret0001"
PAGE_TOKEN = "EAApageTOKENsecret0002"
APP_SECRET = "app-secret-3a1f9c"
VERIFY_TOKEN = "verify-me-7788"
SECRETS = (WA_TOKEN, PAGE_TOKEN, APP_SECRET, VERIFY_TOKEN)
PUBLIC_URL = "https://inbox.example.com"

CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id } webhookUrl errors { code field message } } }"""
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id deliveries { via status } } errors { code message } } }"""
CONVERSATION = """query($id: ID!) { conversation(id: $id) { customer { name phone }
    messages(last: 50) { edges { node { id kind text sender { kind }
      attachments { url mimeType name }
      deliveries { via status attempts lastError errorCode } } } } } }"""


@dataclass
class Desk(DeliveryWaits):
    org: Org
    agent: Person
    graph: FakeGraphAPI
    clock: FakeClock
    whatsapp: str  # channel ids
    messenger: str
    whatsapp_url: str
    messenger_url: str

    @property
    def server(self):
        return self.org.server

    async def whatsapp_in(self, wa_id: str = "15551234567", name: str = "Carol", **message) -> str:
        """A customer writes on WhatsApp; returns the conversation id."""
        response = await signed_post(
            self.server.http, self.whatsapp_url, whatsapp_message(PHONE_NUMBER_ID, wa_id, name, **message), APP_SECRET
        )
        assert response.status_code == 200, response.text
        return await self.conversation_of(self.whatsapp, wa_id)

    async def messenger_in(self, psid: str = "6789012345", **message) -> str:
        payload = messenger_message(PAGE_ID, psid, **message)
        response = await signed_post(self.server.http, self.messenger_url, payload, APP_SECRET)
        assert response.status_code == 200, response.text
        return await self.conversation_of(self.messenger, psid)

    async def meta_posts(self, url: str, payload: dict) -> None:
        response = await signed_post(self.server.http, url, payload, APP_SECRET)
        assert response.status_code == 200, response.text

    async def conversation_of(self, channel_id: str, external_id: str) -> str:
        doc = await self.server.db.customers.find_one({"channel_id": channel_id, "external_id": external_id})
        assert doc is not None
        return doc["_id"]

    async def reply(self, conversation_id: str, text: str = "Hello from support", **draft) -> dict:
        await self.org.gql(JOIN, {"id": conversation_id}, as_=self.agent)
        data = await self.org.gql(
            SEND, {"i": {"conversationId": conversation_id, "kind": "TEXT", "text": text, **draft}}, as_=self.agent
        )
        assert data["sendMessage"]["errors"] == [], data
        return data["sendMessage"]["message"]

    async def messages(self, conversation_id: str) -> list[dict]:
        data = await self.org.gql(CONVERSATION, {"id": conversation_id}, as_=self.agent)
        # the channel's messages: the history's own lines (the agent joining) aside
        return [e["node"] for e in data["conversation"]["messages"]["edges"] if e["node"]["kind"] != "SYSTEM"]


@pytest.fixture
async def graph():
    async with FakeGraphAPI(tokens=(WA_TOKEN, PAGE_TOKEN)) as fake:
        yield fake


async def open_desk(make_server, graph: FakeGraphAPI, **overrides) -> Desk:
    clock = FakeClock()
    server = await make_server(
        clock=clock,
        meta_graph_url=graph.base_url,
        public_url=PUBLIC_URL,
        delivery_backoff_s=0.05,
        **overrides,
    )
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("Alice")
    await org.add(team, agent)
    whatsapp = await org.gql(
        CONNECT,
        {
            "i": {
                "type": "WHATSAPP",
                "name": "WhatsApp",
                "teamId": team,
                "credentials": {
                    "whatsapp": {
                        "phoneNumberId": PHONE_NUMBER_ID,
                        "accessToken": WA_TOKEN,
                        "appSecret": APP_SECRET,
                        "verifyToken": VERIFY_TOKEN,
                    }
                },
            }
        },
    )
    messenger = await org.gql(
        CONNECT,
        {
            "i": {
                "type": "FACEBOOK",
                "name": "Facebook",
                "teamId": team,
                "credentials": {
                    "messenger": {
                        "pageId": PAGE_ID,
                        "pageAccessToken": PAGE_TOKEN,
                        "appSecret": APP_SECRET,
                        "verifyToken": VERIFY_TOKEN,
                    }
                },
            }
        },
    )
    wa, fb = whatsapp["connectChannel"], messenger["connectChannel"]
    assert wa["errors"] == [] and fb["errors"] == [], (wa, fb)
    assert wa["webhookUrl"] == f"{PUBLIC_URL}/webhooks/whatsapp/{wa['channel']['id']}"
    assert fb["webhookUrl"] == f"{PUBLIC_URL}/webhooks/messenger/{fb['channel']['id']}"
    local = server.url
    return Desk(
        org,
        agent,
        graph,
        clock,
        wa["channel"]["id"],
        fb["channel"]["id"],
        wa["webhookUrl"].replace(PUBLIC_URL, local),
        fb["webhookUrl"].replace(PUBLIC_URL, local),
    )


@pytest.fixture
async def desk(make_server, graph) -> Desk:
    return await open_desk(make_server, graph)


# The handshake and signatures


@pytest.mark.parametrize("platform", ["whatsapp", "messenger"])
async def test_meta_verification_handshake_answers_the_challenge_only_to_the_right_token(desk, platform):
    url = desk.whatsapp_url if platform == "whatsapp" else desk.messenger_url
    http = desk.server.http
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    ok = await http.get(url, params=params)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = await http.get(url, params={**params, "hub.verify_token": "guess"})
    assert wrong.status_code == 403 and "1158201444" not in wrong.text
    other = url.rsplit("/", 1)[0] + "/" + (desk.messenger if platform == "whatsapp" else desk.whatsapp)
    assert (await http.get(other, params=params)).status_code == 404  # another platform's channel


async def test_a_missing_or_wrong_signature_is_refused_and_stores_nothing(desk):
    http = desk.server.http
    payload = whatsapp_message(PHONE_NUMBER_ID, "15550001111", "Mallory", text="forged")
    from tests.fakes.meta_webhooks import encode

    body = encode(payload)
    for headers in (
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json", "X-Hub-Signature-256": sign("not-the-secret", body)},
        {"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, body + b" ")},
        {"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, body)[7:]},
    ):
        response = await http.post(desk.whatsapp_url, content=body, headers=headers)
        assert response.status_code == 401, response.text
    assert await desk.server.db.messages.count_documents({}) == 0
    assert await desk.server.db.customers.count_documents({}) == 0


# WhatsApp inbound


async def test_a_whatsapp_customer_writes_and_a_redelivery_stores_nothing_new(desk):
    payload = whatsapp_message(PHONE_NUMBER_ID, "15551234567", "Carol Danvers", text="Where is my order?")
    await desk.meta_posts(desk.whatsapp_url, payload)
    await desk.meta_posts(desk.whatsapp_url, payload)  # Meta redelivers after any non-200
    cid = await desk.conversation_of(desk.whatsapp, "15551234567")
    data = await desk.org.gql(CONVERSATION, {"id": cid}, as_=desk.agent)
    assert data["conversation"]["customer"] == {"name": "Carol Danvers", "phone": "+15551234567"}
    [message] = [e["node"] for e in data["conversation"]["messages"]["edges"]]
    assert (message["text"], message["sender"]["kind"]) == ("Where is my order?", "CUSTOMER")


async def test_every_whatsapp_message_type_reads_as_the_customer_sent_it(desk):
    graph = desk.graph
    photo = graph.add_media(b"\x89PNG fake image bytes", "image/png")
    invoice = graph.add_media(b"%PDF-1.7 invoice", "application/pdf")
    voice = graph.add_media(b"OggS voice", "audio/ogg")
    sends = [
        {"type": "text", "text": "plain text"},
        {"type": "image", "media_id": photo, "caption": "the broken part"},
        {"type": "document", "media_id": invoice, "filename": "invoice.pdf", "caption": "my invoice"},
        {"type": "audio", "media_id": voice},
        {"type": "location"},
        {"type": "contacts"},
        {"type": "interactive", "interactive": list_reply("opt-2", "Next week", "Any day after Monday")},
        {"type": "button", "button": {"text": "Confirm booking", "payload": "CONFIRM"}},
        {"type": "unsupported"},
    ]
    cid = None
    for message in sends:
        cid = await desk.whatsapp_in(**message)
    assert cid is not None
    messages = await desk.wait_messages(
        cid, lambda ms: len(ms) == len(sends) and all(a["url"] for m in ms for a in m["attachments"])
    )
    texts = [m["text"] or "" for m in messages]
    assert texts[0] == "plain text"
    assert "the broken part" in texts[1] and "my invoice" in texts[2]
    assert "Office" in texts[4] and "52.52" in texts[4]
    assert "Ada Lovelace" in texts[5] and "+15551234567" in texts[5]
    assert "Next week" in texts[6]
    assert "Confirm booking" in texts[7]
    assert "unsupported" in texts[8].lower()  # said, never dropped silently
    image, document, audio = messages[1]["attachments"], messages[2]["attachments"], messages[3]["attachments"]
    assert image[0]["mimeType"] == "image/png" and document[0]["name"] == "invoice.pdf"
    assert audio[0]["mimeType"].startswith("audio/ogg")
    # the files are ours now: an agent downloads them from this server, not from Meta
    downloaded = await desk.server.http.get(document[0]["url"], headers={"Authorization": f"Bearer {desk.agent.token}"})
    assert downloaded.content == b"%PDF-1.7 invoice"


# Sending, statuses, failures


async def test_an_agent_reply_reaches_whatsapp_and_shows_sent_delivered_read(desk):
    cid = await desk.whatsapp_in(text="Hi")
    reply = await desk.reply(cid, "We are on it")
    assert reply["deliveries"] == [{"via": "CHANNEL", "status": "QUEUED"}]
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    [received] = desk.graph.sent_whatsapp()
    assert received.node == PHONE_NUMBER_ID
    assert received.body["to"] == "15551234567" and received.body["text"]["body"] == "We are on it"
    assert received.body["messaging_product"] == "whatsapp"
    assert received.request.headers["authorization"] == f"Bearer {WA_TOKEN}"
    assert sent["attempts"] == 1
    for status in ("delivered", "read"):
        await desk.meta_posts(desk.whatsapp_url, whatsapp_status(PHONE_NUMBER_ID, received.id, status, "15551234567"))
    assert (await desk.delivery(cid, reply["id"]))["status"] == "READ"
    # a late "delivered" (Meta does not promise order) never moves it back
    await desk.meta_posts(desk.whatsapp_url, whatsapp_status(PHONE_NUMBER_ID, received.id, "delivered", "15551234567"))
    assert (await desk.delivery(cid, reply["id"]))["status"] == "READ"


async def test_a_refusal_fails_at_once_with_the_providers_code(desk):
    cid = await desk.whatsapp_in(text="Hi")
    desk.graph.fail_reengagement()
    reply = await desk.reply(cid, "Too late?")
    failed = await desk.wait_delivery(cid, reply["id"], "FAILED")
    assert failed["errorCode"] == "131047" and failed["attempts"] == 1 and failed["lastError"]


async def test_a_failed_status_report_carries_the_providers_error(desk):
    from tests.fakes.meta_webhooks import UNDELIVERABLE

    cid = await desk.whatsapp_in(text="Hi")
    reply = await desk.reply(cid, "Hello?")
    await desk.wait_delivery(cid, reply["id"], "SENT")
    [received] = desk.graph.sent_whatsapp()
    status = whatsapp_status(PHONE_NUMBER_ID, received.id, "failed", "15551234567", errors=[UNDELIVERABLE])
    await desk.meta_posts(desk.whatsapp_url, status)
    failed = await desk.delivery(cid, reply["id"])
    assert (failed["status"], failed["errorCode"]) == ("FAILED", "131026")


async def test_throttling_and_outages_are_retried_honouring_retry_after(desk):
    cid = await desk.whatsapp_in(text="Hi")
    desk.graph.fail_throttled(retry_after=0.3)
    desk.graph.fail_server_error()
    desk.graph.fail_rate_limited()  # 130429, documented as HTTP 400: retried by its code
    reply = await desk.reply(cid, "Eventually")
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 4 and len(desk.graph.sent_whatsapp()) == 1
    attempts = [r.received_at for r in desk.graph.sends()]
    assert attempts[1] - attempts[0] >= 0.3  # Retry-After was a floor


async def test_replies_of_one_conversation_arrive_in_order_while_the_first_is_retried(desk):
    cid = await desk.whatsapp_in(text="Hi")
    desk.graph.fail_server_error(2)
    replies = [await desk.reply(cid, f"Part {i}") for i in range(1, 5)]
    await desk.wait_delivery(cid, replies[-1]["id"], "SENT")
    assert [s.body["text"]["body"] for s in desk.graph.sent_whatsapp()] == ["Part 1", "Part 2", "Part 3", "Part 4"]


async def test_a_dropped_connection_is_sent_again_at_least_once(desk):
    cid = await desk.whatsapp_in(text="Hi")
    desk.graph.drop_next()
    reply = await desk.reply(cid, "Did you get this?")
    sent = await desk.wait_delivery(cid, reply["id"], "SENT")
    assert sent["attempts"] == 2
    assert [r.outcome for r in desk.graph.sends()] == ["dropped", "accepted"]


async def test_a_worker_killed_mid_send_is_taken_over_when_its_lease_ends(desk):
    server = desk.server
    await server.app.state.runtime.delivery.stop()  # this instance's worker is gone
    cid = await desk.whatsapp_in(text="Hi")
    reply = await desk.reply(cid, "Taken over")
    desk.graph.delay_next(1, 5)  # the doomed worker's request hangs...
    doomed = build_worker(server.services, server.app.state.runtime.provider_http, lease_s=0.5)
    attempt = asyncio.create_task(doomed.run_once())
    await desk.graph.wait_until(lambda: len(desk.graph.sends()) == 1)
    attempt.cancel()  # ...and its process dies mid-request
    await asyncio.gather(attempt, return_exceptions=True)
    survivor = build_worker(server.services, server.app.state.runtime.provider_http)
    await asyncio.sleep(0.6)  # the lease runs out
    assert await survivor.run_once() == 1
    sent = await desk.delivery(cid, reply["id"])
    assert sent["status"] == "SENT"
    assert [s.body["text"]["body"] for s in desk.graph.sent_whatsapp()] == ["Taken over"]


async def test_files_and_templates_go_out_in_whatsapps_own_shapes(desk):
    cid = await desk.whatsapp_in(text="Hi")
    await desk.org.gql(JOIN, {"id": cid}, as_=desk.agent)
    upload = await desk.server.http.post(
        "/graphql",
        headers={"Authorization": f"Bearer {desk.agent.token}"},
        data={
            "operations": '{"query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { '
            'message { id } errors { code } } }", "variables": {"i": {"conversationId": "'
            + cid
            + '", "kind": "IMAGE", "attachments": [null]}}}',
            "map": '{"0": ["variables.i.attachments.0"]}',
        },
        files={"0": ("photo.png", b"\x89PNG agent photo", "image/png")},
    )
    assert upload.status_code == 200 and upload.json()["data"]["sendMessage"]["errors"] == [], upload.text
    await desk.graph.wait_until(lambda: len(desk.graph.sent_whatsapp()) == 1)
    [image] = desk.graph.sent_whatsapp()
    link = image.body["image"]["link"]
    assert image.body["type"] == "image" and link.startswith(PUBLIC_URL + "/files/")
    fetched = await desk.server.http.get(link.replace(PUBLIC_URL, ""))  # Meta fetches it without our token
    assert fetched.status_code == 200 and fetched.content == b"\x89PNG agent photo"

    template = await desk.org.gql(
        """mutation($i: CreateMessageTemplateInput!) { createMessageTemplate(input: $i) {
        template { id } errors { code } } }""",
        {
            "i": {
                "name": "Order update",
                "body": "Hi {{name}}, order {{order}} ships today.",
                "channel": "WHATSAPP",
                "whatsappName": "order_update",
                "whatsappLanguage": "de",
            }
        },
    )
    template_id = template["createMessageTemplate"]["template"]["id"]
    await desk.reply(
        cid, None, kind="WHATSAPP_TEMPLATE", templateId=template_id, variables={"order": "A-17", "name": "Carol"}
    )
    await desk.graph.wait_until(lambda: len(desk.graph.sent_whatsapp()) == 2)
    sent = desk.graph.sent_whatsapp()[1].body
    assert sent["type"] == "template" and sent["template"]["name"] == "order_update"
    assert sent["template"]["language"] == {"code": "de"}
    parameters = sent["template"]["components"][0]["parameters"]
    assert [p["text"] for p in parameters] == ["Carol", "A-17"]  # in the order the body names them


# Messenger


async def test_a_messenger_customer_gets_a_name_and_replies_reach_them_with_the_right_window(make_server, graph):
    # conversations stay open for a month here, so only Messenger's own windows apply
    desk = await open_desk(make_server, graph, thresholds=Thresholds(auto_close_after_s=30 * 86400))
    desk.graph.add_profile("6789012345", "Peter", "Parker")
    cid = await desk.messenger_in(text="Is the shop open?")
    deadline = asyncio.get_running_loop().time() + 8
    while (await desk.org.gql(CONVERSATION, {"id": cid}, as_=desk.agent))["conversation"]["customer"][
        "name"
    ] != "Peter Parker":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)

    first = await desk.reply(cid, "Yes, until 6 pm")
    await desk.wait_delivery(cid, first["id"], "SENT")
    desk.clock.advance(2 * 86400)  # two days later: only as a human agent
    second = await desk.reply(cid, "Following up")
    await desk.wait_delivery(cid, second["id"], "SENT")
    bodies = [s.body for s in desk.graph.sent_messenger()]
    assert bodies[0]["messaging_type"] == "RESPONSE" and bodies[0]["recipient"] == {"id": "6789012345"}
    assert (bodies[1]["messaging_type"], bodies[1]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")

    desk.clock.advance(6 * 86400)  # eight days: Messenger takes nothing
    refused = await desk.org.gql(SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": "Hello?"}}, as_=desk.agent)
    assert [e["code"] for e in refused["sendMessage"]["errors"]] == ["MESSENGER_WINDOW_CLOSED"]
    assert len(await desk.messages(cid)) == 3  # nothing stored


async def test_messenger_watermarks_move_replies_to_delivered_then_read_and_echoes_are_ignored(desk):
    cid = await desk.messenger_in(text="Hi")
    replies = [await desk.reply(cid, f"Answer {i}") for i in range(2)]
    for reply in replies:
        await desk.wait_delivery(cid, reply["id"], "SENT")
    now_ms = int(desk.clock().timestamp() * 1000) + 1000
    await desk.meta_posts(desk.messenger_url, messenger_delivery(PAGE_ID, "6789012345", now_ms))
    assert [(await desk.delivery(cid, r["id"]))["status"] for r in replies] == ["DELIVERED", "DELIVERED"]
    await desk.meta_posts(desk.messenger_url, messenger_read(PAGE_ID, "6789012345", now_ms))
    assert [(await desk.delivery(cid, r["id"]))["status"] for r in replies] == ["READ", "READ"]
    echo = messenger_message(PAGE_ID, "6789012345", text="Answer 0", is_echo=True)
    await desk.meta_posts(desk.messenger_url, echo)
    assert len(await desk.messages(cid)) == 3


async def test_a_messenger_attachment_is_copied_into_the_file_store(desk):
    url = desk.graph.add_cdn_file(b"JPEG bytes from the CDN", "image/jpeg")
    cid = await desk.messenger_in(attachments=[messenger_attachment("image", url)])
    [message] = await desk.wait_messages(cid, lambda ms: ms and ms[0]["attachments"][0]["url"])
    [attachment] = message["attachments"]
    assert attachment["url"].startswith("/files/") and attachment["mimeType"].startswith("image/")
    downloaded = await desk.server.http.get(attachment["url"], headers={"Authorization": f"Bearer {desk.agent.token}"})
    assert downloaded.content == b"JPEG bytes from the CDN"


# Secrets


async def test_no_secret_appears_in_any_answer_or_log_line(make_server, graph, caplog):
    caplog.set_level(logging.DEBUG)
    desk = await open_desk(make_server, graph)
    cid = await desk.messenger_in(text="Hi")
    desk.graph.fail_server_error()  # a failure's reason is logged and shown
    reply = await desk.reply(cid, "Hello")
    await desk.wait_delivery(cid, reply["id"], "SENT")
    channels = await desk.org.gql("{ channels { id name type webhookUrl credentials { __typename } } }", as_=desk.agent)
    answer = str(channels) + str(await desk.messages(cid))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in answer and secret not in logged
    stored = str(await desk.server.db.channels.find({}).to_list())
    for secret in SECRETS:
        assert secret not in stored
    assert timedelta(0) <= desk.clock.offset  # the clock was not moved: windows don't interfere
