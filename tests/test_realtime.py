"""Subscriptions over real WebSockets: who receives what, and nothing lost."""

import asyncio
import time
from datetime import timedelta

import pytest
import websockets
from pymongo import monitoring

from domain.status import Thresholds
from tests.clock import FakeClock
from tests.world import grab_desk, login, new_org, support_desk
from tests.ws import Subscriber

EVENTS = """subscription($f: ConversationFilter, $after: ID) { conversationEvents(filter: $f, after: $after) {
    id kind conversationId previousStatus conversation { id status } } }"""
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
GRAB = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"


async def grab_world(server):
    org, team, channel, alice, bob, boss = await grab_desk(server)
    other_team = await org.team("Elsewhere")
    carol = await org.member("carol")
    await org.add(other_team, carol)
    return org, team, channel, alice, bob, boss, carol


async def test_events_reach_the_right_subscribers_and_hidden_on_grab(server):
    org, team, channel, alice, bob, boss, carol = await grab_world(server)
    outsider = await new_org(server, "Other")
    subs = {
        name: Subscriber(server.ws_url, person.token)
        for name, person in (
            ("alice", alice),
            ("bob", bob),
            ("boss", boss),
            ("carol", carol),
            ("outsider", outsider.owner),
        )
    }
    for sub in subs.values():
        await sub.connect()
        await sub.subscribe(EVENTS)
    receipt = await org.customer_writes(channel, "c1", "hi")
    cid = receipt["conversationId"]
    for name in ("alice", "bob", "boss"):
        event = (await subs[name].next_data())["conversationEvents"]
        assert event["kind"] == "CREATED" and event["conversationId"] == cid
        assert event["conversation"]["status"] == "REP_NEEDED"
    await org.gql(GRAB, {"id": cid}, as_=alice)
    assert (await subs["alice"].next_data())["conversationEvents"]["kind"] == "GRABBED"
    assert (await subs["boss"].next_data())["conversationEvents"]["kind"] == "GRABBED"
    hidden = (await subs["bob"].next_data())["conversationEvents"]
    assert hidden == {
        "id": hidden["id"],
        "kind": "HIDDEN",
        "conversationId": cid,
        "previousStatus": None,
        "conversation": None,
    }
    # after the grab, bob sees nothing of this conversation any more
    await org.customer_writes(channel, "c1", "private now")
    assert (await subs["alice"].next_data())["conversationEvents"]["kind"] == "MESSAGE"
    assert await subs["bob"].nothing_within(0.8)
    assert await subs["carol"].nothing_within(0.1)
    assert await subs["outsider"].nothing_within(0.1)
    for sub in subs.values():
        await sub.close()


async def test_each_event_kind_is_delivered(server):
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("agent")
    await org.add(team, agent)
    channel = await org.channel(team, "WEB_WIDGET")
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(
            EVENTS, {"f": {"statuses": ["REP_NEEDED", "PENDING", "SOON_TO_BE", "OVERDUE", "CLOSED", "ONLINE"]}}
        )
        await server.subscribed(1)
        cid = (await org.customer_writes(channel, "c1", "hi"))["conversationId"]
        await org.gql(JOIN, {"id": cid}, as_=agent)
        await org.customer_writes(channel, "c1", "still there?")
        await server.presence(channel.id, channel.key, {"customer": {"externalId": "c1"}, "online": True})
        await org.gql(
            """mutation($i: UpdateCustomerInput!) { updateCustomer(input: $i) { errors { code } } }""",
            {"i": {"id": cid, "name": "Renamed"}},
            as_=agent,
        )
        await org.gql("mutation($id: ID!) { leaveConversation(id: $id) { errors { code } } }", {"id": cid}, as_=agent)
        await org.gql("mutation($id: ID!) { closeConversation(id: $id) { errors { code } } }", {"id": cid})
        await org.customer_writes(channel, "c1", "back again")
        kinds = [e["conversationEvents"]["kind"] for e in await sub.collect(8)]
        assert kinds == ["CREATED", "JOINED", "MESSAGE", "PRESENCE", "CUSTOMER_UPDATED", "LEFT", "CLOSED", "REOPENED"]


async def test_message_added_for_the_chat_pane(server):
    org = await new_org(server)
    team = await org.team("Support")
    channel = await org.channel(team, "LINE")
    cid = (await org.customer_writes(channel, "c1", "first"))["conversationId"]
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(
            """subscription($id: ID) { messageAdded(conversationId: $id) {
            text sender { kind } } }""",
            {"id": cid},
        )
        await server.subscribed(1)
        await org.customer_writes(channel, "c2", "another conversation")
        await org.customer_writes(channel, "c1", "second")
        await org.gql(JOIN, {"id": cid})
        await org.gql(
            """mutation($i: SendMessageInput!) { sendMessage(input: $i) { errors { code } } }""",
            {"i": {"conversationId": cid, "text": "agent reply"}},
        )
        got = [m["messageAdded"] for m in await sub.collect(3)]
        assert got == [
            {"text": "second", "sender": {"kind": "CUSTOMER"}},
            {"text": "Owner joined the conversation.", "sender": {"kind": "SYSTEM"}},  # the history's line
            {"text": "agent reply", "sender": {"kind": "MEMBER"}},
        ]


async def test_notifications_fan_out_by_team_mode_and_role(server):
    org, team, channel, alice, bob, boss, carol = await grab_world(server)
    collab = await org.team("Collab")
    dave = await org.member("dave")
    await org.add(collab, dave)
    collab_channel = await org.channel(collab, "FACEBOOK", "FB")
    NOTIF = "subscription { notificationReceived { kind canGrab conversationId } }"
    async with Subscriber(server.ws_url, bob.token) as bob_sub, Subscriber(server.ws_url, boss.token) as boss_sub:
        await bob_sub.subscribe(NOTIF)
        await boss_sub.subscribe(NOTIF)
        await server.subscribed(2)
        cid = (await org.customer_writes(channel, "g1", "grab me"))["conversationId"]
        assert (await bob_sub.next_data())["notificationReceived"] == {
            "kind": "GRAB_OFFER",
            "canGrab": True,
            "conversationId": cid,
        }
        assert (await boss_sub.next_data())["notificationReceived"]["canGrab"] is False
    await org.customer_writes(collab_channel, "f1", "collab")
    query = "{ notifications { edges { node { id kind canGrab read } } } }"
    dave_notes = (await org.gql(query, as_=dave))["notifications"]["edges"]
    assert [n["node"]["kind"] for n in dave_notes] == ["NEW_CONVERSATION"]
    assert (await org.gql(query, as_=carol))["notifications"]["edges"] == []
    # alice grabs: bob's offer resolves and his grab answers ALREADY_GRABBED
    assert (await org.gql(GRAB, {"id": cid}, as_=alice))["grabConversation"]["errors"] == []
    bob_notes = (await org.gql(query, as_=bob))["notifications"]["edges"]
    assert [(n["node"]["kind"], n["node"]["canGrab"]) for n in bob_notes] == [("GRAB_OFFER", False)]
    assert (await org.gql(GRAB, {"id": cid}, as_=bob))["grabConversation"]["errors"] == [{"code": "ALREADY_GRABBED"}]
    # a customer message notifies the room; marking read sticks
    await org.customer_writes(channel, "g1", "hello owner")
    alice_notes = (await org.gql("{ notifications(unreadOnly: true) { edges { node { id kind } } } }", as_=alice))[
        "notifications"
    ]["edges"]
    assert [n["node"]["kind"] for n in alice_notes] == ["NEW_MESSAGE", "GRAB_OFFER"]
    ids = [n["node"]["id"] for n in alice_notes]
    marked = await org.gql(
        """mutation($i: MarkNotificationsReadInput!) { markNotificationsRead(input: $i) {
        updated errors { code } } }""",
        {"i": {"ids": ids + [bob_notes[0]["node"]["id"]]}},
        as_=alice,
    )
    assert marked["markNotificationsRead"] == {"updated": 2, "errors": []}
    left = await org.gql("{ notifications(unreadOnly: true) { edges { node { id } } } }", as_=alice)
    assert left["notifications"]["edges"] == []


async def test_timer_events_arrive_within_two_seconds_without_mutations(make_server):
    """The real periodic sweeper on the real clock: thresholds as short as a loaded machine allows
    (each sweep must run between two of them, or the middle status is never announced)."""
    server = await make_server(
        thresholds=Thresholds(soon_after_s=0.6, overdue_after_s=1.2, auto_close_after_s=1.8, presence_timeout_s=60),
        sweep_interval_s=0.1,
    )
    org, team, (agent,), channel = await support_desk(server, "agent")
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(EVENTS, {"f": {"statuses": ["REP_NEEDED", "SOON_TO_BE", "OVERDUE", "CLOSED"]}})
        await server.subscribed(1)
        started = time.monotonic()
        await org.customer_writes(channel, "c1", "hello?")
        assert (await sub.next_data())["conversationEvents"]["kind"] == "CREATED"
        seen = []
        for expected, threshold in (("SOON_TO_BE", 0.6), ("OVERDUE", 1.2), ("CLOSED", 1.8)):
            event = (await sub.next_data(timeout=5))["conversationEvents"]
            elapsed = time.monotonic() - started
            seen.append((event["kind"], event["conversation"]["status"], event["previousStatus"]))
            assert threshold <= elapsed + 0.05 < threshold + 2, (expected, elapsed)
        assert seen == [
            ("STATUS_CHANGED", "SOON_TO_BE", "REP_NEEDED"),
            ("STATUS_CHANGED", "OVERDUE", "SOON_TO_BE"),
            ("CLOSED", "CLOSED", "OVERDUE"),
        ]
    room_notes = await org.gql("{ notifications { edges { node { kind } } } }", as_=agent)
    # nobody was in the room, so the team's admins (none) get WAITING_TOO_LONG; the agent only got the offer
    assert [n["node"]["kind"] for n in room_notes["notifications"]["edges"]] == ["NEW_CONVERSATION"]
    closed = await org.gql(
        """query($id: ID!) { conversation(id: $id) { status closedReason } }""",
        {
            "id": (await org.gql("{ conversations(filter: {statuses: [CLOSED]}) { edges { node { id } } } }"))[
                "conversations"
            ]["edges"][0]["node"]["id"]
        },
    )
    assert closed["conversation"] == {"status": "CLOSED", "closedReason": "INACTIVITY"}


async def test_sweeper_catches_up_after_restart_and_two_instances_emit_once(make_server):
    """The restarted instances' own periodic sweepers catch up; two of them announce each transition once."""
    thresholds = Thresholds(soon_after_s=60, overdue_after_s=120, auto_close_after_s=3600, presence_timeout_s=60)
    first = await make_server(thresholds=thresholds, sweep_interval_s=3600)  # its sweeper won't run in time
    org = await new_org(first)
    team = await org.team("Support")
    channel = await org.channel(team, "LINE")
    for i in range(5):
        await org.customer_writes(channel, f"c{i}", "waiting")
    await first.stop()
    later = FakeClock()
    later.advance(thresholds.overdue_after_s + 1)  # both thresholds passed while no server ran
    a = await make_server(clock=later, thresholds=thresholds, database=first.settings.database, sweep_interval_s=0.1)
    b = await make_server(clock=later, thresholds=thresholds, database=first.settings.database, sweep_interval_s=0.1)
    deadline = time.monotonic() + 5
    while await a.db.events.count_documents({"kind": "STATUS_CHANGED"}) < 5:
        assert time.monotonic() < deadline, "the restarted sweepers did not catch up"
        await asyncio.sleep(0.02)
    await asyncio.gather(next_complete_sweep(a), next_complete_sweep(b))  # a late duplicate would be in by now
    changes = await a.db.events.find({"kind": "STATUS_CHANGED"}).to_list()
    assert sorted(e["conversation"]["_id"] for e in changes) == sorted({e["conversation"]["_id"] for e in changes})
    assert len(changes) == 5 and {e["new_status"] for e in changes} == {"OVERDUE"}
    assert b is not a


async def next_complete_sweep(server, timeout: float = 5) -> None:
    """Returns once the server's periodic sweeper has run a whole sweep that began after this call."""

    def last_success() -> float:
        return server.app.state.runtime.metrics.registry.get_sample_value(
            "imbrace_sweeper_last_success_timestamp_seconds"
        )

    deadline = time.monotonic() + timeout
    since = time.time()
    for _ in range(2):  # the first sweep to end may have begun before `since`; the one after it did not
        while last_success() <= since:
            assert time.monotonic() < deadline, "the sweeper did not complete a sweep"
            await asyncio.sleep(0.01)
        since = last_success()


async def test_two_instances_deliver_each_others_events(make_server):
    a = await make_server()
    b = await make_server(database=a.settings.database)
    org = await new_org(a)
    channel = await org.channel(await org.team("Support"), "LINE")
    async with Subscriber(b.ws_url, org.owner.token) as sub:
        await sub.subscribe(EVENTS)
        await b.subscribed(1)
        receipt = await org.customer_writes(channel, "c1", "via A")
        event = (await sub.next_data())["conversationEvents"]
        assert event["kind"] == "CREATED" and event["conversationId"] == receipt["conversationId"]


async def test_reconnect_with_after_receives_the_hundred_missed_events_in_order(make_server):
    server = await make_server(thresholds=Thresholds(soon_after_s=600, overdue_after_s=900))  # no timer events
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"), "LINE")
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        await org.customer_writes(channel, "c0", "before")
        last_id = (await sub.next_data())["conversationEvents"]["id"]
    for i in range(100):
        await org.customer_writes(channel, f"c{i % 7}", f"missed {i}")
    async with Subscriber(server.ws_url, org.owner.token) as sub:
        await sub.subscribe(EVENTS, {"after": last_id})
        await org.customer_writes(channel, "c0", "live")
        events = [e["conversationEvents"] for e in await sub.collect(101)]
        ids = [int(e["id"]) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == 101
        assert ids[0] > int(last_id)
        assert await sub.nothing_within(0.5)


async def test_removed_member_stops_receiving_at_once(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    async with Subscriber(server.ws_url, agent.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        await org.customer_writes(channel, "c1", "one")
        assert (await sub.next_data())["conversationEvents"]["kind"] == "CREATED"
        await org.gql(
            """mutation($i: RemoveTeamMemberInput!) { removeTeamMember(input: $i) { errors { code } } }""",
            {"i": {"teamId": team, "memberId": agent.id}},
        )
        await org.customer_writes(channel, "c1", "two")
        assert await sub.nothing_within(1.0)


async def test_refused_token_and_refused_origin(server):
    sub = Subscriber(server.ws_url, "forged.token.value")
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await sub.connect()
    assert closed.value.rcvd.code == 4403
    org = await new_org(server)
    with pytest.raises(websockets.InvalidStatus):
        await Subscriber(server.ws_url, org.owner.token, origin="https://evil.example").connect()
    async with Subscriber(server.ws_url, org.owner.token, origin=server.url) as same_origin:
        await same_origin.subscribe(EVENTS)
        assert await same_origin.nothing_within(0.2)


async def test_events_are_kept_for_the_retention_period_only(make_server):
    server = await make_server(event_retention_s=60)
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"), "LINE")
    await org.customer_writes(channel, "c1", "hello")
    retention = server.app.state.runtime.retention
    now = server.services.clock()
    assert await retention.purge(now) == (0, 0)
    stored = await server.db.events.count_documents({})
    assert stored >= 1
    deleted, _ = await retention.purge(now + timedelta(seconds=61))
    assert deleted == stored and await server.db.events.count_documents({}) == 0


class CustomerLookups(monitoring.CommandListener):
    """Counts the batched customer lookups (`find` on customers by `_id: {$in}`) of event executions."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event) -> None:
        if (
            event.command_name == "find"
            and event.command.get("find") == "customers"
            and isinstance(event.command.get("filter", {}).get("_id"), dict)
        ):
            self.count += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


WITH_CUSTOMER = """subscription($f: ConversationFilter) { conversationEvents(filter: $f) {
    kind conversation { id customer { name } } } }"""


async def test_subscribers_with_the_same_operation_and_visibility_share_one_execution(make_server):
    lookups = CustomerLookups()
    server = await make_server(listeners=[lookups])
    org = await new_org(server)
    team = await org.team("Support")
    agents = [await org.member(f"agent{i}") for i in range(3)]
    for agent in agents:
        await org.add(team, agent)
    channel = await org.channel(team, "LINE")
    # three agents with the same visibility, one of them with two tabs open
    subs = [Subscriber(server.ws_url, agent.token) for agent in agents + [agents[0]]]
    for sub in subs:
        await sub.connect()
        await sub.subscribe(WITH_CUSTOMER)
    await server.subscribed(4, streams=1)
    before = lookups.count
    await org.customer_writes(channel, "c1", "hello", customer={"name": "Dana"})
    for sub in subs:
        event = (await sub.next_data())["conversationEvents"]
        assert event["kind"] == "CREATED" and event["conversation"]["customer"] == {"name": "Dana"}
    assert lookups.count - before == 1
    # a different filter is a different operation: one more execution, not one per subscriber
    filtered = Subscriber(server.ws_url, agents[1].token)
    await filtered.connect()
    await filtered.subscribe(WITH_CUSTOMER, {"f": {"channels": ["LINE"]}})
    await server.subscribed(5, streams=2)
    before = lookups.count
    await org.customer_writes(channel, "c2", "hi", customer={"name": "Eli"})
    for sub in subs + [filtered]:
        assert (await sub.next_data())["conversationEvents"]["conversation"]["customer"] == {"name": "Eli"}
    assert lookups.count - before == 2
    for sub in subs + [filtered]:
        await sub.close()


async def test_per_member_fields_are_answered_for_each_member(server):
    org, team, (joined, watching), channel = await support_desk(server, "joined", "watching")
    cid = (await org.customer_writes(channel, "c1", "hello"))["conversationId"]
    await org.gql(JOIN, {"id": cid}, as_=joined)
    query = "subscription { conversationEvents { kind conversation { joinedByMe } } }"
    async with Subscriber(server.ws_url, joined.token) as a, Subscriber(server.ws_url, watching.token) as b:
        await a.subscribe(query)
        await b.subscribe(query)
        await server.subscribed(2)  # joinedByMe differs per member: a stream each
        await org.customer_writes(channel, "c1", "anyone there?")
        assert (await a.next_data())["conversationEvents"]["conversation"] == {"joinedByMe": True}
        assert (await b.next_data())["conversationEvents"]["conversation"] == {"joinedByMe": False}


async def test_member_added_to_a_team_starts_receiving_its_events_at_once(server):
    org = await new_org(server)
    first, second = await org.team("First"), await org.team("Second")
    agent = await org.member("agent")
    await org.add(first, agent)
    channel = await org.channel(second, "LINE")
    async with Subscriber(server.ws_url, agent.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)  # or "nothing" could be a subscription not yet registered
        await org.customer_writes(channel, "c1", "one")
        assert await sub.nothing_within(0.8)
        await org.add(second, agent)
        await org.customer_writes(channel, "c1", "two")
        assert (await sub.next_data())["conversationEvents"]["kind"] == "MESSAGE"


async def test_a_team_change_splits_a_shared_stream_without_losing_or_repeating_events(server):
    org, team, (stays, leaves), channel = await support_desk(server, "stays", "leaves")
    # same operation, same visibility: one shared stream serves both
    async with Subscriber(server.ws_url, stays.token) as a, Subscriber(server.ws_url, leaves.token) as b:
        await a.subscribe(EVENTS)
        await b.subscribe(EVENTS)
        await server.subscribed(2, streams=1)
        first = (await org.customer_writes(channel, "c1", "one"))["conversationId"]
        ids_a = [(await a.next_data())["conversationEvents"]["id"]]
        assert (await b.next_data())["conversationEvents"]["conversationId"] == first
        await org.gql(
            """mutation($i: RemoveTeamMemberInput!) { removeTeamMember(input: $i) { errors { code } } }""",
            {"i": {"teamId": team, "memberId": leaves.id}},
        )
        for n in range(5):
            await org.customer_writes(channel, "c1", f"after the change {n}")
        ids_a += [(await a.next_data())["conversationEvents"]["id"] for _ in range(5)]
        assert [int(i) for i in ids_a] == sorted({int(i) for i in ids_a}), ids_a
        assert await a.nothing_within(0.5)
        assert await b.nothing_within(0.1)


async def test_after_a_team_change_members_are_regrouped_by_their_new_visibility(server):
    org, team, agents, channel = await support_desk(server, "a", "b", "c")
    hub = server.services.hub
    subs = [Subscriber(server.ws_url, agent.token) for agent in agents]
    for sub in subs:
        await sub.connect()
        await sub.subscribe(EVENTS)
    await server.subscribed(3, streams=1)
    assert sum(len(s) for s in hub.audience.by_org.values()) == 1, "one stream serves all three"
    await org.gql(
        """mutation($i: RemoveTeamMemberInput!) { removeTeamMember(input: $i) { errors { code } } }""",
        {"i": {"teamId": team, "memberId": agents[2].id}},
    )
    await org.customer_writes(channel, "c1", "hello")
    for sub in subs[:2]:
        assert (await sub.next_data())["conversationEvents"]["kind"] == "CREATED"
    assert await subs[2].nothing_within(0.5)
    # a and b share one new stream; c, who now sees nothing, has its own
    assert sum(len(s) for s in hub.audience.by_org.values()) == 2
    for sub in subs:
        await sub.close()


async def test_one_member_leaving_a_shared_stream_leaves_the_others_served(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    tabs = [Subscriber(server.ws_url, agent.token) for _ in range(3)]
    for tab in tabs:
        await tab.connect()
        await tab.subscribe(EVENTS)
    await server.subscribed(3, streams=1)
    await tabs[0].close()
    await tabs[1].socket.send('{"id": "1", "type": "complete"}')
    await org.customer_writes(channel, "c1", "hello")
    assert (await tabs[2].next_data())["conversationEvents"]["kind"] == "CREATED"
    assert await tabs[1].nothing_within(0.5)
    for tab in tabs[1:]:
        await tab.close()


async def test_invalid_shared_operations_are_refused_to_each_subscriber(server):
    org = await new_org(server)
    async with Subscriber(server.ws_url, org.owner.token) as a, Subscriber(server.ws_url, org.owner.token) as b:
        for sub in (a, b):
            await sub.subscribe("subscription { conversationEvents { id noSuchField } }")
        for sub in (a, b):
            message = await sub.receive()
            assert message["type"] == "error" and "noSuchField" in message["payload"][0]["message"], message


async def test_resuming_subscriptions_replay_on_their_own_even_beside_live_ones(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    first = await org.customer_writes(channel, "c1", "before anyone listened")
    async with Subscriber(server.ws_url, agent.token) as live:
        await live.subscribe(EVENTS)
        await server.subscribed(1)
        async with Subscriber(server.ws_url, agent.token) as resuming:
            # same operation text; `after` as a variable default, then as a variable value
            await resuming.subscribe(EVENTS.replace("$after: ID", '$after: ID = "0"'))
            await resuming.subscribe(EVENTS, {"after": "0"})
            replayed = [(await resuming.next_data())["conversationEvents"] for _ in range(2)]
            assert {e["conversationId"] for e in replayed} == {first["conversationId"]}
            assert await live.nothing_within(0.3), "a live subscriber gets no history"


async def test_a_socket_is_closed_when_its_token_expires(make_server):
    import jwt

    server = await make_server(jwt_ttl_s=3)
    org, _, (agent,), channel = await support_desk(server, "alice")
    token = await login(server, agent.email)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    async with Subscriber(server.ws_url, token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        await org.customer_writes(channel, "c1", "hi")
        assert (await sub.next_data())["conversationEvents"]["kind"] == "CREATED"  # alive while the token is
        await asyncio.wait_for(sub.socket.wait_closed(), timeout=expires - time.time() + 2)
        assert time.time() >= expires - 0.05
        assert sub.socket.close_code == 4401
