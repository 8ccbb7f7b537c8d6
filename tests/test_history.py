"""System lines: joins, leaves, grabs, closes and reopens read in `messages` like a chat log,
in order, saying who did what, without moving the conversation's status or place in the list."""

from __future__ import annotations

from domain.status import Thresholds
from tests.clock import FakeClock
from tests.world import grab_desk, new_org, support_desk
from tests.ws import Subscriber

HISTORY = """query($id: ID!, $last: Int, $before: String) { conversation(id: $id) { status lastMessageAt
    lastMessage { text } messages(last: $last, before: $before) {
        pageInfo { hasPreviousPage startCursor }
        edges { node { seq kind text sender { kind member { name } }
            system { action actor { name } target { name } } } } } } }"""
REMOVE = """mutation($i: RemoveTeamMemberInput!) { removeTeamMember(input: $i) { errors { code } } }"""
CALM = Thresholds(soon_after_s=600, overdue_after_s=1200, auto_close_after_s=3600, presence_timeout_s=600)


async def act(org, action: str, cid: str, person) -> None:
    data = await org.gql(f"mutation($id: ID!) {{ {action}(id: $id) {{ errors {{ code }} }} }}", {"id": cid}, as_=person)
    assert data[action]["errors"] == [], (action, data)


async def history(org, cid, person, last: int = 50, before: str | None = None) -> dict:
    return (await org.gql(HISTORY, {"id": cid, "last": last, "before": before}, as_=person))["conversation"]


def lines(found: dict) -> list[tuple]:
    """(kind, text, action, actor, target) of each message, oldest first."""
    rows = []
    for edge in found["messages"]["edges"]:
        node = edge["node"]
        system = node["system"] or {}
        rows.append(
            (
                node["kind"],
                node["text"],
                system.get("action"),
                (system.get("actor") or {}).get("name"),
                (system.get("target") or {}).get("name"),
            )
        )
    return rows


async def test_room_actions_read_like_a_chat_log_in_order(server):
    org, _, (ann, bob), channel = await support_desk(server, "ann", "bob", channel_type="WEB_WIDGET")
    cid = (await org.customer_writes(channel, "c1", "Hello", customer={"name": "Cleo"}))["conversationId"]
    start = await history(org, cid, ann)
    await act(org, "joinConversation", cid, ann)
    await act(org, "joinConversation", cid, ann)  # joining again is a no-op: no second line
    assert (await history(org, cid, ann))["status"] == "PENDING"  # a line is no answer
    await act(org, "leaveConversation", cid, ann)
    await act(org, "joinConversation", cid, bob)
    await act(org, "closeConversation", cid, org.owner)
    closed = await history(org, cid, bob)
    assert closed["status"] == "CLOSED"
    # nothing but the customer's message moved the conversation in the list, nor is the last message
    assert closed["lastMessageAt"] == start["lastMessageAt"] and closed["lastMessage"] == {"text": "Hello"}
    await org.customer_writes(channel, "c1", "Hello again")
    found = await history(org, cid, bob)
    assert found["status"] == "REP_NEEDED" and found["lastMessage"] == {"text": "Hello again"}
    assert lines(found) == [
        ("TEXT", "Hello", None, None, None),
        ("SYSTEM", "ann joined the conversation.", "JOINED", "ann", None),
        ("SYSTEM", "ann left the conversation.", "LEFT", "ann", None),
        ("SYSTEM", "bob joined the conversation.", "JOINED", "bob", None),
        ("SYSTEM", "Owner closed the conversation.", "CLOSED", "Owner", None),
        ("TEXT", "Hello again", None, None, None),
        ("SYSTEM", "Cleo wrote again: the conversation reopened.", "REOPENED", None, None),
    ]
    seqs = [e["node"]["seq"] for e in found["messages"]["edges"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {e["node"]["sender"]["kind"] for e in found["messages"]["edges"] if e["node"]["system"]} == {"SYSTEM"}

    # paging by `before` walks the same history, lines included
    newest = await history(org, cid, bob, last=3)
    older = await history(org, cid, bob, last=10, before=newest["messages"]["pageInfo"]["startCursor"])
    assert lines(older) + lines(newest) == lines(found)
    assert newest["messages"]["pageInfo"]["hasPreviousPage"] is True
    assert older["messages"]["pageInfo"]["hasPreviousPage"] is False


async def test_grab_release_and_removal_say_who_did_it_and_to_whom(server):
    org, team, channel, alice, bob, boss = await grab_desk(server, "LINE")
    cid = (await org.customer_writes(channel, "c1", "Hello"))["conversationId"]
    await act(org, "grabConversation", cid, alice)
    await act(org, "leaveConversation", cid, alice)  # the owner leaving releases it
    await act(org, "grabConversation", cid, bob)
    removed = await org.gql(REMOVE, {"i": {"teamId": team, "memberId": bob.id}})
    assert removed["removeTeamMember"]["errors"] == []
    assert lines(await history(org, cid, boss))[1:] == [
        ("SYSTEM", "alice grabbed the conversation.", "GRABBED", "alice", None),
        ("SYSTEM", "alice left and released the conversation.", "RELEASED", "alice", None),
        ("SYSTEM", "bob grabbed the conversation.", "GRABBED", "bob", None),
        (
            "SYSTEM",
            "bob left and released the conversation (taken out of the team by Owner).",
            "RELEASED",
            "Owner",
            "bob",
        ),
    ]


async def test_an_inactivity_close_is_written_by_the_sweeper_without_an_actor(make_server):
    clock = FakeClock()
    server = await make_server(clock=clock, thresholds=CALM, sweep_interval_s=3600)
    org, _, (ann,), channel = await support_desk(server, "ann")
    cid = (await org.customer_writes(channel, "c1", "Hello"))["conversationId"]
    await act(org, "joinConversation", cid, ann)
    clock.advance(CALM.auto_close_after_s + 1)
    assert await server.sweep() == 1
    assert lines(await history(org, cid, ann))[-1] == (
        "SYSTEM",
        "The conversation closed after a period without customer messages.",
        "CLOSED",
        None,
        None,
    )


async def test_lines_arrive_live_and_inside_the_events_that_wrote_them(server):
    org, _, (ann,), channel = await support_desk(server, "ann")
    cid = (await org.customer_writes(channel, "c1", "Hello"))["conversationId"]
    events = """subscription { conversationEvents { kind conversation {
        messages(last: 5) { edges { node { kind text } } } } } }"""
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(events)
        await server.subscribed(1)
        await act(org, "joinConversation", cid, ann)
        event = (await sub.next_data())["conversationEvents"]
    assert event["kind"] == "JOINED"
    assert [e["node"]["text"] for e in event["conversation"]["messages"]["edges"]] == [
        "Hello",
        "ann joined the conversation.",
    ]


async def test_lines_never_move_a_conversation_while_the_list_is_paged(server):
    """A conversation that moves while an agent pages is placed by its last message as of when
    paging began: a system line written after that message must not count as one."""
    org = await new_org(server)
    team = await org.team("Support")
    channel = await org.channel(team, "LINE")
    cids = [(await org.customer_writes(channel, f"c{i}", "Hi"))["conversationId"] for i in range(3)]
    await act(org, "joinConversation", cids[0], org.owner)  # the oldest gets a line, newer than them all
    listing = """query($after: String) { conversations(first: 1, after: $after) {
        edges { node { id } } pageInfo { hasNextPage endCursor } } }"""
    seen, after = [], None
    while True:
        page = (await org.gql(listing, {"after": after}))["conversations"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if len(seen) == 1:  # after the first page, the oldest one's customer writes: it moves
            await org.customer_writes(channel, "c0", "Me again")
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(cids) and len(seen) == 3


async def test_transfers_and_releases_are_in_the_history_too(server):
    org, team, channel, alice, bob, boss = await grab_desk(server, "LINE")
    front = await org.team("Front")
    cid = (await org.customer_writes(channel, "c1", "Hello"))["conversationId"]
    transfer = """mutation($i: TransferConversationInput!) { transferConversation(input: $i) { errors { code } } }"""
    handed = await org.gql(transfer, {"i": {"id": cid, "toMemberId": alice.id}}, as_=boss)
    assert handed["transferConversation"]["errors"] == []
    await act(org, "releaseConversation", cid, boss)  # an admin gives it back for its owner
    moved = await org.gql(transfer, {"i": {"id": cid, "toTeamId": front, "note": "Asks for a quote"}})
    assert moved["transferConversation"]["errors"] == []
    assert lines(await history(org, cid, org.owner))[1:] == [
        ("SYSTEM", "boss transferred the conversation to alice.", "TRANSFERRED", "boss", "alice"),
        ("SYSTEM", "boss released the conversation back to the team.", "RELEASED", "boss", "alice"),
        (
            "SYSTEM",
            "Owner transferred the conversation to Front. Note: Asks for a quote",
            "TRANSFERRED",
            "Owner",
            None,
        ),
    ]
