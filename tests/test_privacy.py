"""Grab privacy and team membership, as the outside audit tried to break them.

Each test here reproduces one audit finding against a running server: a
replayed event leaking a grabbed chat, a close opening it to the team, a
removed member stuck in rooms, and a grab offer promising what grabbing refuses.
"""

from __future__ import annotations

from datetime import timedelta

from tests.clock import FakeClock
from tests.world import grab_desk, new_org
from tests.ws import Subscriber

GRAB = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) { errors { code } } }"""
REMOVE = """mutation($i: RemoveTeamMemberInput!) { removeTeamMember(input: $i) { errors { code } } }"""
CONVERSATION = "query($id: ID!) { conversation(id: $id) { id status owner { id } representatives { id } } }"
REPLAY = """subscription($after: ID, $f: ConversationFilter) { conversationEvents(after: $after, filter: $f) {
    id kind conversationId conversation { id status owner { name }
        messages(last: 10) { edges { node { text } } } } } }"""
NOTIFICATIONS = "{ notifications { edges { node { kind canGrab conversationId } } } }"


async def grab_team(server):
    return await grab_desk(server, "LINE")


async def test_a_replay_never_shows_the_loser_what_the_winner_of_a_grab_wrote(server):
    org, team, channel, alice, bob, boss = await grab_team(server)
    cid = (await org.customer_writes(channel, "c1", "hello, anyone?"))["conversationId"]
    assert (await org.gql(GRAB, {"id": cid}, as_=alice))["grabConversation"]["errors"] == []
    assert (await org.gql(SEND, {"i": {"conversationId": cid, "text": "alice's private reply"}}, as_=alice))[
        "sendMessage"
    ]["errors"] == []
    await org.customer_writes(channel, "c1", "my card number is ...")

    async with Subscriber(server.ws_url, bob.token) as sub:
        await sub.subscribe(REPLAY, {"after": "0"})
        got = [(await sub.next_data())["conversationEvents"]]
        assert await sub.nothing_within(0.5)
    # bob learns the conversation is hidden from him, and nothing else: no CREATED with today's messages
    assert [(e["kind"], e["conversationId"], e["conversation"]) for e in got] == [("HIDDEN", cid, None)]

    async with Subscriber(server.ws_url, alice.token) as sub:  # the owner replays everything, as it was then
        await sub.subscribe(REPLAY, {"after": "0"})
        events = [e["conversationEvents"] for e in await sub.collect(4)]
    assert [e["kind"] for e in events] == ["CREATED", "GRABBED", "MESSAGE", "MESSAGE"]
    texts = [[m["node"]["text"] for m in e["conversation"]["messages"]["edges"]] for e in events]
    assert texts == [
        ["hello, anyone?"],
        ["hello, anyone?"],
        ["hello, anyone?", "alice's private reply"],
        ["hello, anyone?", "alice's private reply", "my card number is ..."],
    ]
    assert events[0]["conversation"]["owner"] is None and events[1]["conversation"]["owner"] == {"name": "alice"}


async def test_a_replayed_event_shows_the_status_it_was_judged_with(make_server):
    clock = FakeClock()
    server = await make_server(clock=clock)
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"), "LINE")
    cid = (await org.customer_writes(channel, "late", "waiting"))["conversationId"]
    clock.advance(10 * 60)  # the customer has waited ten minutes
    assert (await org.gql(CONVERSATION, {"id": cid}))["conversation"]["status"] == "OVERDUE"
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(REPLAY, {"after": "0", "f": {"statuses": ["REP_NEEDED"]}})
        created = (await sub.next_data())["conversationEvents"]
    # the event was judged REP_NEEDED when it happened, and is shown so, not with today's status
    assert created["kind"] == "CREATED" and created["conversation"]["status"] == "REP_NEEDED"


async def test_a_conversation_closed_by_silence_stays_private_to_its_owner(make_server):
    server = await make_server(sweep_interval_s=3600)
    org, team, channel, alice, bob, boss = await grab_team(server)
    cid = (await org.customer_writes(channel, "quiet", "hi"))["conversationId"]
    assert (await org.gql(GRAB, {"id": cid}, as_=alice))["grabConversation"]["errors"] == []
    later = server.services.clock() + timedelta(seconds=server.settings.thresholds.auto_close_after_s + 60)
    assert await server.app.state.runtime.sweeper.sweep(later) == 1
    stored = await server.db.conversations.find_one({"_id": cid})
    assert stored["closed_reason"] == "INACTIVITY" and stored["owner_id"] == alice.id
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=bob))["conversation"] is None
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=boss))["conversation"]["owner"] == {"id": alice.id}
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=alice))["conversation"]["status"] == "CLOSED"


async def test_removing_a_member_releases_their_grabs_and_takes_them_out_of_the_rooms(server):
    org, team, channel, alice, bob, boss = await grab_team(server)
    collab = await org.team("Collab")
    await org.add(collab, alice)
    collab_channel = await org.channel(collab, "FACEBOOK", "FB")
    grabbed = (await org.customer_writes(channel, "g", "grab me"))["conversationId"]
    joined = (await org.customer_writes(collab_channel, "j", "join me"))["conversationId"]
    assert (await org.gql(GRAB, {"id": grabbed}, as_=alice))["grabConversation"]["errors"] == []
    assert (await org.gql(JOIN, {"id": joined}, as_=alice))["joinConversation"]["errors"] == []

    async with Subscriber(server.ws_url, bob.token) as sub:
        await sub.subscribe("subscription { notificationReceived { kind canGrab conversationId } }")
        await server.subscribed(1)
        for team_id in (team, collab):
            removed = await org.gql(REMOVE, {"i": {"teamId": team_id, "memberId": alice.id}})
            assert removed["removeTeamMember"]["errors"] == []
        # bob is offered the released conversation again, and can take it
        offer = (await sub.next_data())["notificationReceived"]
        assert offer == {"kind": "GRAB_OFFER", "canGrab": True, "conversationId": grabbed}
    for cid in (grabbed, joined):
        found = (await org.gql(CONVERSATION, {"id": cid}))["conversation"]
        assert found["owner"] is None and found["representatives"] == [] and found["status"] == "REP_NEEDED"
    # alice hears nothing more of either conversation
    before = await server.db.notifications.count_documents({"member_id": alice.id})
    await org.customer_writes(channel, "g", "still there?")
    await org.customer_writes(collab_channel, "j", "hello?")
    assert await server.db.notifications.count_documents({"member_id": alice.id}) == before
    assert (await org.gql(GRAB, {"id": grabbed}, as_=bob))["grabConversation"]["errors"] == []


async def test_can_grab_says_what_grabbing_would_answer(server):
    org, team, channel, alice, bob, boss = await grab_team(server)
    org_admin = await org.member("org-admin", "ADMIN")
    await org.add(team, org_admin)  # an org admin who is also a representative never grabs
    cid = (await org.customer_writes(channel, "c", "who's there?"))["conversationId"]

    async def offer(person) -> bool:
        edges = (await org.gql(NOTIFICATIONS, as_=person))["notifications"]["edges"]
        return [e["node"]["canGrab"] for e in edges if e["node"]["conversationId"] == cid] == [True]

    assert await offer(alice) and await offer(bob)
    assert not await offer(org_admin) and not await offer(boss)
    assert (await org.gql(GRAB, {"id": cid}, as_=org_admin))["grabConversation"]["errors"] == [{"code": "FORBIDDEN"}]
    # once closed, nobody can take it
    await org.gql("mutation($id: ID!) { closeConversation(id: $id) { errors { code } } }", {"id": cid})
    assert not await offer(alice) and not await offer(bob)
    assert (await org.gql(GRAB, {"id": cid}, as_=alice))["grabConversation"]["errors"] == [
        {"code": "CONVERSATION_CLOSED"}
    ]


async def test_a_replay_shows_the_old_team_only_that_a_transferred_conversation_is_gone(server):
    org, team, channel, alice, bob, boss = await grab_team(server)
    front = await org.team("Front")
    ann = await org.member("ann")
    await org.add(front, ann)
    cid = (await org.customer_writes(await org.channel(front, "WEB_WIDGET", "Site"), "c1", "hi"))["conversationId"]
    assert (await org.gql(JOIN, {"id": cid}, as_=ann))["joinConversation"]["errors"] == []
    moved = await org.gql(
        """mutation($i: TransferConversationInput!) { transferConversation(input: $i) { errors { code } } }""",
        {"i": {"id": cid, "toTeamId": team, "toMemberId": alice.id, "note": "for alice only"}},
    )
    assert moved["transferConversation"]["errors"] == []
    assert (await org.gql(SEND, {"i": {"conversationId": cid, "text": "alice's private reply"}}, as_=alice))[
        "sendMessage"
    ]["errors"] == []
    await org.customer_writes(await org.channel(front, "LINE", "Line"), "other", "unrelated")

    async with Subscriber(server.ws_url, ann.token) as sub:
        await sub.subscribe(REPLAY, {"after": "0"})
        got = [(await sub.next_data())["conversationEvents"] for _ in range(2)]
        assert await sub.nothing_within(0.5)
    # ann learns it is gone, and nothing of what came before or after the transfer (her own join included)
    assert [(e["kind"], e["conversationId"], e["conversation"]) for e in got][0] == ("HIDDEN", cid, None)
    assert got[1]["kind"] == "CREATED" and got[1]["conversationId"] != cid
    # bob, a representative of the team it went to, never saw it and sees nothing of it now
    async with Subscriber(server.ws_url, bob.token) as sub:
        await sub.subscribe(REPLAY, {"after": "0"})
        assert await sub.nothing_within(0.5)
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=bob))["conversation"] is None
