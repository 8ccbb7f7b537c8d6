"""Issue 17, item 7: agent availability.

Members are online while a WebSocket to ``/graphql`` is open (on any instance: two
servers on one database here, with one FakeClock for the heartbeat's expiry), set
AVAILABLE or AWAY with ``setAvailability``, and new conversations and grab offers go
to the available members first. Over the real GraphQL API and real WebSocket
clients; the rule choosing who hears of new work is also played on its own.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from domain.availability import announced_to, is_online, is_ready
from domain.entities import Conversation, Member, Team, TeamMembership
from domain.enums import Availability, ChannelType, EventKind, NotificationKind, OrgRole, TeamMode, TeamRole
from domain.events import Event
from domain.usecases.notifications import recipients
from tests.clock import FakeClock
from tests.test_api_keys import create_key, refused
from tests.world import Org, grab_desk, new_org, support_desk
from tests.ws import Subscriber

SET = """mutation($i: SetAvailabilityInput!) { setAvailability(input: $i) {
    member { id availability online } errors { code field } } }"""
MEMBERS = "{ members { id availability online } }"
CHANGES = "subscription { availabilityChanged { memberId availability online member { id name } } }"
NOTES = "{ notifications { edges { node { kind conversationId } } } }"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _member(member_id: str, availability: Availability, online: bool) -> Member:
    return Member(
        member_id, "o", f"{member_id}@x.io", member_id, OrgRole.MEMBER, NOW, availability,
        NOW + timedelta(seconds=30) if online else NOW - timedelta(seconds=1),
    )  # fmt: skip


def test_who_hears_of_new_work_first():
    members = [
        _member("ann", Availability.AVAILABLE, online=True),
        _member("ben", Availability.AVAILABLE, online=False),  # available, but no connection (or it expired)
        _member("cat", Availability.AWAY, online=True),
    ]
    assert [m.id for m in members if is_online(m, NOW)] == ["ann", "cat"]
    ready = frozenset(m.id for m in members if is_ready(m, NOW))
    assert ready == {"ann"}
    rep, admin = TeamRole.REPRESENTATIVE, TeamRole.ADMIN
    people = tuple(TeamMembership(m, rep) for m in ("ann", "ben", "cat"))
    collab = Team("t", "o", "Collab", TeamMode.COLLABORATION, (*people, TeamMembership("lead", admin)))
    assert announced_to(collab, ready) == ["ann"]
    assert announced_to(collab, frozenset()) == ["ann", "ben", "cat", "lead"]  # nobody ready: everyone, as before
    assert announced_to(collab, frozenset({"lead"})) == ["lead"]  # a COLLABORATION admin takes work too
    grab = Team("g", "o", "Grab", TeamMode.GRAB, (TeamMembership("boss", admin), *people))
    assert announced_to(grab, ready) == ["boss", "ann"]  # GRAB admins keep seeing every offer
    assert announced_to(grab, frozenset({"boss"})) == ["boss", "ann", "ben", "cat"]  # admins can't grab
    conversation = Conversation(
        id="c", org_id="o", team_id="g", channel_id="ch", channel_type=ChannelType.LINE, channel_name="Line",
        customer_id="cu", created_at=NOW, last_customer_message_at=NOW,
    )  # fmt: skip
    offers = recipients(Event(EventKind.CREATED, conversation, NOW), grab, ready=ready)
    assert [(r.member_id, r.kind) for r in offers] == [
        ("boss", NotificationKind.GRAB_OFFER),
        ("ann", NotificationKind.GRAB_OFFER),
    ]
    moved = Event(EventKind.TRANSFERRED, conversation, NOW, team_before="t")
    assert [(r.member_id, r.kind) for r in recipients(moved, collab, ready=ready)] == [
        ("ann", NotificationKind.TRANSFERRED)
    ]


async def _set(org, availability: str, as_=None, member_id: str | None = None) -> dict:
    variables = {"i": {"availability": availability, **({"memberId": member_id} if member_id else {})}}
    return (await org.gql(SET, variables, as_=as_))["setAvailability"]


async def _states(org) -> dict[str, tuple[str, bool]]:
    return {m["id"]: (m["availability"], m["online"]) for m in (await org.gql(MEMBERS))["members"]}


async def test_members_set_their_availability_and_refusals_change_nothing(server):
    org, _team, (ann, ben), _channel = await support_desk(server, "ann", "ben")
    assert (await _states(org))[ann.id] == ("AWAY", False)  # AWAY until they first say AVAILABLE
    done = await _set(org, "AVAILABLE", as_=ann)
    assert done == {"member": {"id": ann.id, "availability": "AVAILABLE", "online": False}, "errors": []}
    assert (await _set(org, "AWAY", as_=org.owner, member_id=ben.id))["errors"] == []  # an owner sets anyone's
    before = await _states(org)
    assert before[ann.id] == ("AVAILABLE", False) and before[ben.id] == ("AWAY", False)
    # refusals: typed, and nothing changes
    assert await _set(org, "AWAY", as_=ben, member_id=ann.id) == {
        "member": None,
        "errors": [{"code": "FORBIDDEN", "field": None}],
    }
    other = await new_org(server, "Other")
    for member_id in (other.owner.id, "not-an-id"):
        assert (await _set(org, "AWAY", member_id=member_id))["errors"] == [{"code": "NOT_FOUND", "field": "memberId"}]
    assert (await _set(other, "AWAY", member_id=ann.id))["errors"][0]["code"] == "NOT_FOUND"  # other organizations
    app, _ = await create_key(org, ["READ_CONVERSATIONS", "SEND_MESSAGES"])
    variables = {"i": {"availability": "AWAY"}}
    assert refused(await server.gql(SET, variables, app.token, expect_errors=True)) == "FORBIDDEN"
    assert refused(await server.gql(SET, variables, None, expect_errors=True)) == "UNAUTHENTICATED"
    bad = await server.gql(SET, {"i": {"availability": "BUSY"}}, ann.token, expect_errors=True)
    assert bad["errors"] and bad.get("data") is None
    assert await _states(org) == before


async def _notified(org, person) -> dict[str, str]:
    """Conversation id -> notification kind, of the person's notifications."""
    edges = (await org.gql(NOTES, as_=person))["notifications"]["edges"]
    return {e["node"]["conversationId"]: e["node"]["kind"] for e in edges}


async def _until_offline(org, member_id: str) -> None:
    for _ in range(500):
        if not (await _states(org))[member_id][1]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("still online after the socket closed")


async def test_new_work_goes_to_the_available_members_first(server):
    org, _team, (ann, ben), channel = await support_desk(server, "ann", "ben")
    assert (await _set(org, "AVAILABLE", as_=ben))["errors"] == []  # available, but offline
    socket = await Subscriber(server.ws_url, ann.token).__aenter__()
    try:
        assert (await _states(org))[ann.id] == ("AWAY", True)  # online while the socket is open
        first = (await org.customer_writes(channel, "c1", "nobody is available"))["conversationId"]
        assert (await _set(org, "AVAILABLE", as_=ann))["member"]["online"] is True
        second = (await org.customer_writes(channel, "c2", "ann is available"))["conversationId"]
    finally:
        await socket.close()
    await _until_offline(org, ann.id)  # and not after it closes
    third = (await org.customer_writes(channel, "c3", "ann went offline"))["conversationId"]
    assert await _notified(org, ann) == {
        first: "NEW_CONVERSATION",
        second: "NEW_CONVERSATION",
        third: "NEW_CONVERSATION",
    }
    assert await _notified(org, ben) == {first: "NEW_CONVERSATION", third: "NEW_CONVERSATION"}

    # a GRAB team: offers go to the available representative, and to the team admin as always
    grab, _grab_team, grab_channel, alice, bob, boss = await grab_desk(server)
    assert (await _set(grab, "AVAILABLE", as_=alice))["errors"] == []
    async with Subscriber(server.ws_url, alice.token):
        offered = (await grab.customer_writes(grab_channel, "g1", "grab me"))["conversationId"]
    assert await _notified(grab, alice) == {offered: "GRAB_OFFER"}
    assert await _notified(grab, boss) == {offered: "GRAB_OFFER"}
    assert await _notified(grab, bob) == {}


async def test_online_counts_across_instances_and_availability_events_reach_the_organization(make_server):
    clock = FakeClock()
    a = await make_server(clock=clock)
    b = await make_server(clock=clock, database=a.settings.database)  # a second instance, same database
    org, _team, (alice, bob), _channel = await support_desk(a, "alice", "bob")
    stranger = await new_org(a, "Elsewhere")
    on_b = Org(b, org.owner)
    async with Subscriber(b.ws_url, bob.token) as bob_sub, Subscriber(b.ws_url, stranger.owner.token) as foreign:
        await bob_sub.subscribe(CHANGES)
        await foreign.subscribe(CHANGES)
        await b.subscribed(2)

        async def alices() -> tuple[str, bool]:
            """The next AVAILABILITY event about alice that bob's stream (on instance B) receives."""
            while True:
                got = (await bob_sub.next_data())["availabilityChanged"]
                if got["memberId"] == alice.id:
                    assert got["member"] == {"id": alice.id, "name": "alice"}
                    return got["availability"], got["online"]

        socket = await Subscriber(a.ws_url, alice.token).__aenter__()
        try:
            assert await alices() == ("AWAY", True)
            assert (await _states(on_b))[alice.id] == ("AWAY", True)  # B counts A's connection
            second = await Subscriber(a.ws_url, alice.token).__aenter__()  # a second tab announces nothing
            assert (await _set(org, "AVAILABLE", as_=alice))["errors"] == []
            assert await alices() == ("AVAILABLE", True)
            await second.close()
            assert (await _set(org, "AVAILABLE", as_=alice))["errors"] == []  # unchanged: announced nothing
            # instance A stops its heartbeat (as if it crashed): its connections stop counting after the timeout
            await a.services.member_presence.stop()
            clock.advance(a.settings.thresholds.presence_timeout_s + 1)
            assert (await _states(on_b))[alice.id] == ("AVAILABLE", False)
            await a.services.member_presence.tick(clock())  # the heartbeat again
            assert (await _states(on_b))[alice.id] == ("AVAILABLE", True)
        finally:
            await socket.close()
        assert await alices() == ("AVAILABLE", False)  # her last socket closed: offline at once
        assert (await _states(on_b))[alice.id] == ("AVAILABLE", False)
        assert alice.id not in str(await _heard(foreign, 0.3))  # another organization hears nothing of her


async def _heard(subscriber: Subscriber, quiet_s: float) -> list[dict]:
    """What the subscriber receives until ``quiet_s`` passes without a message."""
    got = []
    while True:
        try:
            got.append(await subscriber.receive(quiet_s))
        except TimeoutError:
            return got
