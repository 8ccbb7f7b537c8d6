"""Email fallback (issue 6): replies to offline web-widget customers go out by email.

A real server, a real SMTP server (aiosmtpd in this event loop) and the
delivery worker that runs inside the server, plus stand-alone workers where a
test plays a second or a dead one.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.delivery.setup import build_worker
from api.mailer import DeliveryError, Letter, compose
from domain.entities import Attachment, Delivery
from domain.enums import DeliveryStatus, DeliveryVia, MessageKind
from tests.smtp_server import SmtpServer
from tests.world import Org, Person, new_org

JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id text deliveries { via status attempts } } errors { code message } } }"""
MESSAGES = """query($id: ID!) { conversation(id: $id) { emailFallbackActive messages(last: 50) {
    edges { node { id kind text attachments { url } deliveries { via status attempts lastError } } } } } }"""
PUBLIC_URL = "https://inbox.example.com"
CUSTOMER_EMAIL = "carol@example.com"


@pytest.fixture
async def smtp():
    server = await SmtpServer().start()
    yield server
    await server.stop()


def email_settings(smtp: SmtpServer, **overrides) -> dict:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_timeout_s": 2,
        "email_backoff_s": 0.05,
        "email_max_attempts": 3,
        "smtp_from": "support@acme.example",
        "public_url": PUBLIC_URL,
        **overrides,
    }


async def start(make_server, smtp: SmtpServer, **overrides):
    """A server whose delivery worker speaks to ``smtp``."""
    return await make_server(**email_settings(smtp, **overrides))


def Outbox(services, **options):  # noqa: N802 - reads like the worker it builds
    """Another delivery worker on the same database (a second instance's, or one about to die)."""
    return build_worker(services, httpx.AsyncClient(), **options)


@dataclass
class Chat:
    org: Org
    agent: Person
    conversation_id: str

    @property
    def server(self):
        return self.org.server

    async def reply(self, text: str = "Hello", kind: str = "TEXT") -> dict:
        data = await self.org.gql(
            SEND, {"i": {"conversationId": self.conversation_id, "kind": kind, "text": text}}, as_=self.agent
        )
        assert data["sendMessage"]["errors"] == [], data
        return data["sendMessage"]["message"]

    async def messages(self) -> dict[str, dict]:
        data = await self.org.gql(MESSAGES, {"id": self.conversation_id}, as_=self.agent)
        return {e["node"]["id"]: e["node"] for e in data["conversation"]["messages"]["edges"]}

    async def delivery(self, message_id: str) -> dict:
        deliveries = (await self.messages())[message_id]["deliveries"]
        # a web-widget reply also has its CHANNEL delivery (the visitor's widget history)
        assert sorted(d["via"] for d in deliveries) in (["EMAIL"], ["CHANNEL", "EMAIL"]), deliveries
        return next(d for d in deliveries if d["via"] == "EMAIL")

    async def wait_delivery(self, message_id: str, status: str, timeout_s: float = 5.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            delivery = await self.delivery(message_id)
            if delivery["status"] == status:
                return delivery
            assert asyncio.get_running_loop().time() < deadline, delivery
            await asyncio.sleep(0.05)


async def open_chat(
    org: Org,
    *,
    channel_type: str = "WEB_WIDGET",
    email: str | None = CUSTOMER_EMAIL,
    customer_name: str | None = "Carol",
    online: bool = False,
    agent_name: str = "Alice",
    external_id: str = "visitor-1",
) -> Chat:
    team = await org.team(f"Support {external_id}")
    agent = await org.member(agent_name)
    await org.add(team, agent)
    channel = await org.channel(team, channel_type)
    customer = {k: v for k, v in (("email", email), ("name", customer_name)) if v}
    receipt = await org.customer_writes(channel, external_id, "Hi, anyone there?", customer=customer)
    if online:
        response = await org.server.presence(
            channel.id, channel.key, {"customer": {"externalId": external_id}, "online": True}
        )
        assert response.status_code == 200, response.text
    joined = await org.gql(JOIN, {"id": receipt["conversationId"]}, as_=agent)
    assert joined["joinConversation"]["errors"] == [], joined
    return Chat(org, agent, receipt["conversationId"])


def emailed(message: dict) -> list[dict]:
    """A reply's EMAIL delivery, if any (a web-widget reply also has a CHANNEL one, for the widget)."""
    return [d for d in message["deliveries"] if d["via"] == "EMAIL"]


async def settle(seconds: float = 0.3) -> None:
    """Give a (wrong) extra delivery the chance to happen before asserting it didn't."""
    await asyncio.sleep(seconds)


def part(message, subtype: str) -> str:
    found = message.get_body(preferencelist=(subtype,))
    assert found is not None and found.get_content_type() == f"text/{subtype}"
    return found.get_content().replace("\r\n", "\n")


async def test_offline_customer_gets_one_threaded_email_per_reply(make_server, smtp):
    server = await start(make_server, smtp)
    org = await new_org(server)
    chat = await open_chat(org)
    assert (await org.gql(MESSAGES, {"id": chat.conversation_id}))["conversation"]["emailFallbackActive"] is True

    first = await chat.reply("<b>hi</b>\nSecond line & more")
    assert emailed(first) == [{"via": "EMAIL", "status": "QUEUED", "attempts": 0}]  # sendMessage never waits
    [email1] = await smtp.wait_for(1)
    second = await chat.reply("Are you still there?")
    await smtp.wait_for(2)
    third = await chat.reply(kind="CONFERENCE_LINK", text="Let's talk")
    emails = await smtp.wait_for(3)
    await settle()
    assert len(smtp.messages) == 3

    m1, m2, m3 = (e.message for e in emails)
    assert email1.mail_from == "support@acme.example" and email1.rcpt_tos == [CUSTOMER_EMAIL]
    assert m1["To"].addresses[0].addr_spec == CUSTOMER_EMAIL and m1["To"].addresses[0].display_name == "Carol"
    assert m1["From"].addresses[0].addr_spec == "support@acme.example"
    assert m1["From"].addresses[0].display_name == "Alice from Acme"
    assert m1["Subject"] == "Your conversation with Acme" and m2["Subject"] == "Re: Your conversation with Acme"

    root = f"<conv-{chat.conversation_id}@imbrace>"
    ids = [f"<msg-{m['id']}@imbrace>" for m in (first, second, third)]
    assert [m["Message-ID"] for m in (m1, m2, m3)] == ids
    assert m1["In-Reply-To"] == root and m1["References"] == root
    assert m2["In-Reply-To"] == ids[0] and m2["References"].split() == [root, ids[0]]
    assert m3["In-Reply-To"] == ids[1] and m3["References"].split() == [root, ids[0], ids[1]]

    plain, html = part(m1, "plain"), part(m1, "html")
    assert "<b>hi</b>\nSecond line & more" in plain and "Alice from Acme wrote:" in plain
    assert "&lt;b&gt;hi&lt;/b&gt;<br>Second line &amp; more" in html and "<b>hi</b>" not in html
    assert "<strong>Alice</strong> from Acme" in html

    [link] = (await chat.messages())[third["id"]]["attachments"]
    assert link["url"].startswith("https://meet.jit.si/imbrace-")
    assert f"Join the video call: {link['url']}" in part(m3, "plain")
    assert f'<a href="{link["url"]}">Join the video call</a>' in part(m3, "html")

    for message in (first, second, third):
        delivery = await chat.wait_delivery(message["id"], "SENT")
        assert delivery["attempts"] == 1 and delivery["lastError"] is None
    events = await server.db.events.find({"kind": "DELIVERY", "message_id": first["id"]}).to_list()
    # one per way: the widget's CHANNEL copy went SENT, then the EMAIL
    assert len(events) == 2 and {e["conversation"]["_id"] for e in events} == {chat.conversation_id}
    leftovers = await server.db.messages.count_documents({"outbox_due": {"$exists": True}})
    assert leftovers == 0


async def test_no_email_for_online_customer_customer_without_email_or_other_channel(make_server, smtp):
    server = await start(make_server, smtp)
    org = await new_org(server)
    online = await open_chat(org, online=True, external_id="online")
    no_email = await open_chat(org, email=None, external_id="no-email")
    facebook = await open_chat(org, channel_type="FACEBOOK", external_id="facebook")
    offline = await open_chat(org, external_id="offline")

    quiet = [await chat.reply("No email for this one") for chat in (online, no_email, facebook)]
    sentinel = await offline.reply("This one is emailed")
    await smtp.wait_for(1)
    await settle()
    assert [e.message["Message-ID"] for e in smtp.messages] == [f"<msg-{sentinel['id']}@imbrace>"]
    assert all(emailed(message) == [] for message in quiet)


async def test_temporary_failures_are_retried_until_the_email_goes_out_once(make_server, smtp):
    smtp.handler.fail_next = 2
    server = await start(make_server, smtp)
    chat = await open_chat(await new_org(server))
    message = await chat.reply("Third time lucky")

    delivery = await chat.wait_delivery(message["id"], "SENT")
    assert delivery["attempts"] == 3 and delivery["lastError"] is None
    await settle()
    assert len(smtp.messages) == 1 and smtp.handler.data_attempts == 3
    events = await server.db.events.count_documents({"kind": "DELIVERY", "message_id": message["id"]})
    assert events == 2  # CHANNEL and EMAIL QUEUED -> SENT; rescheduled attempts are no status change


async def test_a_failing_server_ends_failed_after_max_attempts(make_server, smtp):
    smtp.handler.fail_all = "451 4.7.1 Mailbox temporarily unavailable"
    server = await start(make_server, smtp, email_max_attempts=3)
    chat = await open_chat(await new_org(server))
    message = await chat.reply("Nobody will read this by email")

    delivery = await chat.wait_delivery(message["id"], "FAILED")
    assert delivery["attempts"] == 3 and "451" in delivery["lastError"]
    assert smtp.handler.data_attempts == 3 and smtp.messages == []
    stored = (await chat.messages())[message["id"]]
    assert stored["text"] == "Nobody will read this by email" and stored["kind"] == "TEXT"
    assert await server.db.messages.count_documents({"outbox_due": {"$exists": True}}) == 0
    # the widget's CHANNEL copy went SENT; the EMAIL, FAILED
    assert await server.db.events.count_documents({"kind": "DELIVERY", "message_id": message["id"]}) == 2


async def test_a_refused_recipient_fails_at_once_and_an_unreachable_server_is_retried(make_server, smtp):
    smtp.handler.reject = {CUSTOMER_EMAIL}
    server = await start(make_server, smtp, email_max_attempts=8)
    chat = await open_chat(await new_org(server))
    refused = await chat.reply("Unknown mailbox")
    delivery = await chat.wait_delivery(refused["id"], "FAILED")
    assert delivery["attempts"] == 1 and "550" in delivery["lastError"]

    smtp.handler.reject = set()
    await smtp.stop()  # connection refused: a temporary failure
    later = await chat.reply("Server down for a moment")
    deadline = asyncio.get_running_loop().time() + 5
    while (delivery := await chat.delivery(later["id"]))["attempts"] < 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert delivery["status"] == "QUEUED" and delivery["lastError"]
    await smtp.start()
    delivery = await chat.wait_delivery(later["id"], "SENT")
    assert 2 <= delivery["attempts"] <= 8 and len(smtp.messages) == 1


async def test_a_job_left_by_a_killed_worker_is_sent_once_after_restart(make_server, smtp):
    first = await start(make_server, smtp)
    await first.app.state.runtime.delivery.stop()  # the instance's worker dies before it runs
    chat = await open_chat(await new_org(first))
    message = await chat.reply("Sent after the restart")
    dead = Outbox(first.services, lease_s=0.3)  # ...after claiming the job, even
    assert (await dead.claim(first.services.clock())).id == message["id"]

    await start(make_server, smtp, database=first.settings.database)  # a new instance
    [received] = await smtp.wait_for(1)
    assert received.message["Message-ID"] == f"<msg-{message['id']}@imbrace>"
    delivery = await chat.wait_delivery(message["id"], "SENT")
    assert delivery["attempts"] == 1
    await settle()
    assert len(smtp.messages) == 1


async def test_a_worker_that_died_during_the_smtp_transfer_is_not_repeated(make_server, smtp):
    server = await start(make_server, smtp)
    await server.app.state.runtime.delivery.stop()
    chat = await open_chat(await new_org(server))
    message = await chat.reply("Maybe delivered")
    dead = Outbox(server.services, lease_s=30)
    job = await dead.claim(server.services.clock())
    assert await dead.jobs.mark_sending(job, "DATA")
    # ...and died before SMTP answered: SMTP can't be asked, so it is not sent again.

    survivor = Outbox(server.services)
    assert await survivor.run_once(server.services.clock()) == 0  # leased: not yet due
    assert await survivor.run_once(server.services.clock() + timedelta(seconds=31)) == 1
    delivery = await chat.delivery(message["id"])
    assert delivery["status"] == "FAILED" and "may have been delivered" in delivery["lastError"]
    assert smtp.messages == [] and smtp.handler.data_attempts == 0


async def test_concurrent_workers_never_send_the_same_job(make_server, smtp):
    server = await start(make_server, smtp)
    await server.app.state.runtime.delivery.stop()
    chat = await open_chat(await new_org(server))
    sent = [await chat.reply(f"Reply {i}") for i in range(10)]

    workers = [Outbox(server.services) for _ in range(4)]
    deadline = asyncio.get_running_loop().time() + 10
    while len(smtp.messages) < 10:  # replies of one conversation go one at a time, in order
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.gather(*(w.run_once(server.services.clock() + timedelta(seconds=1)) for w in workers))
    await settle(0.2)
    ids = [e.message["Message-ID"] for e in smtp.messages]
    assert ids == [f"<msg-{m['id']}@imbrace>" for m in sent]


async def test_two_servers_on_one_database_send_each_reply_once(make_server, smtp):
    first = await start(make_server, smtp)
    await start(make_server, smtp, database=first.settings.database)
    chat = await open_chat(await new_org(first))
    sent = [await chat.reply(f"Reply {i}") for i in range(10)]
    await smtp.wait_for(10)
    await settle()
    ids = sorted(e.message["Message-ID"] for e in smtp.messages)
    assert ids == sorted(f"<msg-{m['id']}@imbrace>" for m in sent)


async def test_names_cannot_inject_headers(make_server, smtp):
    server = await start(make_server, smtp)
    org = await new_org(server)
    refused = await org.gql(
        """mutation($i: InviteMemberInput!) { inviteMember(input: $i) { errors { code } } }""",
        {
            "i": {
                "email": "eve@example.com",
                "name": "Eve\r\nBcc: evil@x.example",
                "password": "long enough password",
                "role": "MEMBER",
            }
        },
    )
    assert refused["inviteMember"]["errors"] == [{"code": "INVALID_INPUT"}]
    chat = await open_chat(org)
    response = await server.inbound(
        *await _widget(org), {"customer": {"externalId": "v2", "name": "Mallory\r\nBcc: evil@x.example"}, "text": "hi"}
    )
    assert response.status_code == 422

    # Names that reached the database some other way are still made harmless.
    evil = "Eve\r\nBcc: evil@x.example\u2028Cc: evil2@x.example\x85X-Evil: 1"
    await server.db.members.update_one({"_id": chat.agent.id}, {"$set": {"name": evil}})
    await server.db.organizations.update_one({}, {"$set": {"name": "Acme\r\nBcc: evil@x.example"}})
    await server.db.customers.update_one({"_id": chat.conversation_id}, {"$set": {"name": evil}})
    await chat.reply("hello")
    [received] = await smtp.wait_for(1)

    assert received.rcpt_tos == [CUSTOMER_EMAIL]
    headers = received.message
    assert headers.get_all("Bcc") is None and headers.get_all("Cc") is None and headers.get_all("X-Evil") is None
    assert b"\r\nBcc:" not in received.raw and b"\nCc:" not in received.raw
    assert all("\r" not in str(v) and "\n" not in str(v) for v in headers.values())
    [sender] = headers["From"].addresses
    assert sender.addr_spec == "support@acme.example"
    assert sender.display_name == "Eve Bcc evil x.example Cc evil from Acme Bcc evil x.example"
    assert [a.addr_spec for a in headers["To"].addresses] == [CUSTOMER_EMAIL]
    assert headers["Subject"] == "Your conversation with Acme Bcc: evil@x.example"


async def _widget(org: Org) -> tuple[str, str]:
    team = await org.team("Injection")
    channel = await org.channel(team, "WEB_WIDGET", name="Second site")
    return channel.id, channel.key


def letter(**changes) -> Letter:
    base = dict(
        message_id="a" * 24,
        conversation_id="b" * 24,
        kind=MessageKind.TEXT,
        text="Here you go",
        attachments=(),
        created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        agent_name="Alice",
        org_name="Acme",
        to_email="carol@example.com",
        to_name="Carol",
    )
    return Letter(**{**base, **changes})


def test_attachment_links_are_absolute_and_only_http():
    from api.settings import Settings

    settings = Settings(public_url="https://inbox.example.com/", smtp_from="Support <support@acme.example>")
    msg = compose(
        letter(
            kind=MessageKind.ATTACHMENT,
            attachments=(
                Attachment(url="/files/" + "c" * 24, name="invoice <2025>.pdf"),
                Attachment(url="javascript:alert(1)", name="bad"),
                Attachment(url="https://cdn.example.com/x.png", name="x.png"),
            ),
        ),
        settings,
    )
    plain, html = part(msg, "plain"), part(msg, "html")
    assert f"invoice <2025>.pdf: https://inbox.example.com/files/{'c' * 24}" in plain
    assert f'<a href="https://inbox.example.com/files/{"c" * 24}">invoice &lt;2025&gt;.pdf</a>' in html
    assert "javascript" not in plain + html and "https://cdn.example.com/x.png" in html
    assert msg["From"].addresses[0].addr_spec == "support@acme.example"
    assert msg["Date"] == "Thu, 02 Jan 2025 03:04:05 +0000"


def test_long_names_with_specials_never_turn_into_addresses():
    from api.settings import Settings

    name = "Support, Customer Success Department (EMEA) <boss@evil.example>: x@evil.example"
    msg = compose(letter(agent_name=name, org_name=name, to_name=name), Settings(smtp_from="support@acme.example"))
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in parsed["From"].addresses] == ["support@acme.example"]
    assert [a.addr_spec for a in parsed["To"].addresses] == ["carol@example.com"]
    assert all(
        "@" not in a.display_name and ":" not in a.display_name
        for a in (*parsed["From"].addresses, *parsed["To"].addresses)
    )


def test_bad_recipient_addresses_are_refused_not_injected():
    from api.settings import Settings

    for address in (
        "carol@example.com\r\nBcc: evil@x.example",
        "carol@example.com\n",
        "carol@example.com>, e@x.y",
        "Carol <carol@example.com>",
        "",
        "zoë@example.com",
    ):
        with pytest.raises(DeliveryError) as refused:
            compose(letter(to_email=address), Settings())
        assert refused.value.permanent


LAST = """query($id: ID!) {
    conversations(first: 10) { edges { node { id lastMessage { ...M } } } }
    conversation(id: $id) { lastMessage { ...M } messages(last: 5) { edges { node { ...M } } } } }
    fragment M on Message { id seq text sender { kind } deliveries { via status attempts lastError } }"""


async def test_last_message_follows_messages_replies_and_delivery_states(make_server, smtp):
    smtp.handler.fail_next = 1  # the reply's first attempt fails: QUEUED with an error, then SENT
    server = await start(make_server, smtp)
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("Alice")
    await org.add(team, agent)
    channel = await org.channel(team, "WEB_WIDGET")
    carol = {"email": CUSTOMER_EMAIL, "name": "Carol"}
    cid = (await org.customer_writes(channel, "carol", "Hi, anyone there?", customer=carol))["conversationId"]
    assert (await org.gql(JOIN, {"id": cid}, as_=agent))["joinConversation"]["errors"] == []
    chat = Chat(org, agent, cid)

    async def last() -> dict:
        """The list's and the chat's lastMessage, checked against the newest entry of `messages`.
        While the worker is sending, the message is written before its copy on the conversation,
        so a read in between may see them a step apart: the copy must catch up within seconds."""
        for _ in range(100):
            data = await org.gql(LAST, {"id": cid})
            # the newest message, not a system line of the history (those are never the last message)
            newest = [
                e["node"] for e in data["conversation"]["messages"]["edges"] if e["node"]["sender"]["kind"] != "SYSTEM"
            ][-1]
            [listed] = [e["node"]["lastMessage"] for e in data["conversations"]["edges"] if e["node"]["id"] == cid]
            if listed == data["conversation"]["lastMessage"] == newest:
                return newest
            await asyncio.sleep(0.05)
        assert listed == data["conversation"]["lastMessage"] == newest
        return newest

    assert (await last())["text"] == "Hi, anyone there?"
    await org.customer_writes(channel, "dan", "Another conversation moves meanwhile")
    await org.customer_writes(channel, "carol", "Hello again")
    newest = await last()
    assert (newest["text"], newest["sender"]) == ("Hello again", {"kind": "CUSTOMER"})

    reply = await chat.reply("Sorry for the wait")
    assert (await last())["id"] == reply["id"]
    await chat.wait_delivery(reply["id"], "SENT")
    newest = await last()
    assert (newest["id"], newest["sender"]) == (reply["id"], {"kind": "MEMBER"})
    assert emailed(newest) == [{"via": "EMAIL", "status": "SENT", "attempts": 2, "lastError": None}]
    *_, event = await server.db.events.find({"kind": "DELIVERY", "message_id": reply["id"]}).sort("seq").to_list()
    assert event["conversation"]["last_message"]["deliveries"]["EMAIL"]["status"] == "SENT"  # what subscribers get

    await org.customer_writes(channel, "carol", "Thanks!")
    newest = await last()
    assert (newest["text"], newest["deliveries"]) == ("Thanks!", [])


async def test_the_copy_keeps_the_freshest_state_whatever_order_the_writes_land_in(server):
    """The outbox may record a delivery before the reply's own copy write lands; that late write
    must not bring back QUEUED. A newer message's copy is never replaced by an older one's."""
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"), "LINE")
    cid = (await org.customer_writes(channel, "c1", "first"))["conversationId"]
    store = server.services.store
    stored = await store.conversation((await server.db.conversations.find_one({"_id": cid}))["org_id"], cid)
    queued = replace(
        stored.last_message,
        id=store.new_id(),
        seq=stored.message_seq + 1,
        text="reply",
        deliveries=(Delivery(via=DeliveryVia.EMAIL, status=DeliveryStatus.QUEUED),),
    )
    sent = replace(queued, deliveries=(Delivery(via=DeliveryVia.EMAIL, status=DeliveryStatus.SENT, attempts=1),))
    await store.offer_last_message(sent, same_seq=True)  # the outbox, first
    await store.offer_last_message(queued)  # the reply's own write, late
    await store.offer_last_message(stored.last_message)  # an older message's, later still
    data = await org.gql(
        """query($id: ID!) { conversation(id: $id) { lastMessage {
        text deliveries { status } } } }""",
        {"id": cid},
    )
    assert data["conversation"]["lastMessage"] == {"text": "reply", "deliveries": [{"status": "SENT"}]}


async def test_the_customer_opens_attachment_links_from_the_email_and_only_those(make_server, smtp):
    from urllib.parse import parse_qs, urlsplit

    from tests.test_rooms import upload

    server = await start(make_server, smtp, public_file_ttl_s=3600)
    org = await new_org(server)
    chat = await open_chat(org)
    files = [("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf"), ("photo.png", b"\x89PNG fake", "image/png")]
    sent = await upload(server, chat.agent.token, chat.conversation_id, "ATTACHMENT", files, text="Here you go")
    assert sent["errors"] == [], sent
    [mail] = await smtp.wait_for(1)
    plain = part(mail.message, "plain")
    links = [line.split(": ", 1)[1] for line in plain.splitlines() if line.startswith(("invoice.pdf:", "photo.png:"))]
    assert len(links) == 2 and all(link.startswith(PUBLIC_URL + "/files/") for link in links), plain
    paths = [link[len(PUBLIC_URL) :] for link in links]

    for path, (_, content, mime) in zip(paths, files, strict=True):  # no token needed
        response = await server.http.get(path)
        assert response.status_code == 200 and response.content == content, response.text
        assert response.headers["content-type"].startswith(mime)
    assert (await server.http.get(paths[0].split("?")[0])).status_code == 401  # the bare link still needs a token

    invoice, photo = (urlsplit(p) for p in paths)
    signature = parse_qs(invoice.query)["signature"][0]
    tampered = paths[0][:-1] + ("0" if signature[-1] != "0" else "1")
    later = parse_qs(invoice.query)["expires"][0]
    stretched = paths[0].replace(f"expires={later}", f"expires={int(later) + 86400}")
    swapped = f"{photo.path}?{invoice.query}"  # the invoice's signature on the photo
    for path in (tampered, stretched, swapped, photo.path + "?expires=" + later, photo.path + "?signature=x"):
        response = await server.http.get(path)
        assert response.status_code == 403 and response.content != files[1][1], (path, response.text)

    real_clock = server.services.clock
    server.services.clock = lambda: real_clock() + timedelta(seconds=3601)  # the link's hour is over
    assert (await server.http.get(paths[0])).status_code == 403
