"""Issue 17 item 8: re-engaging a closed WhatsApp conversation with a WhatsApp template.

A member who can see the closed conversation sends a WHATSAPP_TEMPLATE: it reopens with them
in the room and nobody waiting, its history says who re-engaged it, and free text stays
refused (the refusal names the configured window) until the customer writes. The inactivity
close counts from the re-engagement, not from the customer's old last message (FakeClock).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from domain import changes
from domain.entities import Channel, MessageTemplate
from domain.enums import ChannelType, ErrorCode, MessageKind, OrgRole
from domain.status import Thresholds
from domain.usecases.messaging import MessageDraft, MessagingSettings, send_message
from tests.clock import FakeClock
from tests.test_api_keys import create_key
from tests.test_history import act, history, lines
from tests.test_transfer import CHIEF, FRONT, NOW, RacingStore, open_conversation, play, viewer
from tests.world import Org, Person, grab_desk, support_desk
from tests.ws import Subscriber

CALM = Thresholds(soon_after_s=600, overdue_after_s=1200, auto_close_after_s=3600, presence_timeout_s=600)
WINDOW = MessagingSettings(whatsapp_window_s=1800)  # half an hour: shorter than the auto-close

SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { kind text } conversation { status waitingSince owner { id } representatives { id } }
    errors { code message field } } }"""
SEEN = """query($id: ID!) { conversation(id: $id) { status waitingSince closedAt lastCustomerMessageAt
    owner { id } representatives { id } } }"""
TEMPLATE = """mutation($i: CreateMessageTemplateInput!) { createMessageTemplate(input: $i) { template { id } } }"""
NAME = {"name": "Cy"}
EVENTS = "subscription { conversationEvents { kind conversationId previousStatus conversation { status } } }"


async def send(org: Org, person: Person, cid: str, kind: str = "TEXT", **fields) -> dict:
    return (await org.gql(SEND, {"i": {"conversationId": cid, "kind": kind, **fields}}, as_=person))["sendMessage"]


async def seen(org: Org, cid: str, person: Person) -> dict | None:
    return (await org.gql(SEEN, {"id": cid}, as_=person))["conversation"]


async def whatsapp_template(org: Org) -> str:
    body = {"name": "Follow-up", "body": "Hi {{name}}, any news?", "channel": "WHATSAPP", "whatsappName": "follow_up"}
    return (await org.gql(TEMPLATE, {"i": body}))["createMessageTemplate"]["template"]["id"]


def codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["errors"]]


async def test_a_template_reopens_a_closed_whatsapp_conversation_without_anyone_waiting(make_server):
    clock = FakeClock()
    server = await make_server(clock=clock, thresholds=CALM, messaging=WINDOW, sweep_interval_s=3600)
    org, _, (ann, ben), channel = await support_desk(server, "ann", "ben", channel_type="WHATSAPP")
    outsider = await org.member("out")
    template = await whatsapp_template(org)
    cid = (await org.customer_writes(channel, "+85290000001", "Where is my order?"))["conversationId"]
    await act(org, "joinConversation", cid, ann)
    wrote_at = (await seen(org, cid, ann))["lastCustomerMessageAt"]

    clock.advance(WINDOW.whatsapp_window_s + 1)  # the window passed; the conversation is still open
    refused = await send(org, ann, cid, text="Still there?")
    assert refused["errors"] == [
        {
            "code": "WHATSAPP_WINDOW_CLOSED",
            "message": "More than 30 minutes since the customer wrote: only a WhatsApp template may be sent "
            "until they write again.",
            "field": "kind",
        }
    ]
    clock.advance(CALM.auto_close_after_s)
    assert await server.sweep() == 1
    assert (await seen(org, cid, ann))["status"] == "CLOSED"

    # refusals on the closed conversation, each writing nothing
    messages_before = await server.db.messages.count_documents({"conversation_id": cid})
    closed = await send(org, ann, cid, text="Hello again")
    assert codes(closed) == ["CONVERSATION_CLOSED"] and "WHATSAPP_TEMPLATE" in closed["errors"][0]["message"]
    assert codes(await send(org, ann, cid, "WHATSAPP_TEMPLATE", templateId="0" * 24)) == ["NOT_FOUND"]
    assert codes(await send(org, outsider, cid, "WHATSAPP_TEMPLATE", templateId=template, variables=NAME)) == [
        "NOT_FOUND"
    ]
    app, _ = await create_key(org, ["SEND_MESSAGES", "READ_CONVERSATIONS"])  # apps never enter rooms
    by_app = await send(org, app, cid, "WHATSAPP_TEMPLATE", templateId=template, variables=NAME)
    assert by_app["errors"] == [
        {"code": "CONVERSATION_CLOSED", "message": "This conversation is closed.", "field": None}
    ]
    assert await server.db.messages.count_documents({"conversation_id": cid}) == messages_before
    assert (await seen(org, cid, ann))["status"] == "CLOSED"

    async with Subscriber(server.ws_url, ben.token) as teammate:
        await teammate.subscribe(EVENTS)
        await server.subscribed(1)
        sent = await send(org, ben, cid, "WHATSAPP_TEMPLATE", templateId=template, variables={"name": "Cy"})
        assert sent["errors"] == [] and sent["message"] == {"kind": "WHATSAPP_TEMPLATE", "text": "Hi Cy, any news?"}
        assert sent["conversation"] == {
            "status": "REPLIED",
            "waitingSince": None,
            "owner": None,
            "representatives": [{"id": ben.id}],
        }
        reengaged = (await teammate.next_data())["conversationEvents"]
        assert reengaged == {
            "kind": "REENGAGED",
            "conversationId": cid,
            "previousStatus": "CLOSED",
            "conversation": {"status": "REPLIED"},
        }
        assert (await teammate.next_data())["conversationEvents"]["kind"] == "MESSAGE"
    assert lines(await history(org, cid, ben, last=2)) == [
        (
            "SYSTEM",
            "ben reopened the conversation to send the customer a WhatsApp template.",
            "REENGAGED",
            "ben",
            None,
        ),
        ("WHATSAPP_TEMPLATE", "Hi Cy, any news?", None, None, None),
    ]
    now_seen = await seen(org, cid, ben)
    assert now_seen["closedAt"] is None and now_seen["lastCustomerMessageAt"] == wrote_at  # they haven't written

    # free text stays refused until the customer writes; ann, out of the room, is not in it
    assert codes(await send(org, ben, cid, text="Did you get it?")) == ["WHATSAPP_WINDOW_CLOSED"]
    assert codes(await send(org, ann, cid, text="me too")) == ["NOT_JOINED"]
    assert (
        codes(await send(org, ben, cid, "WHATSAPP_TEMPLATE", templateId=template, variables=NAME)) == []
    )  # another template

    # silence counts from the re-engagement: a sweep now leaves it open, one an hour later closes it
    assert await server.sweep() == 0
    clock.advance(CALM.auto_close_after_s - 60)
    assert await server.sweep() == 0 and (await seen(org, cid, ben))["status"] == "REPLIED"
    clock.advance(61)
    assert await server.sweep() == 1 and (await seen(org, cid, ben))["status"] == "CLOSED"

    # re-engaged again, then the customer answers: free text flows, and they wait for an answer
    assert codes(await send(org, ann, cid, "WHATSAPP_TEMPLATE", templateId=template, variables=NAME)) == []
    await org.customer_writes(channel, "+85290000001", "Yes, thanks")
    answered = await seen(org, cid, ann)
    assert answered["status"] == "PENDING" and answered["lastCustomerMessageAt"] != wrote_at
    assert codes(await send(org, ann, cid, text="Great, it ships today")) == []
    assert "customer_wrote_at" not in await server.db.conversations.find_one({"_id": cid})


async def test_in_a_grab_team_the_representative_who_re_engages_owns_it_and_others_lose_sight(make_server):
    clock = FakeClock()
    server = await make_server(clock=clock, thresholds=CALM, sweep_interval_s=3600)
    org, _, channel, alice, bob, boss = await grab_desk(server, "WHATSAPP")
    template = await whatsapp_template(org)
    cid = (await org.customer_writes(channel, "+85290000002", "Hi"))["conversationId"]
    clock.advance(CALM.auto_close_after_s + 1)  # closed by inactivity, not yet swept: unowned
    assert (await seen(org, cid, bob))["status"] == "CLOSED"

    async with Subscriber(server.ws_url, bob.token) as other:
        await other.subscribe(EVENTS)
        await server.subscribed(1)
        sent = await send(org, alice, cid, "WHATSAPP_TEMPLATE", templateId=template, variables=NAME)
        assert sent["errors"] == []
        assert sent["conversation"]["owner"] == {"id": alice.id}
        hidden = (await other.next_data())["conversationEvents"]
        assert hidden == {"kind": "HIDDEN", "conversationId": cid, "previousStatus": None, "conversation": None}
    assert await seen(org, cid, bob) is None
    assert (await seen(org, cid, boss))["representatives"] == [{"id": alice.id}]  # admins still see it
    # the team admin may re-engage too, once it closed again; admins never own
    clock.advance(CALM.auto_close_after_s + 1)
    sent = await send(org, boss, cid, "WHATSAPP_TEMPLATE", templateId=template, variables=NAME)
    assert sent["errors"] == [] and sent["conversation"]["owner"] is None
    assert sent["conversation"]["representatives"] == [{"id": boss.id}]


class ReengageStore(RacingStore):
    """A closed WhatsApp conversation in memory, with a WhatsApp template and its channel."""

    async def template(self, org_id: str, template_id: str) -> MessageTemplate | None:
        return MessageTemplate(template_id, "o", "follow_up", "Any news?", ChannelType.WHATSAPP)

    async def channel(self, channel_id: str) -> Channel | None:
        return Channel(channel_id, "o", FRONT.id, ChannelType.WHATSAPP, "WhatsApp")


async def test_a_re_engagement_the_customer_overtakes_sends_nothing():
    closed = replace(
        open_conversation(), team_id=FRONT.id, channel_type=ChannelType.WHATSAPP, closed_at=NOW, waiting_since=None
    )
    later = NOW + timedelta(seconds=60)
    # the customer writes between the member's read and the re-engagement's conditional update
    store = ReengageStore(closed, [changes.reopen(closed, later, None)])
    draft = MessageDraft(closed.id, MessageKind.WHATSAPP_TEMPLATE, template_id="e" * 24)
    send = send_message(store, None, store, viewer(CHIEF, OrgRole.ADMIN), draft, later, CALM, MessagingSettings())
    refused = await play(store, send)  # (no file saver: a template saves no file)
    assert refused is not None and refused.code is ErrorCode.CONVERSATION_CHANGED
    assert store.published == [] and store.current.participants == () and store.current.waiting_since == later
