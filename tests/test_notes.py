"""Internal notes: members see them, customers never get them, nothing about the conversation's
state moves, and `@name` mentions tell exactly the members who can see the conversation."""

from __future__ import annotations

from domain.messages import customer_can_see
from tests.world import grab_desk, new_org
from tests.ws import Subscriber

NOTE = """mutation($i: AddNoteInput!) { addNote(input: $i) {
    message { id kind text seq deliveries { via status } sender { kind member { name } } }
    conversation { id status waitingSince lastMessage { id } }
    errors { code field } } }"""
CONVERSATION = """query($id: ID!) { conversation(id: $id) { status waitingSince lastMessageAt lastMessage { id text }
    emailFallbackActive messages { edges { node { id kind text sender { kind } } } } } }"""
NOTIFICATIONS = "{ notifications { edges { node { kind conversationId } } } }"
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { message { id } errors { code field } } }"
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
GRAB = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"


async def note(org, cid, text, person) -> dict:
    return (await org.gql(NOTE, {"i": {"conversationId": cid, "text": text}}, as_=person))["addNote"]


async def conversation(org, cid, person) -> dict:
    return (await org.gql(CONVERSATION, {"id": cid}, as_=person))["conversation"]


async def notifications(org, person) -> list[tuple[str, str]]:
    edges = (await org.gql(NOTIFICATIONS, as_=person))["notifications"]["edges"]
    return [(e["node"]["kind"], e["node"]["conversationId"]) for e in edges]


async def test_a_note_is_for_members_never_for_the_customer_and_moves_nothing(server):
    org = await new_org(server)
    team = await org.team("Support")
    ann = await org.member("ann")
    await org.add(team, ann)
    channel = await org.channel(team, "WEB_WIDGET")
    # an offline web-widget customer with an email: a reply would go out by email
    receipt = await org.customer_writes(channel, "c1", "Hello", customer={"email": "cus@example.com"})
    cid = receipt["conversationId"]
    before = await conversation(org, cid, ann)
    assert before["status"] == "REP_NEEDED" and before["emailFallbackActive"] is True

    async with Subscriber(server.ws_url, org.owner.token) as chat:
        await chat.subscribe("subscription($id: ID) { messageAdded(conversationId: $id) { kind text } }", {"id": cid})
        await server.subscribed(1)
        added = await note(org, cid, "Known customer, be gentle", ann)  # ann is not even in the room
        assert (await chat.next_data())["messageAdded"] == {"kind": "NOTE", "text": "Known customer, be gentle"}

    assert added["errors"] == []
    message = added["message"]
    assert message["kind"] == "NOTE" and message["deliveries"] == []
    assert message["sender"] == {"kind": "MEMBER", "member": {"name": "ann"}}
    # not an answer: still waiting, same status, same last message
    assert added["conversation"]["status"] == "REP_NEEDED"
    assert added["conversation"]["waitingSince"] == before["waitingSince"]
    after = await conversation(org, cid, ann)
    assert (after["status"], after["waitingSince"], after["lastMessage"], after["lastMessageAt"]) == (
        before["status"],
        before["waitingSince"],
        before["lastMessage"],
        before["lastMessageAt"],
    )
    assert [(m["node"]["kind"], m["node"]["text"]) for m in after["messages"]["edges"]] == [
        ("TEXT", "Hello"),
        ("NOTE", "Known customer, be gentle"),
    ]
    # never delivered: no outbox job, and the customer's view of the history leaves it out
    stored = await server.db.messages.find_one({"_id": message["id"]})
    assert not stored.get("deliveries") and "outbox_due" not in stored and "outbox_order" not in stored
    page = await server.services.store.messages_page(cid, 10, None, for_customer=True)
    assert [m.text for m in page] == ["Hello"]
    assert [customer_can_see(m) for m in await server.services.store.messages_page(cid, 10, None)] == [False, True]

    # a real reply after it still answers, and is the last message
    assert (await org.gql(JOIN, {"id": cid}, as_=ann))["joinConversation"]["errors"] == []
    reply = await org.gql(SEND, {"i": {"conversationId": cid, "text": "Hi!"}}, as_=ann)
    assert reply["sendMessage"]["errors"] == []
    answered = await conversation(org, cid, ann)
    assert answered["status"] == "REPLIED" and answered["lastMessage"]["text"] == "Hi!"
    # a note can't be sent as a message
    refused = await org.gql(SEND, {"i": {"conversationId": cid, "kind": "NOTE", "text": "x"}}, as_=ann)
    assert refused["sendMessage"]["errors"] == [{"code": "INVALID_INPUT", "field": "kind"}]


async def test_mentions_notify_only_members_who_can_see_the_conversation(server):
    org, team, channel, alice, bob, boss = await grab_desk(server, "LINE")
    elsewhere = await org.team("Elsewhere")
    carol = await org.member("carol")
    await org.add(elsewhere, carol)
    grabbed = (await org.customer_writes(channel, "c1", "Hello"))["conversationId"]
    unowned = (await org.customer_writes(channel, "c2", "Hi"))["conversationId"]
    assert (await org.gql(GRAB, {"id": grabbed}, as_=alice))["grabConversation"]["errors"] == []
    people = (alice, bob, boss, carol, org.owner)
    seen = {p.id: len(await notifications(org, p)) for p in people}

    async with Subscriber(server.ws_url, alice.token) as alices:
        await alices.subscribe("subscription { notificationReceived { kind conversationId } }")
        await server.subscribed(1)
        # the team admin writes on alice's grabbed conversation, mentioning everyone
        added = await note(
            org, grabbed, "@alice please check; @bob @carol @Owner fyi, ask @boss. bob@example.com", boss
        )
        assert added["errors"] == []
        assert (await alices.next_data())["notificationReceived"] == {"kind": "MENTION", "conversationId": grabbed}

    new = {}
    for person in people:  # newest first: what came after the grab
        found = await notifications(org, person)
        new[person.id] = found[: len(found) - seen[person.id]]
    assert new[alice.id] == [("MENTION", grabbed)]
    assert new[org.owner.id] == [("MENTION", grabbed)]  # owners see every conversation
    assert new[bob.id] == []  # a representative who can't see alice's grabbed conversation
    assert new[carol.id] == []  # not in the team
    assert new[boss.id] == []  # the author

    # on the unowned one bob (a representative of the GRAB team) can see it, so he is told
    assert (await note(org, unowned, "@Bob can you grab this?", alice))["errors"] == []
    assert (await notifications(org, bob))[0] == ("MENTION", unowned)


async def test_refused_notes_store_nothing(server):
    org, team, channel, alice, bob, _boss = await grab_desk(server, "LINE")
    cid = (await org.customer_writes(channel, "c1", "Hello"))["conversationId"]
    assert (await org.gql(GRAB, {"id": cid}, as_=alice))["grabConversation"]["errors"] == []
    outsider = await new_org(server, "Other")
    cases = [
        (alice, cid, "", "INVALID_INPUT", "text"),
        (alice, cid, "   ", "INVALID_INPUT", "text"),
        (alice, cid, "x" * 4097, "INVALID_INPUT", "text"),
        (alice, cid, "bad \x00 byte", "INVALID_INPUT", "text"),
        (alice, "0123456789abcdef01234567", "hello", "NOT_FOUND", "id"),
        (alice, "nope", "hello", "NOT_FOUND", "id"),
        (bob, cid, "hello", "NOT_FOUND", "id"),  # grabbed by alice
        (outsider.owner, cid, "hello", "NOT_FOUND", "id"),  # another organization
    ]
    conversation_before = await server.db.conversations.find_one({"_id": cid})
    messages_before = await server.db.messages.count_documents({"conversation_id": cid})
    notifications_before = await server.db.notifications.count_documents({})
    for person, conversation_id, text, code, field in cases:
        refused = await note(org, conversation_id, text, person)
        assert refused["message"] is None and refused["conversation"] is None
        assert refused["errors"] == [{"code": code, "field": field}], (conversation_id, text[:10])
    assert await server.db.conversations.find_one({"_id": cid}) == conversation_before
    assert await server.db.messages.count_documents({"conversation_id": cid}) == messages_before
    assert await server.db.notifications.count_documents({}) == notifications_before


async def test_the_web_widget_visitor_never_sees_notes_nor_system_lines(make_server):
    from tests.test_widget_api import CALM, EVENTS, MARK_READ, MESSAGES, next_event, visit, widget_desk
    from tests.test_widget_api import widget_subscribed as following

    server = await make_server(thresholds=CALM)
    desk = await widget_desk(server)
    visitor = await visit(server, desk.key, name="Carol")
    async with visitor.socket() as widget:
        await widget.subscribe(EVENTS)
        await following(server)
        mine = await visitor.send("Hello?")
        assert (await next_event(widget))["message"]["id"] == mine["id"]  # their own, for their other tabs
        cid = (await desk.org.gql("{ conversations { edges { node { id } } } }"))["conversations"]["edges"][0]["node"][
            "id"
        ]
        assert (await desk.org.gql(JOIN, {"id": cid}, as_=desk.agent))["joinConversation"]["errors"] == []
        secret = await note(desk.org, cid, "Do not offer a discount", desk.agent)
        assert secret["errors"] == []
        reply = await desk.org.gql(SEND, {"i": {"conversationId": cid, "text": "Hi Carol"}}, as_=desk.agent)
        # the next thing the widget hears is the reply: not the join line, not the note
        event = await next_event(widget)
        assert (event["kind"], event["message"]["text"]) == ("MESSAGE", "Hi Carol")
        assert event["message"]["id"] == reply["sendMessage"]["message"]["id"]
    page = (await visitor.gql(MESSAGES))["messages"]
    assert [e["node"]["text"] for e in page["edges"]] == ["Hello?", "Hi Carol"]
    refused = (await visitor.gql(MARK_READ, {"id": secret["message"]["id"]}))["markRead"]
    assert refused["errors"] == [{"code": "NOT_FOUND", "field": "upToMessageId"}]
