"""Hostile and corrupt input found by the input audit: every refusal is typed and
writes nothing, and one bad stored document breaks nothing else.

Lone surrogates can't be sent with ``httpx``'s ``json=`` (it encodes UTF-8), so
bodies carrying them are built with ``json.dumps`` (``\\ud800`` escapes) and posted raw.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tracemalloc
from datetime import timedelta

import pytest

from domain.status import Thresholds
from tests.clock import FakeClock
from tests.world import support_desk

T = Thresholds(soon_after_s=60, overdue_after_s=120, auto_close_after_s=600, presence_timeout_s=60)
# no timer transitions while snapshots are compared: the sweeper must not write meanwhile
CALM = Thresholds(soon_after_s=3600, overdue_after_s=7200, auto_close_after_s=86400, presence_timeout_s=60)
WATCHED = ("customers", "conversations", "messages", "templates", "teams", "channels", "events")
LIST = "{ conversations(first: 50) { edges { node { id status lastMessage { text } } } } }"
ONE = "query($id: ID!) { conversation(id: $id) { id status lastMessage { text } } }"
CLOSE = "mutation($id: ID!) { closeConversation(id: $id) { conversation { id status } errors { code } } }"
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id } conversation { id status waitingSince } errors { code field message } } }"""
STATUS = "query($id: ID!) { conversation(id: $id) { status waitingSince lastMessage { text } } }"
UPDATE_CUSTOMER = """mutation($i: UpdateCustomerInput!) { updateCustomer(input: $i) {
    customer { id name attributes } errors { code field } } }"""
CREATE_TEMPLATE = """mutation($i: CreateMessageTemplateInput!) { createMessageTemplate(input: $i) {
    template { id } errors { code field } } }"""
CREATE_TEAM = "mutation($i: CreateTeamInput!) { createTeam(input: $i) { team { id } errors { code field } } }"
CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) { channel { id }
    errors { code field } } }"""


async def raw_gql(server, query: str, variables: dict, token: str) -> dict:
    """A GraphQL call whose JSON may carry lone surrogates as ``\\ud800`` escapes."""
    response = await server.http.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def raw_inbound(server, channel, body) -> object:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await server.http.post(
        f"/channels/{channel.id}/inbound",
        content=content,
        headers={"X-Channel-Key": channel.key, "Content-Type": "application/json"},
    )


async def snapshot(server) -> dict:
    return {name: await server.db[name].find({}, sort=[("_id", 1)]).to_list() for name in WATCHED}


@pytest.fixture
async def server(make_server):
    return await make_server(thresholds=CALM)


def no_internal_errors(body: dict) -> None:
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    assert "INTERNAL_SERVER_ERROR" not in codes and not body.get("errors"), body


# --- finding 1: poison timestamps ----------------------------------------------------------------


async def test_sent_at_outside_the_sane_window_is_refused_naming_the_field_and_stores_nothing(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    await org.customer_writes(channel, "known", "Hi")
    now = server.services.clock()
    before = await snapshot(server)
    for sent_at in (
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-23:59",
        "1999-12-31T23:59:59Z",
        (now + timedelta(hours=1)).isoformat(),
    ):
        for external_id in ("known", "new-customer"):
            response = await server.inbound(
                channel.id, channel.key, {"customer": {"externalId": external_id}, "text": "Hi", "sentAt": sent_at}
            )
            assert response.status_code == 422, (sent_at, response.text)
            assert [f["field"] for f in response.json()["fields"]] == ["sentAt"], response.text
    assert await snapshot(server) == before
    ok = await server.inbound(
        channel.id,
        channel.key,
        {"customer": {"externalId": "known"}, "text": "Hi", "sentAt": (now - timedelta(minutes=3)).isoformat()},
    )
    assert ok.status_code == 202, ok.text


async def test_a_poison_stored_document_breaks_no_list_lookup_close_or_next_message(server, raw_db):
    org, team, (agent,), channel = await support_desk(server, "agent")
    healthy = (await org.customer_writes(channel, "healthy", "Fine"))["conversationId"]
    poison = (await org.customer_writes(channel, "poison", "Bad"))["conversationId"]
    db = raw_db[server.settings.database]
    # what the unchecked webhook stored for "0001-01-01T00:00:00+14:00", and a far-future moment
    year_0, year_10000 = -62135647200000, 253402387139000
    await db.messages.update_many({"conversation_id": poison}, {"$set": {"sent_at": year_0}})
    await db.conversations.update_one(
        {"_id": poison}, {"$set": {"last_message.sent_at": year_0, "created_at": year_10000}}
    )

    listed = await server.gql(LIST, token=org.owner.token, expect_errors=True)
    no_internal_errors(listed)
    assert {e["node"]["id"] for e in listed["data"]["conversations"]["edges"]} == {healthy, poison}
    for cid in (healthy, poison):
        one = await server.gql(ONE, {"id": cid}, token=org.owner.token, expect_errors=True)
        no_internal_errors(one)
        assert one["data"]["conversation"]["id"] == cid
    await org.customer_writes(channel, "poison", "Still there?")
    closed = await server.gql(CLOSE, {"id": poison}, token=org.owner.token, expect_errors=True)
    no_internal_errors(closed)
    assert closed["data"]["closeConversation"]["conversation"]["status"] == "CLOSED"


async def test_one_corrupt_conversation_does_not_stop_the_sweeper_for_the_others(make_server, raw_db, caplog):
    server = await make_server(thresholds=T, sweep_interval_s=3600)
    sweeper = server.app.state.runtime.sweeper
    org, team, (agent,), channel = await support_desk(server, "agent")
    wrote = server.services.clock()
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    # another organization's conversation that no code can read, due first
    await raw_db[server.settings.database].conversations.insert_one(
        {
            "_id": "0" * 24,
            "org_id": "f" * 24,
            "team_id": "f" * 24,
            "channel_id": "f" * 24,
            "channel_type": "NOT-A-CHANNEL",
            "customer_id": "0" * 24,
            "next_due_at": 0,
            "last_customer_message_at": -62135647200000,
        }
    )
    with caplog.at_level(logging.ERROR, logger="imbrace.sweeper"):
        assert await sweeper.sweep(wrote + timedelta(seconds=61)) == 1
    assert "0" * 24 in caplog.text
    announced = await server.db.events.find({"conversation._id": cid, "kind": "STATUS_CHANGED"}).to_list()
    assert [e.get("new_status") for e in announced] == ["SOON_TO_BE"]


# --- finding 2: input no database can store --------------------------------------------------------


async def test_lone_surrogates_in_a_reply_are_refused_and_the_conversation_is_untouched(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    await org.gql(JOIN, {"id": cid}, as_=agent)
    before_status = await org.gql(STATUS, {"id": cid})
    before = await snapshot(server)
    for text in ("hi \ud800", "\udfff", "a\ud83d"):
        body = await raw_gql(server, SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": text}}, agent.token)
        no_internal_errors(body)
        assert [(e["code"], e["field"]) for e in body["data"]["sendMessage"]["errors"]] == [("INVALID_INPUT", "text")]
    assert await snapshot(server) == before
    assert await org.gql(STATUS, {"id": cid}) == before_status
    assert before_status["conversation"]["status"] == "PENDING"


async def test_lone_surrogates_on_the_webhook_are_refused_and_store_nothing(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    await org.customer_writes(channel, "known", "Hi")
    before = await snapshot(server)
    bodies = [
        ({"customer": {"externalId": "new"}, "text": "\ud800"}, "text"),
        ({"customer": {"externalId": "known"}, "text": "ok \udbff"}, "text"),
        ({"customer": {"externalId": "known", "name": "Ann \ud800"}, "text": "hi"}, "customer.name"),
        ({"customer": {"externalId": "\ud800"}, "text": "hi"}, "customer.externalId"),
        ({"customer": {"externalId": "known"}, "text": "hi", "messageId": "m\udc00"}, "messageId"),
        (
            {
                "customer": {"externalId": "known"},
                "text": "hi",
                "attachments": [{"url": "https://x.example/a", "name": "\ud800.png"}],
            },
            "attachments[0].name",
        ),
    ]
    for body, field in bodies:
        response = await raw_inbound(server, channel, body)
        assert response.status_code == 422, (body, response.text)
        assert field in [f["field"] for f in response.json()["fields"]], response.text
    assert await snapshot(server) == before


async def test_lone_surrogates_anywhere_in_admin_and_customer_input_are_refused(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    before = await snapshot(server)
    token = org.owner.token
    calls = [
        (UPDATE_CUSTOMER, {"i": {"id": cid, "name": "Ann \ud800"}}, "updateCustomer"),
        (UPDATE_CUSTOMER, {"i": {"id": cid, "attributes": {"\ud800": 1}}}, "updateCustomer"),
        (UPDATE_CUSTOMER, {"i": {"id": cid, "attributes": {"a": {"b": ["ok", "\udfff"]}}}}, "updateCustomer"),
        (CREATE_TEMPLATE, {"i": {"name": "T \ud800", "body": "Hi"}}, "createMessageTemplate"),
        (CREATE_TEMPLATE, {"i": {"name": "T", "body": "Hi \ud800"}}, "createMessageTemplate"),
        (CREATE_TEAM, {"i": {"name": "Team \ud800", "mode": "GRAB"}}, "createTeam"),
        (CONNECT, {"i": {"type": "LINE", "name": "\ud800", "teamId": team}}, "connectChannel"),
    ]
    for query, variables, name in calls:
        body = await raw_gql(server, query, variables, token)
        no_internal_errors(body)
        assert [e["code"] for e in body["data"][name]["errors"]] == ["INVALID_INPUT"], (variables, body)
    assert await snapshot(server) == before


# --- finding 4: template amplification -------------------------------------------------------------


async def test_a_template_that_would_expand_past_the_limit_is_refused_before_it_is_built(server):
    """The server runs in this process, so its allocations are measured (memory, not timing)."""
    org, team, (agent,), channel = await support_desk(server, "agent")
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    await org.gql(JOIN, {"id": cid}, as_=agent)
    template = await org.gql(CREATE_TEMPLATE, {"i": {"name": "boom", "body": "{{a}}" * 819}})
    template_id = template["createMessageTemplate"]["template"]["id"]
    before = await snapshot(server)
    tracemalloc.start()
    try:
        body = await org.gql(
            SEND,
            {
                "i": {
                    "conversationId": cid,
                    "kind": "TEMPLATE",
                    "templateId": template_id,
                    "variables": {"a": "x" * 100_000},
                }
            },
            as_=agent,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    errors = body["sendMessage"]["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [("INVALID_INPUT", "text")]
    assert "4096" in errors[0]["message"]
    assert peak < 20_000_000, f"{peak} bytes allocated to refuse it (the full expansion is 82 MB)"
    assert await snapshot(server) == before


# --- finding 5: malformed bodies on the webhook ----------------------------------------------------


async def test_deeply_nested_or_undecodable_webhook_bodies_get_a_4xx_json_answer(server, caplog):
    org, team, (agent,), channel = await support_desk(server, "agent")
    before = await snapshot(server)
    deep = b'{"customer": {"externalId": "x"}, "text": "hi", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with caplog.at_level(logging.INFO):
        for body in (
            deep,
            b"[" * 200_000,
            b'{"customer": {"externalId": "x"}, "text": "\xff\xfe"}',
            b'{"text": 1' + b"0" * 5000 + b"}",
        ):
            response = await raw_inbound(server, channel, body)
            assert 400 <= response.status_code < 500, response.text
            assert response.json()["error"]
        await asyncio.sleep(0)
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    assert await snapshot(server) == before


# --- finding 2: write order ------------------------------------------------------------------------

CONVERSATION = """query($id: ID!) { conversation(id: $id) { status waitingSince lastMessage { text }
    messages(last: 20) { edges { node { text } } } } }"""


class StoreFails(Exception):
    pass


def failing_message_inserts(server):
    """Every message insert fails as a database outage would, until the returned undo is called."""
    store = server.services.store

    async def insert_message(message, **_):
        raise StoreFails("messages collection unavailable")

    store.insert_message = insert_message
    return lambda: delattr(store, "insert_message")


async def test_a_reply_whose_message_could_not_be_stored_leaves_the_customer_waiting(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    await org.gql(JOIN, {"id": cid}, as_=agent)
    before = await org.gql(CONVERSATION, {"id": cid})
    undo = failing_message_inserts(server)
    try:
        body = await org.gql(
            SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": "On it"}}, as_=agent, expect_errors=True
        )
        assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"  # masked, not swallowed
    finally:
        undo()
    after = await org.gql(CONVERSATION, {"id": cid})
    assert after == before and after["conversation"]["status"] == "PENDING"
    sent = await org.gql(SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": "On it"}}, as_=agent)
    assert sent["sendMessage"]["conversation"]["status"] == "REPLIED"
    assert (await org.gql(CONVERSATION, {"id": cid}))["conversation"]["lastMessage"]["text"] == "On it"


async def test_a_customer_message_that_could_not_be_stored_wakes_nothing_and_its_retry_is_stored_once(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    await org.gql(JOIN, {"id": cid}, as_=agent)
    await org.gql(SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": "Hi!"}}, as_=agent)
    before = await org.gql(CONVERSATION, {"id": cid})
    assert before["conversation"]["status"] == "REPLIED"
    body = {"customer": {"externalId": "c1"}, "text": "One more thing", "messageId": "p-1"}
    undo = failing_message_inserts(server)
    try:
        assert (await server.inbound(channel.id, channel.key, body)).status_code == 500
    finally:
        undo()
    assert await org.gql(CONVERSATION, {"id": cid}) == before
    for duplicate in (False, True):  # the provider's retry, and a retry of that
        response = await server.inbound(channel.id, channel.key, body)
        assert response.status_code == 202 and response.json()["duplicate"] is duplicate
    after = (await org.gql(CONVERSATION, {"id": cid}))["conversation"]
    assert after["status"] == "PENDING" and after["lastMessage"]["text"] == "One more thing"
    assert [e["node"]["text"] for e in after["messages"]["edges"]] == [
        "Hello?",
        "agent joined the conversation.",
        "Hi!",
        "One more thing",
    ]


async def test_a_first_message_that_could_not_be_stored_leaves_no_conversation(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    undo = failing_message_inserts(server)
    try:
        response = await server.inbound(channel.id, channel.key, {"customer": {"externalId": "new"}, "text": "Hi"})
        assert response.status_code == 500
    finally:
        undo()
    listed = await server.gql(LIST, token=org.owner.token)
    assert listed["conversations"]["edges"] == []
    cid = (await org.customer_writes(channel, "new", "Hi again"))["conversationId"]
    after = (await org.gql(CONVERSATION, {"id": cid}))["conversation"]
    assert after["lastMessage"]["text"] == "Hi again" and after["status"] == "REP_NEEDED"


# --- finding 3: one REOPENED for concurrent messages -----------------------------------------------


async def reopen_race(server, org, channel, cid: str, count: int = 6) -> list[str]:
    replies = await asyncio.gather(
        *(
            server.inbound(channel.id, channel.key, {"customer": {"externalId": "c1"}, "text": f"again {i}"})
            for i in range(count)
        )
    )
    assert [r.status_code for r in replies] == [202] * count
    events = await server.db.events.find({"conversation._id": cid}).sort("seq", 1).to_list()
    return [e["kind"] for e in events]


async def test_concurrent_messages_on_a_closed_conversation_reopen_it_once(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    assert (await org.gql(CLOSE, {"id": cid}))["closeConversation"]["errors"] == []
    kinds = await reopen_race(server, org, channel, cid)
    after_close = kinds[kinds.index("CLOSED") + 1 :]
    assert sorted(after_close) == ["MESSAGE"] * 5 + ["REOPENED"], kinds
    conversation = (await org.gql(CONVERSATION, {"id": cid}))["conversation"]
    # the first message, the close's line, six messages and one reopen's line
    assert conversation["status"] == "REP_NEEDED" and len(conversation["messages"]["edges"]) == 9


async def test_concurrent_messages_after_an_unswept_inactivity_close_reopen_it_once(make_server):
    clock = FakeClock()
    server = await make_server(clock=clock, thresholds=T, sweep_interval_s=3600)
    org, team, (agent,), channel = await support_desk(server, "agent")
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    clock.advance(T.auto_close_after_s + 1)  # closed by time alone; no sweep has persisted it
    assert (await org.gql(STATUS, {"id": cid}))["conversation"]["status"] == "CLOSED"
    kinds = await reopen_race(server, org, channel, cid)
    assert kinds[0] == "CREATED" and sorted(kinds[1:]) == ["MESSAGE"] * 5 + ["REOPENED"], kinds
