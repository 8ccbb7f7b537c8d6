"""Issue 4: transferring a conversation to another team or representative, and releasing a grab.

Over the real GraphQL API and WebSockets (tests/world.py builds the organizations):
who owns it and who stays in the room afterwards, who is notified, who gets HIDDEN,
what every refusal answers (with nothing written), and races against grabs. The
races a server can't stage on demand (a grab landing between the read and the
update) are played on the use case with an in-memory store.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from domain import changes
from domain.entities import Conversation, Member, Team, TeamMembership
from domain.enums import ChannelType, ClosedReason, ErrorCode, OrgRole, TeamMode, TeamRole
from domain.errors import Refused
from domain.status import Thresholds
from domain.usecases import rooms
from domain.visibility import Viewer
from tests import conftest
from tests.test_conversation_list import Commands, tag_requests
from tests.world import Org, Person, grab_desk, new_org
from tests.ws import Subscriber

# Nothing moves with time while these tests run.
CALM = Thresholds(soon_after_s=600, overdue_after_s=900, auto_close_after_s=3600, presence_timeout_s=60)

TRANSFER = """mutation($i: TransferConversationInput!) { transferConversation(input: $i) {
    conversation { id status owner { id } representatives { id } team { id } } note errors { code field } } }"""
RELEASE = """mutation($id: ID!) { releaseConversation(id: $id) {
    conversation { id status owner { id } representatives { id } } errors { code field } } }"""
CONVERSATION = """query($id: ID!) { conversation(id: $id) { id status waitingSince owner { id }
    representatives { id } } }"""
EVENTS = """subscription { conversationEvents { kind conversationId note previousStatus
    conversation { status owner { id } } } }"""
NOTIFICATIONS = "{ notifications { edges { node { kind canGrab conversationId } } } }"


async def transfer(org: Org, cid: str, as_: Person | None = None, **where) -> dict:
    return (await org.gql(TRANSFER, {"i": {"id": cid, **where}}, as_=as_))["transferConversation"]


async def release(org: Org, cid: str, as_: Person | None = None) -> dict:
    return (await org.gql(RELEASE, {"id": cid}, as_=as_))["releaseConversation"]


async def room(org: Org, action: str, cid: str, as_: Person) -> None:
    data = await org.gql(f"mutation($id: ID!) {{ {action}(id: $id) {{ errors {{ code }} }} }}", {"id": cid}, as_=as_)
    assert data[action]["errors"] == [], (action, data)


async def seen_by(org: Org, cid: str, person: Person) -> dict | None:
    return (await org.gql(CONVERSATION, {"id": cid}, as_=person))["conversation"]


async def listed_ids(org: Org, person: Person) -> set[str]:
    data = await org.gql("{ conversations(first: 100) { edges { node { id } } } }", as_=person)
    return {e["node"]["id"] for e in data["conversations"]["edges"]}


async def notified(org: Org, person: Person, cid: str) -> list[tuple[str, bool]]:
    edges = (await org.gql(NOTIFICATIONS, as_=person))["notifications"]["edges"]
    return [(e["node"]["kind"], e["node"]["canGrab"]) for e in edges if e["node"]["conversationId"] == cid]


async def stored(server, cid: str) -> dict:
    return await server.db.conversations.find_one({"_id": cid})


def codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["errors"]]


async def two_desks(server):
    """A COLLABORATION front desk (ann, ben; lead is its admin) and the GRAB desk of tests/world.py."""
    org, grab, channel, alice, bob, boss = await grab_desk(server, "LINE")
    front = await org.team("Front")
    ann, ben, lead = await org.member("ann"), await org.member("ben"), await org.member("lead")
    for person, role in ((ann, "REPRESENTATIVE"), (ben, "REPRESENTATIVE"), (lead, "ADMIN")):
        await org.add(front, person, role)
    front_channel = await org.channel(front, "WEB_WIDGET", "Site")
    return org, front, front_channel, (ann, ben, lead), grab, channel, (alice, bob, boss)


# --- transfer ---------------------------------------------------------------------------------------


async def test_collaboration_to_grab_offers_it_to_the_grab_team_and_hides_it_from_the_old_one(make_server):
    server = await make_server(thresholds=CALM)
    org, front, front_channel, (ann, ben, lead), grab, _, (alice, bob, boss) = await two_desks(server)
    cid = (await org.customer_writes(front_channel, "vip", "I need sales"))["conversationId"]
    await room(org, "joinConversation", cid, ann)
    waiting_since = (await stored(server, cid))["waiting_since"]

    async with Subscriber(server.ws_url, ann.token) as old, Subscriber(server.ws_url, alice.token) as new:
        await old.subscribe(EVENTS)
        await new.subscribe(EVENTS)
        await server.subscribed(2)
        done = await transfer(org, cid, lead, toTeamId=grab, note="VIP: wants a quote")
        # the front desk's admin is not in the GRAB team: the conversation left their sight
        assert done == {"conversation": None, "note": "VIP: wants a quote", "errors": []}
        hidden = (await old.next_data())["conversationEvents"]
        assert hidden == {
            "kind": "HIDDEN",
            "conversationId": cid,
            "note": None,
            "previousStatus": None,
            "conversation": None,
        }
        arrived = (await new.next_data())["conversationEvents"]
        assert arrived == {
            "kind": "TRANSFERRED",
            "conversationId": cid,
            "note": "VIP: wants a quote",
            "previousStatus": "PENDING",
            "conversation": {"status": "REP_NEEDED", "owner": None},
        }

    doc = await stored(server, cid)
    assert (doc["team_id"], doc["participants"], doc.get("owner_id")) == (grab, [], None)
    assert doc["waiting_since"] == waiting_since, "the customer still waits, from the same moment"
    # the old team no longer sees it anywhere; the GRAB team is offered it
    for person in (ann, ben, lead):
        assert await seen_by(org, cid, person) is None
        assert cid not in await listed_ids(org, person)
    assert await notified(org, alice, cid) == [("GRAB_OFFER", True)]
    assert await notified(org, bob, cid) == [("GRAB_OFFER", True)]
    assert await notified(org, boss, cid) == [("GRAB_OFFER", False)]  # admins never grab
    assert (await seen_by(org, cid, bob))["status"] == "REP_NEEDED"
    await room(org, "grabConversation", cid, bob)
    assert (await seen_by(org, cid, bob))["owner"] == {"id": bob.id}
    # ann, out of the room, hears nothing more of it
    before = await server.db.notifications.count_documents({"member_id": ann.id})
    await org.customer_writes(front_channel, "vip", "hello?")
    assert await server.db.notifications.count_documents({"member_id": ann.id}) == before


async def test_grab_to_grab_straight_to_a_representative_who_owns_it(make_server):
    server = await make_server(thresholds=CALM)
    org, grab, channel, alice, bob, boss = await grab_desk(server, "LINE")
    vip = await org.team("VIP", "GRAB")
    carol, dave, chief = await org.member("carol"), await org.member("dave"), await org.member("chief", "ADMIN")
    for person in (carol, dave):
        await org.add(vip, person)
    cid = (await org.customer_writes(channel, "whale", "big order"))["conversationId"]
    await room(org, "grabConversation", cid, alice)
    await room(org, "joinConversation", cid, boss)
    await room(org, "joinConversation", cid, chief)

    async with Subscriber(server.ws_url, alice.token) as old_owner, Subscriber(server.ws_url, boss.token) as old_admin:
        await old_owner.subscribe(EVENTS)
        await old_admin.subscribe(EVENTS)
        await server.subscribed(2)
        done = await transfer(org, cid, chief, toTeamId=vip, toMemberId=carol.id)
        assert done["errors"] == [] and done["note"] is None
        assert done["conversation"]["owner"] == {"id": carol.id}
        assert done["conversation"]["team"] == {"id": vip}
        # the organization admin stays in the room; the old team's admin and owner leave it
        assert sorted(r["id"] for r in done["conversation"]["representatives"]) == sorted([chief.id, carol.id])
        for sub in (old_owner, old_admin):
            assert (await sub.next_data())["conversationEvents"]["kind"] == "HIDDEN"

    assert (await stored(server, cid))["owner_id"] == carol.id
    assert await notified(org, carol, cid) == [("TRANSFERRED", False)]
    assert await notified(org, dave, cid) == []
    for person in (alice, bob, boss, dave):
        assert await seen_by(org, cid, person) is None
    assert (await seen_by(org, cid, carol))["status"] == "PENDING"
    sent = await org.gql(
        """mutation($i: SendMessageInput!) { sendMessage(input: $i) { errors { code } } }""",
        {"i": {"conversationId": cid, "text": "Carol here"}},
        as_=carol,
    )
    assert sent["sendMessage"]["errors"] == []
    for person in (alice, boss):  # out of the room: they can't write in it any more
        sent = await org.gql(
            """mutation($i: SendMessageInput!) { sendMessage(input: $i) { errors { code } } }""",
            {"i": {"conversationId": cid, "text": "still mine?"}},
            as_=person,
        )
        assert codes(sent["sendMessage"]) == ["NOT_FOUND"]


async def test_within_a_grab_team_to_another_representative(make_server):
    server = await make_server(thresholds=CALM)
    org, grab, channel, alice, bob, boss = await grab_desk(server, "LINE")
    cid = (await org.customer_writes(channel, "c", "hi"))["conversationId"]
    unowned = (await org.customer_writes(channel, "d", "hello"))["conversationId"]
    await room(org, "grabConversation", cid, alice)
    async with Subscriber(server.ws_url, alice.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        done = await transfer(org, cid, boss, toMemberId=bob.id, note="Bob speaks Cantonese")
        assert done["errors"] == [] and done["conversation"]["owner"] == {"id": bob.id}
        assert done["conversation"]["representatives"] == [{"id": bob.id}]
        assert (await sub.next_data())["conversationEvents"]["kind"] == "HIDDEN"
    assert await seen_by(org, cid, alice) is None and cid not in await listed_ids(org, alice)
    # newest first; the old offer can't be taken any more: bob owns it
    assert await notified(org, bob, cid) == [("TRANSFERRED", False), ("GRAB_OFFER", False)]
    # an unowned one can be handed over too, by an organization owner
    done = await transfer(org, unowned, toTeamId=grab, toMemberId=alice.id)
    assert done["errors"] == [] and done["conversation"]["owner"] == {"id": alice.id}
    assert await seen_by(org, unowned, bob) is None


async def test_to_a_collaboration_team_lists_it_to_all_its_members(make_server):
    server = await make_server(thresholds=CALM)
    org, front, _, (ann, ben, lead), grab, channel, (alice, bob, boss) = await two_desks(server)
    cid = (await org.customer_writes(channel, "c", "hi"))["conversationId"]
    await room(org, "grabConversation", cid, alice)
    done = await transfer(org, cid, boss, toTeamId=front, note="Not a sales question")
    assert done == {"conversation": None, "note": "Not a sales question", "errors": []}
    doc = await stored(server, cid)
    assert (doc["team_id"], doc["participants"], doc.get("owner_id")) == (front, [], None)
    for person in (ann, ben, lead):
        assert await notified(org, person, cid) == [("TRANSFERRED", False)]
        assert (await seen_by(org, cid, person))["status"] == "REP_NEEDED"
    for person in (alice, bob, boss):
        assert await seen_by(org, cid, person) is None
    await room(org, "joinConversation", cid, ann)
    await room(org, "joinConversation", cid, ben)


async def test_every_transfer_refusal_writes_nothing(make_server):
    server = await make_server(thresholds=CALM)
    org, front, front_channel, (ann, ben, lead), grab, channel, (alice, bob, boss) = await two_desks(server)
    org_admin = await org.member("oadmin", "ADMIN")
    await org.add(grab, org_admin)  # a representative too, but admins never own
    other = await new_org(server, "Other")
    other_team = await other.team("Theirs", "GRAB")
    stranger = await other.member("stranger")
    await other.add(other_team, stranger)
    theirs = (await other.customer_writes(await other.channel(other_team, "LINE"), "x", "hi"))["conversationId"]
    cid = (await org.customer_writes(channel, "c", "hi"))["conversationId"]
    collab_cid = (await org.customer_writes(front_channel, "f", "hi"))["conversationId"]
    closed = (await org.customer_writes(channel, "z", "bye"))["conversationId"]
    await room(org, "grabConversation", cid, alice)
    await room(org, "closeConversation", closed, boss)
    seen: set[str] = set()

    async def refused(code: str, field: str | None, target: str, as_: Person | None = None, **where) -> None:
        before = [await stored(server, c) for c in (cid, collab_cid, closed)]
        events = await server.db.events.count_documents({})
        notes = await server.db.notifications.count_documents({})
        payload = await transfer(org, target, as_, **where)
        assert payload["errors"] == [{"code": code, "field": field}], (code, where, payload)
        assert payload["conversation"] is None and payload["note"] is None
        assert [await stored(server, c) for c in (cid, collab_cid, closed)] == before
        assert await server.db.events.count_documents({}) == events
        assert await server.db.notifications.count_documents({}) == notes
        seen.add(code)

    await refused("NOT_FOUND", "id", "0123456789abcdef01234567", toTeamId=front)
    await refused("NOT_FOUND", "id", "not-an-id", toTeamId=front)
    await refused("NOT_FOUND", "id", theirs, toTeamId=front)  # another organization's
    await refused("NOT_FOUND", "id", cid, ann, toTeamId=front)  # a team ann is not in
    await refused("NOT_FOUND", "id", cid, bob, toTeamId=front)  # grabbed by alice: bob can't see it
    await refused("NOT_FOUND", "toTeamId", cid, boss, toTeamId="0123456789abcdef01234567")
    await refused("NOT_FOUND", "toTeamId", cid, boss, toTeamId=other_team)
    await refused("NOT_FOUND", "toMemberId", cid, boss, toMemberId=stranger.id)
    await refused("NOT_FOUND", "toMemberId", cid, boss, toMemberId="0123456789abcdef01234567")
    await refused("NOT_FOUND", "toMemberId", cid, boss, toMemberId="nobody")
    await refused("FORBIDDEN", None, cid, alice, toTeamId=front)  # the owner is no admin
    await refused("FORBIDDEN", None, collab_cid, ann, toTeamId=grab)
    await refused("FORBIDDEN", None, collab_cid, ben, toTeamId=grab)
    await refused("INVALID_INPUT", "toTeamId", cid, boss, toTeamId=grab)  # already this team's
    await refused("INVALID_INPUT", "toTeamId", cid, boss)
    await refused("INVALID_INPUT", "toMemberId", collab_cid, lead, toMemberId=ben.id)  # COLLABORATION
    await refused("INVALID_INPUT", "toMemberId", cid, boss, toTeamId=front, toMemberId=ann.id)
    await refused("INVALID_INPUT", "toMemberId", cid, boss, toMemberId=boss.id)  # a team admin
    await refused("INVALID_INPUT", "toMemberId", cid, boss, toMemberId=org_admin.id)  # an org admin
    await refused("INVALID_INPUT", "toMemberId", cid, boss, toMemberId=ann.id)  # not in the team
    await refused("INVALID_INPUT", "toMemberId", cid, boss, toMemberId=alice.id)  # already hers
    await refused("INVALID_INPUT", "note", cid, boss, toTeamId=front, note="x" * 4097)
    await refused("INVALID_INPUT", "note", cid, boss, toTeamId=front, note="nul\x00")
    await refused("CONVERSATION_CLOSED", None, closed, boss, toTeamId=front)
    await refused("CONVERSATION_CLOSED", None, closed, toTeamId=grab, toMemberId=bob.id)
    assert seen == {"NOT_FOUND", "FORBIDDEN", "INVALID_INPUT", "CONVERSATION_CLOSED"}
    # ALREADY_GRABBED and CONVERSATION_CHANGED need a race: see the tests below


# --- release ----------------------------------------------------------------------------------------


async def test_release_by_the_owner_or_an_admin_offers_it_again(make_server):
    server = await make_server(thresholds=CALM)
    org, grab, channel, alice, bob, boss = await grab_desk(server, "LINE")
    cid = (await org.customer_writes(channel, "c", "hi"))["conversationId"]
    await room(org, "grabConversation", cid, alice)
    async with Subscriber(server.ws_url, bob.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        done = await release(org, cid, alice)
        assert done["errors"] == [] and done["conversation"]["owner"] is None
        assert done["conversation"]["representatives"] == [] and done["conversation"]["status"] == "REP_NEEDED"
        event = (await sub.next_data())["conversationEvents"]
        assert (event["kind"], event["conversation"]) == ("RELEASED", {"status": "REP_NEEDED", "owner": None})
    assert await notified(org, bob, cid) == [("GRAB_OFFER", True), ("GRAB_OFFER", True)]
    assert await notified(org, alice, cid) == [("GRAB_OFFER", True)]  # the first offer; not told of her own act

    # an admin in the room takes it back from bob: the admin stays, bob leaves
    await room(org, "grabConversation", cid, bob)
    await room(org, "joinConversation", cid, boss)
    done = await release(org, cid, boss)
    assert done["errors"] == [] and done["conversation"]["owner"] is None
    assert done["conversation"]["representatives"] == [{"id": boss.id}]
    assert (await seen_by(org, cid, alice))["owner"] is None
    assert [k for k, can in await notified(org, alice, cid)] == ["GRAB_OFFER", "GRAB_OFFER"]
    # nobody owns it now: releasing again changes nothing and tells nobody
    events = await server.db.events.count_documents({})
    again = await release(org, cid, boss)
    assert again["errors"] == [] and again["conversation"]["owner"] is None
    assert await server.db.events.count_documents({}) == events
    await room(org, "grabConversation", cid, alice)  # and it can be grabbed again
    assert (await release(org, cid))["errors"] == []  # the organization's owner may too


async def test_every_release_refusal_writes_nothing(make_server):
    server = await make_server(thresholds=CALM)
    org, front, front_channel, (ann, ben, lead), grab, channel, (alice, bob, boss) = await two_desks(server)
    cid = (await org.customer_writes(channel, "c", "hi"))["conversationId"]
    collab_cid = (await org.customer_writes(front_channel, "f", "hi"))["conversationId"]
    closed = (await org.customer_writes(channel, "z", "bye"))["conversationId"]
    await room(org, "grabConversation", cid, alice)
    await room(org, "joinConversation", collab_cid, ann)
    await room(org, "grabConversation", closed, bob)
    await room(org, "closeConversation", closed, bob)  # closed, it keeps its owner
    for code, field, target, person in (
        ("NOT_FOUND", "id", "0123456789abcdef01234567", alice),
        ("NOT_FOUND", "id", cid, bob),  # alice's: bob can't see it
        ("NOT_FOUND", "id", cid, ann),
        ("NOT_GRAB_TEAM", None, collab_cid, ann),
        ("NOT_GRAB_TEAM", None, collab_cid, lead),
        ("CONVERSATION_CLOSED", None, closed, bob),
        ("CONVERSATION_CLOSED", None, closed, boss),
    ):
        before = [await stored(server, c) for c in (cid, collab_cid, closed)]
        events = await server.db.events.count_documents({})
        payload = await release(org, target, person)
        assert payload == {"conversation": None, "errors": [{"code": code, "field": field}]}, (code, payload)
        assert [await stored(server, c) for c in (cid, collab_cid, closed)] == before
        assert await server.db.events.count_documents({}) == events
    # FORBIDDEN (neither owner nor admin) is a rule of its own, beside visibility: see below


# --- races ------------------------------------------------------------------------------------------


async def test_a_transfer_racing_grabs_exactly_one_wins(make_server):
    server = await make_server(thresholds=CALM)
    org, front, _, (ann, ben, lead), grab, channel, (alice, bob, boss) = await two_desks(server)
    cids = [(await org.customer_writes(channel, f"r{n}", "who's first?"))["conversationId"] for n in range(8)]
    grab_query = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"

    async def grab_it(cid: str, person: Person) -> dict:
        return (await org.gql(grab_query, {"id": cid}, as_=person))["grabConversation"]

    for cid in cids:
        moved, by_alice, by_bob = await asyncio.gather(
            transfer(org, cid, boss, toTeamId=front, note="race"), grab_it(cid, alice), grab_it(cid, bob)
        )
        results = {"transfer": moved, alice.id: by_alice, bob.id: by_bob}
        winners = [who for who, r in results.items() if r["errors"] == []]
        assert len(winners) == 1, results
        doc = await stored(server, cid)
        if winners == ["transfer"]:
            assert (doc["team_id"], doc["participants"], doc.get("owner_id")) == (front, [], None)
            # alice and bob are not in the front desk: it's gone, or (judged before it moved) grabbed first
            assert {codes(by_alice)[0], codes(by_bob)[0]} <= {"NOT_FOUND", "ALREADY_GRABBED"}
        else:
            (owner,) = winners
            assert (doc["team_id"], doc["participants"], doc["owner_id"]) == (grab, [owner], owner)
            assert codes(moved) == ["ALREADY_GRABBED"]
        kinds = [e["kind"] async for e in server.db.events.find({"conversation._id": cid}).sort("seq", 1)]
        assert kinds == ["CREATED", "TRANSFERRED" if winners == ["transfer"] else "GRABBED"]


async def test_two_admins_transferring_at_once_never_act_on_a_stale_read(make_server):
    """Each lands only on the team it read: both may win one after the other, or one loses; never
    does one undo the other unseen. The TRANSFERRED events chain from the team each one left."""
    server = await make_server(thresholds=CALM)
    org, front, _, (ann, ben, lead), grab, channel, (alice, bob, boss) = await two_desks(server)
    third = await org.team("Third")
    admin = await org.member("second-admin", "ADMIN")
    lost = 0
    for n in range(6):
        cid = (await org.customer_writes(channel, f"t{n}", "hi"))["conversationId"]
        results = await asyncio.gather(
            transfer(org, cid, boss, toTeamId=front), transfer(org, cid, admin, toTeamId=third)
        )
        losers = [r for r in results if r["errors"]]
        # boss no longer sees it once it is in Third; the organization admin sees it moved
        assert all(codes(r)[0] in ("NOT_FOUND", "CONVERSATION_CHANGED") for r in losers), results
        lost += len(losers)
        moves = await server.db.events.find({"conversation._id": cid, "kind": "TRANSFERRED"}).sort("seq", 1).to_list()
        assert len(moves) == 2 - len(losers)
        left = grab
        for move in moves:
            assert move["team_before"] == left
            left = move["conversation"]["team_id"]
        assert (await stored(server, cid))["team_id"] == left


# --- the use cases on an in-memory store: races staged between the read and the update -----------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRAB_TEAM = Team(
    id="g" * 24,
    org_id="o",
    name="Grab",
    mode=TeamMode.GRAB,
    memberships=(
        TeamMembership("a" * 24, TeamRole.REPRESENTATIVE),
        TeamMembership("b" * 24, TeamRole.REPRESENTATIVE),
        TeamMembership("c" * 24, TeamRole.ADMIN),
    ),
)
FRONT = Team(id="f" * 24, org_id="o", name="Front", mode=TeamMode.COLLABORATION)
ALICE, BOB, BOSS = "a" * 24, "b" * 24, "c" * 24


class RacingStore:
    """One conversation in memory, changed by ``domain.changes.apply`` as the store would; the next of
    ``meanwhile`` (a change, or several) is made just before each conditional update, as concurrent
    requests landing first."""

    def __init__(self, conversation: Conversation, meanwhile: list) -> None:
        self.current = conversation
        self.meanwhile = meanwhile
        self.published: list = []

    async def conversation(self, org_id: str, conversation_id: str) -> Conversation | None:
        return self.current if conversation_id == self.current.id else None

    async def change_conversation(self, conversation_id: str, change: changes.Change) -> Conversation | None:
        if self.meanwhile:
            first = self.meanwhile.pop(0)
            for other in first if isinstance(first, tuple) else (first,):
                self.current = changes.apply(other, self.current) or self.current
        after = changes.apply(change, self.current)
        self.current = after or self.current
        return after

    async def members_by_ids(self, org_id: str, ids: list[str]) -> list[Member]:
        return [Member(i, "o", f"{i}@x.test", i, OrgRole.MEMBER, NOW) for i in ids]

    async def publish(self, event) -> None:
        self.published.append(event)

    def new_id(self) -> str:  # the history's line
        return f"line{len(self.published)}"

    async def insert_message(self, message, *, offer: bool = True):
        return message


def viewer(member_id: str, role: OrgRole = OrgRole.MEMBER) -> Viewer:
    return Viewer(member_id=member_id, org_id="o", org_role=role, teams=(GRAB_TEAM, FRONT))


def open_conversation(**facts) -> Conversation:
    return Conversation(
        id="9" * 24,
        org_id="o",
        team_id=GRAB_TEAM.id,
        channel_id="ch",
        channel_type=ChannelType.LINE,
        channel_name="Line",
        customer_id="cu",
        last_customer_message_at=NOW,
        waiting_since=NOW,
        **facts,
    )


async def play(store: RacingStore, use_case) -> Refused | None:
    try:
        await use_case
    except Refused as refused:
        return refused
    return None


CHIEF = "d" * 24  # an organization admin: sees every team


@pytest.mark.parametrize(
    "meanwhile, who, code",
    [
        ([changes.grab(BOB, NOW, team_id=GRAB_TEAM.id)], BOSS, ErrorCode.ALREADY_GRABBED),
        ([changes.transfer(open_conversation(), FRONT.id, (), None, NOW)], CHIEF, ErrorCode.CONVERSATION_CHANGED),
        ([changes.transfer(open_conversation(), FRONT.id, (), None, NOW)], BOSS, ErrorCode.NOT_FOUND),  # gone
        ([changes.close(ClosedReason.MANUAL, NOW, NOW)], BOSS, ErrorCode.CONVERSATION_CLOSED),
        (  # the room changes under every try
            [changes.join(BOSS, NOW), changes.leave(BOSS, NOW, release=False), changes.join(BOSS, NOW)],
            CHIEF,
            ErrorCode.CONVERSATION_CHANGED,
        ),
    ],
    ids=["grab", "transfer", "transfer-out-of-sight", "close", "joins"],
)
async def test_a_transfer_that_loses_a_race_says_to_whom_and_changes_nothing(meanwhile, who, code):
    store = RacingStore(open_conversation(), list(meanwhile))
    request = rooms.TransferRequest(open_conversation().id, to_team_id=FRONT.id)
    actor = viewer(who, OrgRole.ADMIN if who == CHIEF else OrgRole.MEMBER)
    refused = await play(store, rooms.transfer_conversation(store, store, actor, request, NOW, CALM))
    assert refused is not None and refused.code is code
    assert store.published == []


async def test_a_transfer_whose_room_changed_once_is_tried_again_on_the_new_room():
    store = RacingStore(open_conversation(), [changes.join(BOSS, NOW)])
    request = rooms.TransferRequest(open_conversation().id, to_team_id=GRAB_TEAM.id, to_member_id=ALICE)
    done = await rooms.transfer_conversation(store, store, viewer(BOSS), request, NOW, CALM)
    assert (done.conversation.owner_id, done.conversation.participants) == (ALICE, (BOSS, ALICE))
    assert [e.kind.value for e in store.published] == ["TRANSFERRED"]


async def test_a_release_that_loses_a_race_says_so_and_one_landing_after_a_release_is_a_no_op():
    owned = open_conversation(owner_id=ALICE, participants=(ALICE,))
    store = RacingStore(owned, [(changes.release(owned, NOW), changes.grab(BOB, NOW, team_id=GRAB_TEAM.id))])
    refused = await play(store, rooms.release_conversation(store, store, viewer(BOSS), owned.id, NOW, CALM))
    # released by alice, then grabbed by bob, both before the admin's update: bob's grab stays
    assert refused is not None and refused.code is ErrorCode.ALREADY_GRABBED and store.current.owner_id == BOB
    store = RacingStore(owned, [changes.release(owned, NOW)])
    done = await rooms.release_conversation(store, store, viewer(BOSS), owned.id, NOW, CALM)
    assert done.owner_id is None and store.published == []


async def test_only_the_owner_or_an_admin_releases_even_if_others_could_see_it(monkeypatch):
    """Today only they can see an owned GRAB conversation; the rule doesn't lean on that."""
    owned = open_conversation(owner_id=ALICE, participants=(ALICE,))
    store = RacingStore(owned, [])

    async def visible_to_anyone(store, viewer, conversation_id):
        return store.current

    monkeypatch.setattr(rooms, "load_visible", visible_to_anyone)
    refused = await play(store, rooms.release_conversation(store, store, viewer(BOB), owned.id, NOW, CALM))
    assert refused is not None and refused.code is ErrorCode.FORBIDDEN and store.current == owned
    assert (await rooms.release_conversation(store, store, viewer(ALICE), owned.id, NOW, CALM)).owner_id is None


def test_a_release_needs_an_owner():
    with pytest.raises(ValueError):
        changes.release(replace(open_conversation(), owner_id=None), NOW)


# --- cost -------------------------------------------------------------------------------------------


async def test_a_transfer_and_a_release_cost_a_fixed_few_commands(mongo_uri, data_dir):
    """MongoDB commands per request, as the README states them (the event log's two commands included),
    for the mutation itself: fields of members in the selection (``owner``, ``representatives``) add
    one batched read, as anywhere else."""
    commands = Commands()
    server = conftest.Server(conftest.make_settings(mongo_uri, data_dir, thresholds=CALM), [commands])
    server.server.config.app = tag_requests(server.app)
    await server.start()
    try:
        org, front, front_channel, (ann, ben, lead), grab, channel, (alice, bob, boss) = await two_desks(server)
        offered = (await org.customer_writes(front_channel, "o", "hi"))["conversationId"]
        handed = (await org.customer_writes(channel, "h", "hi"))["conversationId"]
        await room(org, "joinConversation", offered, ann)
        await room(org, "grabConversation", handed, alice)

        async def cost(tag: str, query: str, variables: dict) -> list[str]:
            response = await server.http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {org.owner.token}", "X-Cost-Tag": tag},
            )
            body = response.json()
            assert "errors" not in body and all(not v["errors"] for v in body["data"].values()), body
            return commands.by_tag[tag]

        transfer_ = """mutation($i: TransferConversationInput!) { transferConversation(input: $i) {
            conversation { id status } note errors { code } } }"""
        release_ = "mutation($id: ID!) { releaseConversation(id: $id) { conversation { id status } errors { code } } }"
        measured = {
            "transfer, offered to a GRAB team, one in the room": await cost(
                "offer", transfer_, {"i": {"id": offered, "toTeamId": grab, "note": "n"}}
            ),
            "transfer, handed to a representative": await cost(
                "hand", transfer_, {"i": {"id": handed, "toMemberId": bob.id}}
            ),
            "release": await cost("release", release_, {"id": handed}),
        }
        print("\nMongoDB commands per request:", json.dumps(measured, indent=1))
        counter, event = "findAndModify counters", "insert events"  # the event log: its id taken first
        assert measured["transfer, offered to a GRAB team, one in the room"] == [
            "aggregate members",  # authentication: the viewer and every team of the organization
            "find conversations",
            "find members",  # is anyone left in the room an organization admin?
            "findAndModify conversations",
            "insert messages",  # the history's line (its number rides on the update above)
            counter,
            "find teams",  # who is offered it
            "find members",  # which of them are online and AVAILABLE (offered first)
            "insert notifications",
            event,
        ]
        assert measured["transfer, handed to a representative"] == [
            "aggregate members",
            "find conversations",
            "find members",  # the representative (and the room, in the same read)
            "findAndModify conversations",
            "insert messages",  # the history's line (its number rides on the update above)
            counter,
            "insert notifications",
            event,
        ]
        assert measured["release"] == [
            "aggregate members",
            "find conversations",
            "findAndModify conversations",
            "insert messages",  # the history's line (its number rides on the update above)
            counter,
            "find teams",
            "find members",  # availability: who is offered it first
            "insert notifications",
            event,
        ]
    finally:
        await server.stop()
