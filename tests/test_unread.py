"""Unread state per member: counts that follow customer messages and marks, READ events for
the reader's own tabs only, and refusals that change nothing."""

from __future__ import annotations

from tests.world import grab_desk, new_org, support_desk
from tests.ws import Subscriber

MARK = """mutation($i: MarkConversationReadInput!) { markConversationRead(input: $i) {
    conversation { id unreadCount lastReadAt } errors { code field } } }"""
STATE = """query($id: ID!) { conversation(id: $id) { unreadCount lastReadAt status
    messages { edges { node { id kind text } } } } }"""
ROWS = "{ conversations(first: 100) { edges { node { id unreadCount lastReadAt } } } }"
BADGES = "{ conversationCounts { status count unread } }"
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
GRAB = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { message { id } errors { code } } }"
NOTE = "mutation($i: AddNoteInput!) { addNote(input: $i) { message { id } errors { code } } }"


async def state(org, cid, person):
    return (await org.gql(STATE, {"id": cid}, as_=person))["conversation"]


async def unread(org, cid, person) -> int:
    return (await state(org, cid, person))["unreadCount"]


async def mark(org, cid, message_id, person) -> dict:
    return (await org.gql(MARK, {"i": {"conversationId": cid, "upToMessageId": message_id}}, as_=person))[
        "markConversationRead"
    ]


async def badges(org, person) -> dict[str, tuple[int, int]]:
    rows = (await org.gql(BADGES, as_=person))["conversationCounts"]
    return {r["status"]: (r["count"], r["unread"]) for r in rows}


async def test_unread_counts_follow_customer_messages_and_each_members_mark(server):
    org, _, (ann, bob), channel = await support_desk(server, "ann", "bob")
    first = await org.customer_writes(channel, "c1", "Hello")
    cid = first["conversationId"]
    second = await org.customer_writes(channel, "c1", "Anyone?")
    for person in (ann, bob, org.owner):
        assert await unread(org, cid, person) == 2
        assert (await state(org, cid, person))["lastReadAt"] is None
    assert (await badges(org, ann))["REP_NEEDED"] == (1, 1)

    # ann joins (a system line), replies and writes a note: none of it is unread for anyone
    assert (await org.gql(JOIN, {"id": cid}, as_=ann))["joinConversation"]["errors"] == []
    sent = (await org.gql(SEND, {"i": {"conversationId": cid, "text": "Here!"}}, as_=ann))["sendMessage"]
    assert (await org.gql(NOTE, {"i": {"conversationId": cid, "text": "VIP"}}, as_=bob))["addNote"]["errors"] == []
    assert await unread(org, cid, ann) == 2 and await unread(org, cid, bob) == 2

    # ann reads up to her reply: nothing unread for her, bob keeps his
    marked = await mark(org, cid, sent["message"]["id"], ann)
    assert marked["errors"] == [] and marked["conversation"]["unreadCount"] == 0
    read_at = marked["conversation"]["lastReadAt"]
    assert read_at is not None
    assert await unread(org, cid, ann) == 0 and await unread(org, cid, bob) == 2
    rows = {r["node"]["id"]: r["node"] for r in (await org.gql(ROWS, as_=ann))["conversations"]["edges"]}
    assert rows[cid] == {"id": cid, "unreadCount": 0, "lastReadAt": read_at}  # the list says the same

    # the customer writes again: one unread for ann, three for bob
    third = await org.customer_writes(channel, "c1", "Thanks, one more thing")
    assert await unread(org, cid, ann) == 1 and await unread(org, cid, bob) == 3
    assert (await badges(org, ann))["PENDING"] == (1, 1)

    # a mark never goes back: marking the first message keeps ann's later mark
    again = await mark(org, cid, first["messageId"], ann)
    assert again["errors"] == [] and again["conversation"]["unreadCount"] == 1
    # bob reads up to the second customer message: only the third is left
    assert (await mark(org, cid, second["messageId"], bob))["conversation"]["unreadCount"] == 1
    # ann reads everything
    assert (await mark(org, cid, third["messageId"], ann))["conversation"]["unreadCount"] == 0
    assert (await badges(org, ann))["PENDING"] == (1, 0)
    assert (await badges(org, bob))["PENDING"] == (1, 1)
    # the owner never marked anything
    assert await unread(org, cid, org.owner) == 3


async def test_badges_count_unread_conversations_per_status_for_the_caller(server):
    org, _, (ann,), channel = await support_desk(server, "ann")
    receipts = [await org.customer_writes(channel, f"c{i}", "Hi") for i in range(3)]
    cids = [r["conversationId"] for r in receipts]
    assert (await org.gql(JOIN, {"id": cids[0]}, as_=ann))["joinConversation"]["errors"] == []
    assert (await badges(org, ann))["REP_NEEDED"] == (2, 2) and (await badges(org, ann))["PENDING"] == (1, 1)
    await mark(org, cids[0], receipts[0]["messageId"], ann)
    await mark(org, cids[1], receipts[1]["messageId"], ann)
    mine = await badges(org, ann)
    assert mine["REP_NEEDED"] == (2, 1) and mine["PENDING"] == (1, 0)
    assert (await badges(org, org.owner))["REP_NEEDED"] == (2, 2)  # per member
    # narrowed like the badges themselves
    joined = (await org.gql("{ conversationCounts(filter: {view: JOINED}) { status unread } }", as_=ann))[
        "conversationCounts"
    ]
    assert {r["status"]: r["unread"] for r in joined}["PENDING"] == 0


async def test_read_events_reach_the_readers_other_tabs_and_nobody_else(server):
    org, _, (ann, bob), channel = await support_desk(server, "ann", "bob")
    receipt = await org.customer_writes(channel, "c1", "Hello")
    cid = receipt["conversationId"]
    shared = "subscription { conversationEvents { kind conversationId message { id } } }"
    per_member = "subscription { conversationEvents { kind conversation { unreadCount lastReadAt } } }"
    tabs = {
        "ann-1": Subscriber(server.ws_url, ann.token),
        "ann-2": Subscriber(server.ws_url, ann.token),
        "ann-3": Subscriber(server.ws_url, ann.token),
        "bob": Subscriber(server.ws_url, bob.token),
        "owner": Subscriber(server.ws_url, org.owner.token),
    }
    for name, tab in tabs.items():
        await tab.connect()
        await tab.subscribe(per_member if name == "ann-3" else shared)
    # ann's and bob's shared tabs are one stream (same operation and visibility), the rest their own
    await server.subscribed(5, streams=3)
    try:
        assert (await mark(org, cid, receipt["messageId"], ann))["errors"] == []
        for name in ("ann-1", "ann-2"):
            event = (await tabs[name].next_data())["conversationEvents"]
            assert event == {"kind": "READ", "conversationId": cid, "message": {"id": receipt["messageId"]}}
        event = (await tabs["ann-3"].next_data())["conversationEvents"]
        assert event["kind"] == "READ" and event["conversation"]["unreadCount"] == 0
        assert event["conversation"]["lastReadAt"] is not None
        # marking the same message again moves nothing: no event
        assert (await mark(org, cid, receipt["messageId"], ann))["errors"] == []
        # the next event everyone gets is the customer's next message: bob and the owner never saw a READ
        await org.customer_writes(channel, "c1", "Still there?")
        for name, tab in tabs.items():
            event = (await tab.next_data())["conversationEvents"]
            assert event["kind"] == "MESSAGE", (name, event)
        for tab in tabs.values():
            assert await tab.nothing_within(0.2)
    finally:
        for tab in tabs.values():
            await tab.close()


async def test_a_replay_gives_the_reader_their_read_events_only(server):
    org, _, (ann, bob), channel = await support_desk(server, "ann", "bob")
    receipt = await org.customer_writes(channel, "c1", "Hello")
    cid = receipt["conversationId"]
    await mark(org, cid, receipt["messageId"], ann)
    replay = 'subscription { conversationEvents(after: "0") { kind conversation { unreadCount } } }'
    async with Subscriber(server.ws_url, ann.token) as mine, Subscriber(server.ws_url, bob.token) as theirs:
        await mine.subscribe(replay)
        await theirs.subscribe(replay)
        got = [e["conversationEvents"] for e in await mine.collect(2)]
        assert got == [
            {"kind": "CREATED", "conversation": {"unreadCount": 1}},
            {"kind": "READ", "conversation": {"unreadCount": 0}},
        ]
        assert (await theirs.next_data())["conversationEvents"] == {
            "kind": "CREATED",
            "conversation": {"unreadCount": 1},
        }
        assert await mine.nothing_within(0.3) and await theirs.nothing_within(0.1)


async def test_refused_marks_change_nothing(server):
    org, team, channel, alice, bob, _boss = await grab_desk(server)
    receipt = await org.customer_writes(channel, "c1", "Hello")
    cid = receipt["conversationId"]
    other = await org.customer_writes(channel, "c2", "Me too")
    assert (await org.gql(GRAB, {"id": cid}, as_=alice))["grabConversation"]["errors"] == []
    outsider = await new_org(server, "Other")
    cases = [
        # (who, conversation, message, code, field)
        (alice, "0123456789abcdef01234567", receipt["messageId"], "NOT_FOUND", "id"),
        (alice, "not an id", receipt["messageId"], "NOT_FOUND", "id"),
        (alice, cid, other["messageId"], "NOT_FOUND", "upToMessageId"),  # another conversation's message
        (alice, cid, "0123456789abcdef01234567", "NOT_FOUND", "upToMessageId"),
        (alice, cid, "42", "INVALID_INPUT", "upToMessageId"),
        (bob, cid, receipt["messageId"], "NOT_FOUND", "id"),  # grabbed by alice: bob can't see it
        (outsider.owner, cid, receipt["messageId"], "NOT_FOUND", "id"),  # another organization
    ]
    before = await server.db.conversations.find_one({"_id": cid})
    events_before = await server.db.events.count_documents({})
    for person, conversation_id, message_id, code, field in cases:
        refused = await mark(org, conversation_id, message_id, person)
        assert refused["conversation"] is None
        assert refused["errors"] == [{"code": code, "field": field}], (conversation_id, message_id)
    assert await server.db.conversations.find_one({"_id": cid}) == before
    assert await server.db.events.count_documents({}) == events_before
    assert await unread(org, cid, alice) == 1
