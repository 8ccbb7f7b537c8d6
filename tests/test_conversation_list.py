"""The conversation list: views, filters, counts, privacy, ordering, paging and its cost.

Most tests read one hand-built inbox (see :func:`build_inbox` for its rows) on a
server shared by this module; tests that change things use an organization of
their own, or a server of their own when they need other thresholds.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
from collections import defaultdict
from dataclasses import dataclass

import pytest
from pymongo import monitoring

from domain.status import Thresholds
from tests import conftest
from tests.clock import FakeClock
from tests.world import Org, Person, new_org

# Long enough that nothing changes status by itself while a test runs.
CALM = Thresholds(soon_after_s=600, overdue_after_s=1200, auto_close_after_s=3600, presence_timeout_s=600)
STATUSES = ["ONLINE", "REP_NEEDED", "PENDING", "SOON_TO_BE", "OVERDUE", "REPLIED", "CLOSED"]

LIST = """query($f: ConversationFilter, $o: ConversationOrder, $first: Int!, $after: String) {
    conversations(filter: $f, orderBy: $o, first: $first, after: $after) {
        totalCount edges { cursor node { id status customer { name } } } pageInfo { hasNextPage endCursor } } }"""
COUNTS = """query($f: ConversationFilter) { conversationCounts(filter: $f) { status count } }"""

# One request: the unfiltered list, the list filtered on each status alone, and the badges.
_PER_STATUS = "\n".join(
    f"""{s}: conversations(filter: $f{s}, first: 100) {{ totalCount edges {{ node {{ customer {{ name }} }} }} }}"""
    for s in STATUSES
)
SNAPSHOT = (
    "query($f: ConversationFilter, "
    + ", ".join(f"$f{s}: ConversationFilter" for s in STATUSES)
    + """) {
    all: conversations(filter: $f, first: 100) { totalCount edges { node { status customer { name } } } }
    badges: conversationCounts(filter: $f) { status count }
"""
    + _PER_STATUS
    + "\n}"
)


@dataclass
class Snapshot:
    rows: dict[str, str]  # customer name -> status shown on the row
    by_status: dict[str, list[str]]  # status filter -> customer names listed
    totals: dict[str, int]  # status filter -> totalCount of that list
    badges: dict[str, int]  # conversationCounts


async def snapshot(org: Org, as_: Person, narrowing: dict | None = None) -> Snapshot:
    variables = {"f": narrowing, **{f"f{s}": {**(narrowing or {}), "statuses": [s]} for s in STATUSES}}
    data = await org.gql(SNAPSHOT, variables, as_=as_)
    assert [b["status"] for b in data["badges"]] == STATUSES
    assert data["all"]["totalCount"] == len(data["all"]["edges"])
    return Snapshot(
        rows={e["node"]["customer"]["name"]: e["node"]["status"] for e in data["all"]["edges"]},
        by_status={s: [e["node"]["customer"]["name"] for e in data[s]["edges"]] for s in STATUSES},
        totals={s: data[s]["totalCount"] for s in STATUSES},
        badges={b["status"]: b["count"] for b in data["badges"]},
    )


async def listing(
    org: Org,
    as_: Person,
    flt: dict | None = None,
    order: str = "LAST_ACTIVITY_DESC",
    first: int = 100,
    after: str | None = None,
) -> dict:
    data = await org.gql(LIST, {"f": flt, "o": order, "first": first, "after": after}, as_=as_)
    return data["conversations"]


async def names(org: Org, as_: Person, flt: dict | None = None, order: str = "LAST_ACTIVITY_DESC") -> list[str]:
    """Customer names of the whole list in order (asserting totalCount agrees)."""
    page = await listing(org, as_, flt, order)
    assert page["pageInfo"]["hasNextPage"] is False
    found = [e["node"]["customer"]["name"] for e in page["edges"]]
    assert page["totalCount"] == len(found), (flt, page)
    return found


async def counts(org: Org, as_: Person, flt: dict | None = None) -> dict[str, int]:
    rows = (await org.gql(COUNTS, {"f": flt}, as_=as_))["conversationCounts"]
    assert [r["status"] for r in rows] == STATUSES
    return {r["status"]: r["count"] for r in rows}


async def error_code(org: Org, query: str, variables: dict, as_: Person | None = None) -> str:
    body = await org.gql(query, variables, as_=as_, expect_errors=True)
    assert body.get("data") is None, body
    return body["errors"][0]["extensions"]["code"]


async def room(org: Org, action: str, conversation_id: str, as_: Person) -> None:
    data = await org.gql(
        f"mutation($id: ID!) {{ {action}(id: $id) {{ errors {{ code }} }} }}", {"id": conversation_id}, as_=as_
    )
    assert data[action]["errors"] == [], (action, data)


async def reply(org: Org, conversation_id: str, as_: Person, text: str = "On it") -> None:
    data = await org.gql(
        """mutation($i: SendMessageInput!) { sendMessage(input: $i) { errors { code } } }""",
        {"i": {"conversationId": conversation_id, "text": text}},
        as_=as_,
    )
    assert data["sendMessage"]["errors"] == [], data


async def presence(org: Org, channel, external_id: str, online: bool) -> None:
    response = await org.server.presence(
        channel.id, channel.key, {"customer": {"externalId": external_id}, "online": online}
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def calm_server(mongo_uri, data_dir):
    """One server for the module (each test works in its own organization)."""
    server = await conftest.Server(conftest.make_settings(mongo_uri, data_dir, thresholds=CALM)).start()
    yield server
    await server.stop()


# --- the hand-built inbox -------------------------------------------------------------------------


@dataclass
class Inbox:
    org: Org
    collab: str
    grab: str
    rep_a: Person  # GRAB representative, grabbed Eve and Gil
    rep_b: Person  # GRAB representative
    grab_admin: Person  # ADMIN of the GRAB team, plain organization member
    agent_c: Person  # COLLABORATION representative, joined Bob and Cat
    org_admin: Person  # organization ADMIN, in no team
    ids: dict[str, str]


async def build_inbox(server) -> Inbox:
    """
    name  channel    team    facts                                   status      visible to
    Ann   WEB_WIDGET collab  nobody joined, online, wrote twice      REP_NEEDED  owner, org admin, C
    Bob   LINE       collab  C joined, no reply                      PENDING     owner, org admin, C
    Cat   LINE       collab  C joined and replied                    REPLIED     owner, org admin, C
    Dan   WEB_WIDGET collab  closed by the owner                     CLOSED      owner, org admin, C
    Eve   WHATSAPP   grab    grabbed by A, no reply                  PENDING     owner, org admin, grab admin, A
    Fay   WHATSAPP   grab    nobody grabbed                          REP_NEEDED  everyone in grab
    Gil   WHATSAPP   grab    grabbed by A and replied                REPLIED     owner, org admin, grab admin, A
    """
    org = await new_org(server)
    collab, grab = await org.team("Collab"), await org.team("Grab", "GRAB")
    rep_a, rep_b, grab_admin = await org.member("repa"), await org.member("repb"), await org.member("gadmin")
    agent_c, org_admin = await org.member("agentc"), await org.member("oadmin", "ADMIN")
    await org.add(grab, rep_a)
    await org.add(grab, rep_b)
    await org.add(grab, grab_admin, "ADMIN")
    await org.add(collab, agent_c)
    web, line = await org.channel(collab, "WEB_WIDGET", "Site"), await org.channel(collab, "LINE", "Line")
    whatsapp = await org.channel(grab, "WHATSAPP", "WA")
    people = [
        ("Ann Archer", web, "ann@alpha.test", "+852 1111 0001"),
        ("Bob Brown", line, "bob@bravo.test", "+852 2222 0002"),
        ("Cat Cole", line, "cat@charlie.test", None),
        ("Dan Dunn", web, "dan@delta.test", None),
        ("Eve Evans", whatsapp, None, "+852 5555 0005"),
        ("Fay Fox", whatsapp, None, "+852 6666 0006"),
        ("Gil Grant", whatsapp, None, "+852 7777 0007"),
    ]
    ids = {}
    for name, channel, email, phone in people:
        short = name.split()[0]
        customer = {"name": name, **({"email": email} if email else {}), **({"phone": phone} if phone else {})}
        receipt = await org.customer_writes(channel, short.lower(), f"Hi, I am {short}", customer=customer)
        ids[short] = receipt["conversationId"]
    await room(org, "joinConversation", ids["Bob"], agent_c)
    await room(org, "joinConversation", ids["Cat"], agent_c)
    await reply(org, ids["Cat"], agent_c)
    await room(org, "closeConversation", ids["Dan"], org.owner)
    await room(org, "grabConversation", ids["Eve"], rep_a)
    await room(org, "grabConversation", ids["Gil"], rep_a)
    await reply(org, ids["Gil"], rep_a)
    await presence(org, web, "ann", True)
    await org.customer_writes(web, "ann", "Still there?")
    return Inbox(org, collab, grab, rep_a, rep_b, grab_admin, agent_c, org_admin, ids)


@pytest.fixture(scope="module")
async def inbox(calm_server) -> Inbox:
    """Built once and only read by the tests that use it."""
    return await build_inbox(calm_server)


_SURNAMES = {
    "Ann": "Archer",
    "Bob": "Brown",
    "Cat": "Cole",
    "Dan": "Dunn",
    "Eve": "Evans",
    "Fay": "Fox",
    "Gil": "Grant",
}


def full(*first_names: str) -> list[str]:
    return [f"{n} {_SURNAMES[n]}" for n in first_names]


async def test_views_filters_and_combinations_list_exactly_the_expected_rows(inbox):
    org, owner, a, b, c = inbox.org, inbox.org.owner, inbox.rep_a, inbox.rep_b, inbox.agent_c
    open_all = ["Ann", "Gil", "Cat", "Fay", "Eve", "Bob"]  # newest activity first
    cases = [
        # (viewer, filter, expected rows in LAST_ACTIVITY_DESC order)
        (owner, None, open_all),
        (owner, {"view": "ALL"}, open_all),
        (inbox.org_admin, None, open_all),
        (inbox.grab_admin, None, ["Gil", "Fay", "Eve"]),
        (a, None, ["Gil", "Fay", "Eve"]),
        (b, None, ["Fay"]),
        (c, None, ["Ann", "Cat", "Bob"]),
        # view
        (c, {"view": "JOINED"}, ["Cat", "Bob"]),
        (a, {"view": "JOINED"}, ["Gil", "Eve"]),
        (owner, {"view": "JOINED"}, []),
        (b, {"view": "JOINED"}, []),
        # statuses (union; closed only when CLOSED is listed)
        (owner, {"statuses": ["REP_NEEDED"]}, ["Ann", "Fay"]),
        (owner, {"statuses": ["PENDING"]}, ["Eve", "Bob"]),
        (owner, {"statuses": ["ONLINE"]}, ["Ann"]),
        (owner, {"statuses": ["CLOSED"]}, ["Dan"]),
        (owner, {"statuses": ["SOON_TO_BE"]}, []),
        (owner, {"statuses": ["OVERDUE"]}, []),
        (owner, {"statuses": ["REP_NEEDED", "CLOSED"]}, ["Ann", "Fay", "Dan"]),
        (owner, {"statuses": ["PENDING", "ONLINE"]}, ["Ann", "Eve", "Bob"]),
        (owner, {"statuses": ["REPLIED"]}, ["Gil", "Cat"]),
        (owner, {"statuses": ["REPLIED", "PENDING"]}, ["Gil", "Cat", "Eve", "Bob"]),
        (owner, {"statuses": STATUSES}, ["Ann", "Gil", "Cat", "Fay", "Eve", "Dan", "Bob"]),
        (c, {"statuses": ["CLOSED"]}, ["Dan"]),
        (b, {"statuses": ["PENDING"]}, []),
        # teams
        (owner, {"teamIds": [inbox.collab]}, ["Ann", "Cat", "Bob"]),
        (owner, {"teamIds": [inbox.grab], "statuses": ["PENDING"]}, ["Eve"]),
        (c, {"teamIds": [inbox.grab]}, []),  # a team C can't see
        (c, {"teamIds": [inbox.grab], "statuses": STATUSES}, []),
        (c, {"teamIds": [inbox.collab, inbox.grab]}, ["Ann", "Cat", "Bob"]),
        (b, {"teamIds": [inbox.collab]}, []),
        # channels
        (owner, {"channels": ["LINE"]}, ["Cat", "Bob"]),
        (owner, {"channels": ["WEB_WIDGET", "WHATSAPP"]}, ["Ann", "Gil", "Fay", "Eve"]),
        (owner, {"channels": ["WEB_WIDGET"], "statuses": ["CLOSED"]}, ["Dan"]),
        (owner, {"channels": ["FACEBOOK"]}, []),
        # search: name, email, phone; case-insensitive
        (owner, {"search": "archer"}, ["Ann"]),
        (owner, {"search": "BRAVO.TEST"}, ["Bob"]),
        (owner, {"search": "5555"}, ["Eve"]),
        (owner, {"search": "+852"}, ["Ann", "Gil", "Fay", "Eve", "Bob"]),
        (owner, {"search": "dunn"}, []),  # closed
        (owner, {"search": "dunn", "statuses": ["CLOSED"]}, ["Dan"]),
        (owner, {"search": "  fox "}, ["Fay"]),
        # combined
        (c, {"view": "JOINED", "statuses": ["PENDING"]}, ["Bob"]),
        (
            owner,
            {"teamIds": [inbox.collab], "channels": ["WEB_WIDGET"], "statuses": ["REP_NEEDED", "CLOSED"]},
            ["Ann", "Dan"],
        ),
        (owner, {"channels": ["WHATSAPP"], "search": "fay"}, ["Fay"]),
        (
            a,
            {
                "view": "JOINED",
                "teamIds": [inbox.grab],
                "channels": ["WHATSAPP"],
                "statuses": ["PENDING"],
                "search": "evans",
            },
            ["Eve"],
        ),
        (owner, {"view": "ALL", "teamIds": [inbox.grab], "statuses": ["REP_NEEDED", "ONLINE"]}, ["Fay"]),
    ]
    for viewer, flt, expected in cases:
        assert await names(org, viewer, flt) == full(*expected), (viewer, flt)


async def test_channel_ids_narrow_the_list_and_the_badges_to_those_channels(inbox, calm_server):
    org, owner = inbox.org, inbox.org.owner
    ids = {c["name"]: c["id"] for c in (await org.gql("{ channels { id name } }"))["channels"]}
    other = await new_org(calm_server, "Other")
    foreign = await other.channel(await other.team("Theirs"), "LINE", "Line")
    await other.customer_writes(foreign, "x", customer={"name": "Xavier Elsewhere"})
    cases = [
        (owner, {"channelIds": [ids["Line"]]}, ["Cat", "Bob"]),
        (owner, {"channelIds": [ids["Site"], ids["WA"]]}, ["Ann", "Gil", "Fay", "Eve"]),
        (owner, {"channelIds": [ids["Site"]], "statuses": ["CLOSED"]}, ["Dan"]),
        (owner, {"channelIds": [ids["Site"]], "channels": ["WEB_WIDGET"]}, ["Ann"]),
        (owner, {"channelIds": [ids["Site"]], "channels": ["LINE"]}, []),  # both apply
        (owner, {"channelIds": []}, []),
        (owner, {"channelIds": ["0123456789abcdef01234567", "not an id"]}, []),
        (owner, {"channelIds": [foreign.id]}, []),  # another organization's channel
        (inbox.rep_b, {"channelIds": [ids["WA"]]}, ["Fay"]),  # still only what you may see
        (inbox.agent_c, {"channelIds": [ids["WA"], ids["Line"]]}, ["Cat", "Bob"]),
    ]
    for viewer, flt, expected in cases:
        assert await names(org, viewer, flt) == full(*expected), (viewer, flt)
    zero = dict.fromkeys(STATUSES, 0)
    assert await counts(org, owner, {"channelIds": [ids["WA"]]}) == {
        **zero,
        "REP_NEEDED": 1,
        "PENDING": 1,
        "REPLIED": 1,
    }
    assert await counts(org, owner, {"channelIds": [foreign.id]}) == zero


async def test_statuses_shown_on_rows_agree_with_the_filters(inbox):
    shot = await snapshot(inbox.org, inbox.org.owner)
    assert shot.rows == dict(
        zip(
            full("Ann", "Gil", "Cat", "Fay", "Eve", "Bob"),
            ["REP_NEEDED", "REPLIED", "REPLIED", "REP_NEEDED", "PENDING", "PENDING"],
            strict=True,
        )
    )
    closed = await listing(inbox.org, inbox.org.owner, {"statuses": ["CLOSED"]})
    assert [e["node"]["status"] for e in closed["edges"]] == ["CLOSED"]
    # nobody has waited past the "soon" line here, so each row's badge is the one filter it matches
    for status in ("REP_NEEDED", "PENDING", "REPLIED"):
        assert shot.by_status[status] == [name for name, shown in shot.rows.items() if shown == status]


async def test_counts_per_viewer_and_equal_to_total_count_of_the_same_filter(inbox):
    org = inbox.org
    zero = dict.fromkeys(STATUSES, 0)
    everything = {**zero, "ONLINE": 1, "REP_NEEDED": 2, "PENDING": 2, "REPLIED": 2, "CLOSED": 1}
    grab_team = {**zero, "REP_NEEDED": 1, "PENDING": 1, "REPLIED": 1}
    expected = [
        (org.owner, None, everything),
        (inbox.org_admin, None, everything),
        (inbox.grab_admin, None, grab_team),
        (inbox.rep_a, None, grab_team),
        (inbox.rep_b, None, {**zero, "REP_NEEDED": 1}),
        (inbox.agent_c, None, {**zero, "ONLINE": 1, "REP_NEEDED": 1, "PENDING": 1, "REPLIED": 1, "CLOSED": 1}),
        (org.owner, {"channels": ["WHATSAPP"]}, grab_team),
        (org.owner, {"teamIds": [inbox.collab], "search": "ANN"}, {**zero, "ONLINE": 1, "REP_NEEDED": 1}),
        (inbox.agent_c, {"teamIds": [inbox.grab]}, zero),
        (inbox.agent_c, {"view": "JOINED"}, {**zero, "PENDING": 1, "REPLIED": 1}),
        (inbox.rep_b, {"search": "evans"}, zero),
        # `statuses` don't narrow the badges: each badge covers its own status
        (org.owner, {"statuses": ["CLOSED"]}, everything),
    ]
    for viewer, narrowing, want in expected:
        assert await counts(org, viewer, narrowing) == want, (viewer, narrowing)
    # every badge equals the totalCount of the list filtered on that status, under the same narrowing
    narrowings = [
        None,
        {"view": "JOINED"},
        {"teamIds": [inbox.collab]},
        {"channels": ["WEB_WIDGET", "LINE"]},
        {"search": "a"},
        {"teamIds": [inbox.grab], "search": "+852", "channels": ["WHATSAPP"]},
    ]
    viewers = [org.owner, inbox.rep_a, inbox.rep_b, inbox.agent_c]
    for viewer in viewers:
        for narrowing in narrowings:
            shot = await snapshot(org, viewer, narrowing)
            assert shot.badges == shot.totals, (viewer, narrowing)
            assert shot.totals == {s: len(shot.by_status[s]) for s in STATUSES}


async def test_grabbed_conversations_are_invisible_to_other_representatives(inbox):
    org, eve = inbox.org, full("Eve")
    for viewer, sees in (
        (inbox.rep_a, True),
        (inbox.rep_b, False),
        (inbox.grab_admin, True),
        (inbox.org_admin, True),
        (org.owner, True),
        (inbox.agent_c, False),
    ):
        assert (await names(org, viewer, {"search": "evans"}) == eve) is sees
        assert (await names(org, viewer, {"search": "5555", "statuses": STATUSES}) == eve) is sees
        assert (eve[0] in await names(org, viewer, {"statuses": ["PENDING"]})) is sees
        assert (await counts(org, viewer, {"search": "evans"}))["PENDING"] == int(sees)
        found = (
            await org.gql("query($id: ID!) { conversation(id: $id) { id } }", {"id": inbox.ids["Eve"]}, as_=viewer)
        )["conversation"]
        assert (found is not None) is sees


async def test_grab_privacy_follows_the_owner(calm_server):
    org = await new_org(calm_server)
    team = await org.team("Sales", "GRAB")
    a, b, boss = await org.member("a"), await org.member("b"), await org.member("boss")
    for person, role in ((a, "REPRESENTATIVE"), (b, "REPRESENTATIVE"), (boss, "ADMIN")):
        await org.add(team, person, role)
    channel = await org.channel(team, "LINE", "Line")
    receipt = await org.customer_writes(channel, "z", customer={"name": "Zoe Zed", "email": "zoe@zed.test"})
    zoe = receipt["conversationId"]
    for viewer in (a, b, boss):
        assert await names(org, viewer, {"search": "zed"}) == ["Zoe Zed"]
    await room(org, "grabConversation", zoe, a)
    assert await names(org, b) == [] and await names(org, b, {"search": "zoe@"}) == []
    assert await counts(org, b) == dict.fromkeys(STATUSES, 0)
    assert await names(org, boss, {"statuses": ["PENDING"]}) == ["Zoe Zed"]
    # released, it is back in everyone's list; grabbed by B, A loses it
    await room(org, "leaveConversation", zoe, a)
    assert await names(org, b, {"statuses": ["REP_NEEDED"]}) == ["Zoe Zed"]
    await room(org, "grabConversation", zoe, b)
    assert await names(org, a, {"search": "ZOE"}) == []
    assert (await counts(org, a))["PENDING"] == 0
    assert await names(org, b, {"view": "JOINED", "search": "ZOE"}) == ["Zoe Zed"]
    assert await counts(org, boss) == {**dict.fromkeys(STATUSES, 0), "PENDING": 1}
    # closing keeps it private: only its owner and the admins find it among the closed ones
    await room(org, "closeConversation", zoe, b)
    assert await names(org, a, {"statuses": ["CLOSED"], "search": "zed"}) == []
    assert await names(org, b, {"statuses": ["CLOSED"], "search": "zed"}) == ["Zoe Zed"]
    assert await names(org, boss, {"statuses": ["CLOSED"], "search": "zed"}) == ["Zoe Zed"]


async def test_waiting_longest_order_and_its_paging(inbox):
    org = inbox.org
    waiting_longest = full("Ann", "Bob", "Eve", "Fay", "Gil", "Cat")  # oldest wait first, then by activity
    assert await names(org, org.owner, order="WAITING_LONGEST") == waiting_longest
    assert await names(org, org.owner) == full("Ann", "Gil", "Cat", "Fay", "Eve", "Bob")
    assert await names(org, inbox.rep_a, order="WAITING_LONGEST") == full("Eve", "Fay", "Gil")
    assert await names(org, inbox.agent_c, {"view": "JOINED"}, order="WAITING_LONGEST") == full("Bob", "Cat")
    assert await names(org, org.owner, {"statuses": ["REP_NEEDED", "CLOSED"]}, order="WAITING_LONGEST") == full(
        "Ann", "Fay", "Dan"
    )
    for size in (1, 2, 4):
        seen, after = [], None
        for _ in range(10):
            page = await listing(org, org.owner, order="WAITING_LONGEST", first=size, after=after)
            assert page["totalCount"] == 6
            seen += [e["node"]["customer"]["name"] for e in page["edges"]]
            after = page["pageInfo"]["endCursor"]
            if not page["pageInfo"]["hasNextPage"]:
                break
        assert seen == waiting_longest, size


async def test_online_filter_follows_presence(calm_server):
    org = await new_org(calm_server)
    team = await org.team("Support")
    web, line = await org.channel(team), await org.channel(team, "LINE", "Line")
    await org.customer_writes(web, "w1", customer={"name": "Wendy Web"})
    await org.customer_writes(web, "w2", customer={"name": "Walt Web"})
    await org.customer_writes(line, "l1", customer={"name": "Lou Line"})
    online = {"statuses": ["ONLINE"]}
    assert await names(org, org.owner, online) == []
    await presence(org, web, "w1", True)
    assert await names(org, org.owner, online) == ["Wendy Web"]
    assert (await counts(org, org.owner))["ONLINE"] == 1
    await presence(org, web, "w2", True)
    assert await names(org, org.owner, online) == ["Walt Web", "Wendy Web"]
    await presence(org, web, "w1", False)
    assert await names(org, org.owner, online) == ["Walt Web"]
    assert (await counts(org, org.owner))["ONLINE"] == 1
    assert await names(org, org.owner, {"statuses": ["ONLINE"], "channels": ["LINE"]}) == []
    # a customer online before writing is online in the conversation it then opens
    await presence(org, web, "w3", True)
    await org.customer_writes(web, "w3", customer={"name": "Wim Web"})
    assert await names(org, org.owner, online) == ["Wim Web", "Walt Web"]
    # ONLINE lists open conversations only; closed ones need CLOSED
    receipt = await org.customer_writes(web, "w2", "bye")
    await room(org, "closeConversation", receipt["conversationId"], org.owner)
    assert await names(org, org.owner, online) == ["Wim Web"]
    assert await names(org, org.owner, {"statuses": ["ONLINE", "CLOSED"]}) == ["Walt Web", "Wim Web"]
    assert await counts(org, org.owner) == {
        "ONLINE": 1,
        "REP_NEEDED": 3,
        "PENDING": 0,
        "SOON_TO_BE": 0,
        "OVERDUE": 0,
        "REPLIED": 0,
        "CLOSED": 1,
    }


async def test_statuses_flip_with_time_alone(make_server):
    """No background job runs (the sweeper sleeps for an hour): status is judged at query time.
    The server's clock jumps past each threshold; no request writes anything in between."""
    soon, overdue = 60, 300
    clock = FakeClock()
    server = await make_server(
        clock=clock,
        sweep_interval_s=3600,
        thresholds=Thresholds(
            soon_after_s=soon, overdue_after_s=overdue, auto_close_after_s=3600, presence_timeout_s=overdue
        ),
    )
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("agent")
    await org.add(team, agent)
    web = await org.channel(team)
    answered = await org.customer_writes(web, "r", customer={"name": "Rex Replied"})
    await room(org, "joinConversation", answered["conversationId"], agent)
    await reply(org, answered["conversationId"], agent)
    owner = org.owner

    await presence(org, web, "n", True)
    await org.customer_writes(web, "n", customer={"name": "Nell Needy"})
    pend = await org.customer_writes(web, "p", customer={"name": "Pat Pending"})
    await room(org, "joinConversation", pend["conversationId"], agent)
    shot = await snapshot(org, owner)
    assert shot.rows == {"Pat Pending": "PENDING", "Nell Needy": "REP_NEEDED", "Rex Replied": "REPLIED"}
    assert shot.by_status == {
        "ONLINE": ["Nell Needy"],
        "REP_NEEDED": ["Nell Needy"],
        "PENDING": ["Pat Pending"],
        "SOON_TO_BE": [],
        "OVERDUE": [],
        "REPLIED": ["Rex Replied"],
        "CLOSED": [],
    }
    assert (
        shot.badges
        == shot.totals
        == {"ONLINE": 1, "REP_NEEDED": 1, "PENDING": 1, "SOON_TO_BE": 0, "OVERDUE": 0, "REPLIED": 1, "CLOSED": 0}
    )

    # the badge on the row moves to SOON_TO_BE; the filters keep saying who is in the room too,
    # so each waiting conversation is now listed (and counted) under two filters
    clock.advance(soon + 1)
    shot = await snapshot(org, owner)
    assert shot.rows == {"Pat Pending": "SOON_TO_BE", "Nell Needy": "SOON_TO_BE", "Rex Replied": "REPLIED"}
    assert shot.by_status == {
        "ONLINE": ["Nell Needy"],
        "REP_NEEDED": ["Nell Needy"],
        "PENDING": ["Pat Pending"],
        "SOON_TO_BE": ["Pat Pending", "Nell Needy"],
        "OVERDUE": [],
        "REPLIED": ["Rex Replied"],
        "CLOSED": [],
    }
    assert (
        shot.badges
        == shot.totals
        == {"ONLINE": 1, "REP_NEEDED": 1, "PENDING": 1, "SOON_TO_BE": 2, "OVERDUE": 0, "REPLIED": 1, "CLOSED": 0}
    )

    clock.advance(overdue - soon)
    shot = await snapshot(org, owner)
    assert shot.rows == {"Pat Pending": "OVERDUE", "Nell Needy": "OVERDUE", "Rex Replied": "REPLIED"}
    assert shot.by_status == {
        "ONLINE": [],
        "REP_NEEDED": ["Nell Needy"],
        "PENDING": ["Pat Pending"],
        "SOON_TO_BE": [],
        "OVERDUE": ["Pat Pending", "Nell Needy"],
        "REPLIED": ["Rex Replied"],
        "CLOSED": [],
    }, "presence timed out too"
    assert (
        shot.badges
        == shot.totals
        == {"ONLINE": 0, "REP_NEEDED": 1, "PENDING": 1, "SOON_TO_BE": 0, "OVERDUE": 2, "REPLIED": 1, "CLOSED": 0}
    )
    # several filters at once list each conversation once
    assert await names(org, owner, {"statuses": ["REP_NEEDED", "OVERDUE", "PENDING"]}) == ["Pat Pending", "Nell Needy"]
    assert await names(org, owner, order="WAITING_LONGEST") == ["Nell Needy", "Pat Pending", "Rex Replied"]
    # a customer writing again doesn't reset the wait; a reply ends it
    await org.customer_writes(web, "p", "hello??")
    assert await names(org, owner, {"statuses": ["OVERDUE"]}) == ["Pat Pending", "Nell Needy"]
    await reply(org, pend["conversationId"], agent)
    assert await names(org, owner, {"statuses": ["OVERDUE"]}) == ["Nell Needy"]
    assert await names(org, owner, {"statuses": ["REPLIED"]}) == ["Pat Pending", "Rex Replied"]
    assert await names(org, owner, {"statuses": ["PENDING"]}) == []


async def test_search_takes_regex_metacharacters_literally(calm_server):
    org = await new_org(calm_server)
    web = await org.channel(await org.team("Support"))
    customers = ["a.b (c)*", "a+b", "axb", "aab", "ab", "back\\slash [x]", "A-B & c#d {2}"]
    await asyncio.gather(
        *[org.customer_writes(web, f"c{i}", customer={"name": name}) for i, name in enumerate(customers)]
    )
    cases = {
        "a.b": ["a.b (c)*"],
        "A.B": ["a.b (c)*"],
        "(c)*": ["a.b (c)*"],
        "a.b (c)*": ["a.b (c)*"],
        "a+b": ["a+b"],
        "b": customers,
        ".": ["a.b (c)*"],
        "*": ["a.b (c)*"],
        "+": ["a+b"],
        "\\s": ["back\\slash [x]"],
        "\\": ["back\\slash [x]"],
        "[x]": ["back\\slash [x]"],
        "[": ["back\\slash [x]"],
        "-b & C#": ["A-B & c#d {2}"],
        "{2}": ["A-B & c#d {2}"],
        "^a": [],
        "b$": [],
        ".*": [],
        "a|x": [],
        "a?b": [],
    }
    for search, expected in cases.items():
        assert sorted(await names(org, org.owner, {"search": search})) == sorted(expected), search
    assert await counts(org, org.owner, {"search": "a.b"}) == {**dict.fromkeys(STATUSES, 0), "REP_NEEDED": 1}
    assert await error_code(org, LIST, {"f": {"search": "x" * 201}, "first": 5}) == "INVALID_INPUT"


async def test_page_size_over_100_and_garbage_cursors_are_input_errors(inbox):
    org = inbox.org
    assert await error_code(org, LIST, {"first": 101}) == "INVALID_INPUT"
    assert await error_code(org, LIST, {"first": -1}) == "INVALID_INPUT"
    assert len((await listing(org, org.owner, first=100))["edges"]) == 6
    assert (await listing(org, org.owner, first=0))["edges"] == []
    other_order = (await listing(org, org.owner, order="WAITING_LONGEST", first=1))["pageInfo"]["endCursor"]

    def b64(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    last, wait = "LAST_ACTIVITY_DESC", "WAITING_LONGEST"
    garbage = [
        (last, "garbage"),
        (last, "!!!!"),
        (last, "e30="),
        (last, b64([1, 2])),
        (last, b64("x")),
        (last, base64.urlsafe_b64encode(b"\xff\xfe").decode()),
        (last, base64.urlsafe_b64encode(b"[" * 100_000).decode()),
        (last, b64({"o": last})),
        (last, b64({"o": last, "t0": "now", "k": 1, "g": 0, "id": "x"})),
        (last, b64({"o": last, "t0": 1, "k": 1, "g": 0, "id": {"$gt": ""}})),
        (last, b64({"o": last, "t0": 10**30, "k": 1, "g": 0, "id": "x"})),
        (last, b64({"o": last, "t0": 1, "k": -(10**20), "g": 0, "id": "x"})),
        (wait, b64({"o": wait, "t0": 1, "k": 1, "g": 7, "id": "x"})),
        (last, other_order),  # a cursor of another order
    ]
    for order, cursor in garbage:
        code = await error_code(org, LIST, {"first": 5, "after": cursor, "o": order})
        assert code == "INVALID_INPUT", (order, cursor[:80])


# --- paging while customers keep writing -----------------------------------------------------------


async def test_paging_250_while_messages_arrive_sees_each_exactly_once(calm_server):
    org = await new_org(calm_server)
    team = await org.team("Support")
    channels = [await org.channel(team, "WEB_WIDGET", "Site"), await org.channel(team, "LINE", "Line")]
    ids: list[str] = []
    for batch in range(10):
        receipts = await asyncio.gather(
            *[
                org.customer_writes(channels[i % 2], f"c{i}", customer={"name": f"Customer {i:03d}"})
                for i in range(batch * 25, batch * 25 + 25)
            ]
        )
        ids += [r["conversationId"] for r in receipts]
    number = {cid: i for i, cid in enumerate(ids)}
    assert len(number) == 250

    async def write_again(cid: str, text: str) -> None:
        await org.customer_writes(channels[number[cid] % 2], f"c{number[cid]}", text)

    seen: list[str] = []
    after, pages, newcomers, moved_unseen, moved_seen = None, 0, 0, 0, 0
    while True:
        page = await listing(org, org.owner, first=20, after=after)
        pages += 1
        assert len(page["edges"]) <= 20
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        # between pages: some customers not yet seen and some already seen write again (jumping
        # to the top of the list), and now and then a brand-new customer arrives
        shown = set(seen)
        unseen = [cid for cid in ids if cid not in shown]
        movers = unseen[:1] + unseen[len(unseen) // 2 :][:1] + unseen[-1:] + seen[::7][-2:]
        moved_unseen += len(set(movers) - shown)
        moved_seen += len(set(movers) & shown)
        await asyncio.gather(*[write_again(cid, f"again {pages}") for cid in set(movers)])
        if pages % 4 == 0:
            await org.customer_writes(channels[0], f"new{pages}", customer={"name": f"Newcomer {pages}"})
            newcomers += 1
        assert pages < 40, "paging does not end"
    assert len(seen) == len(set(seen)), "an item was repeated"
    missing = set(ids) - set(seen)
    assert not missing, f"{len(missing)} skipped"
    assert pages >= 13 and newcomers >= 2 and moved_unseen >= 30 and moved_seen >= 20
    # a fresh listing sees everything, newcomers included
    assert (await listing(org, org.owner, first=1))["totalCount"] == 250 + newcomers


# --- cost ---------------------------------------------------------------------------------------------

_REQUEST_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_tag", default=None)
IGNORED_COMMANDS = {"ping", "endSessions", "hello", "isMaster", "ismaster"}


class Commands(monitoring.CommandListener):
    """MongoDB commands started while serving a tagged request.

    Background workers (outbox, sweeper) issue commands at any time; attributing
    each command to the request whose task started it keeps them out of the count.
    """

    def __init__(self) -> None:
        self.by_tag: dict[str, list[str]] = defaultdict(list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        tag = _REQUEST_TAG.get()
        if tag is not None and event.command_name not in IGNORED_COMMANDS:
            self.by_tag[tag].append(f"{event.command_name} {event.command.get(event.command_name)}")

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def tag_requests(app):
    """ASGI wrapper: a request's ``X-Cost-Tag`` header is visible to the command listener."""

    async def tagged(scope, receive, send):
        tag = dict(scope.get("headers") or []).get(b"x-cost-tag") if scope["type"] == "http" else None
        token = _REQUEST_TAG.set(tag.decode() if tag else None)
        try:
            await app(scope, receive, send)
        finally:
            _REQUEST_TAG.reset(token)

    return tagged


FULL_PAGE = """query($first: Int!, $after: String) { conversations(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id status waitingSince joinedByMe representativeCount emailFallbackActive
        unreadCount lastReadAt
        customer { id name email phone online }
        team { id name mode }
        channel { id type name }
        representatives { id name }
        owner { id name }
        lastMessage { id text seq createdAt kind } } } } }"""


FRAGMENT_PAGE = """query($first: Int!, $after: String) { conversations(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ...Row } } } }
fragment Row on Conversation { id ... on Conversation { customer { id name email phone online } }
    representatives { id name } owner { id name } }"""
BARE_PAGE = """query($first: Int!, $after: String) { conversations(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status } } } }"""


async def test_a_full_page_costs_the_same_few_commands_whatever_its_size(mongo_uri, data_dir):
    commands = Commands()
    server = conftest.Server(conftest.make_settings(mongo_uri, data_dir, thresholds=CALM), [commands])
    server.server.config.app = tag_requests(server.app)
    await server.start()
    try:
        org = await new_org(server)
        collab, grab = await org.team("Collab"), await org.team("Grab", "GRAB")
        agents = [await org.member(f"agent{i}") for i in range(2)]
        for agent in agents:
            await org.add(collab, agent)
            await org.add(grab, agent)
        web, whatsapp = await org.channel(collab), await org.channel(grab, "WHATSAPP", "WA")
        receipts = []
        for batch in range(3):
            receipts += await asyncio.gather(
                *[
                    org.customer_writes(web if i % 2 else whatsapp, f"c{i}", customer={"name": f"Customer {i}"})
                    for i in range(batch * 20, batch * 20 + 20)
                ]
            )
        # members in most rooms: joined (COLLABORATION) or grabbed, so owned (GRAB)
        await asyncio.gather(
            *[
                room(org, "joinConversation" if i % 2 else "grabConversation", r["conversationId"], agents[i // 2 % 2])
                for i, r in enumerate(receipts)
                if i % 4 != 3
            ]
        )

        async def cost(tag: str, first: int, after: str | None = None, query=FULL_PAGE) -> tuple[list[str], dict]:
            response = await server.http.post(
                "/graphql",
                json={"query": query, "variables": {"first": first, "after": after}},
                headers={"Authorization": f"Bearer {org.owner.token}", "X-Cost-Tag": tag},
            )
            body = response.json()
            assert "errors" not in body, body
            return commands.by_tag[tag], body["data"]["conversations"]

        measured = {}
        for first in (10, 50):
            spent, page = await cost(f"first-{first}", first)
            nodes = [e["node"] for e in page["edges"]]
            assert len(nodes) == first and page["totalCount"] == 60
            assert all(n["customer"]["name"] and n["lastMessage"]["text"] and n["team"] for n in nodes)
            assert sum(bool(n["owner"]) for n in nodes) >= first // 5
            assert sum(bool(n["representatives"]) for n in nodes) >= first // 2
            assert all(len(n["representatives"]) == n["representativeCount"] for n in nodes)
            measured[first] = spent
        # the rows' customers and members are loaded before the rows resolve (api/graphql/prefetch.py):
        # through fragments too, in the same two batches, and not at all when not asked for
        related, full = await cost("fragments", 10, query=FRAGMENT_PAGE), await cost("again", 10)
        assert [e["node"] for e in related[1]["edges"]] == [
            {k: e["node"][k] for k in ("id", "customer", "representatives", "owner")} for e in full[1]["edges"]
        ]
        assert sorted(related[0]) == sorted(full[0])
        bare, _ = await cost("bare", 10, query=BARE_PAGE)
        assert not [c for c in bare if "customers" in c or c.startswith("find members")], bare
        # pages after a cursor also look for conversations that moved since paging began, in the same command
        _, page = await cost("first-5", 5)
        for first in (10, 50):
            measured[f"{first} after a cursor"], _ = await cost(f"after-{first}", first, page["pageInfo"]["endCursor"])
        response = await server.http.post(
            "/graphql",
            json={"query": COUNTS},
            headers={"Authorization": f"Bearer {org.owner.token}", "X-Cost-Tag": "counts"},
        )
        assert "errors" not in response.json()
        measured["counts"] = commands.by_tag["counts"]
        response = await server.http.post(
            "/graphql",
            json={"query": "{ conversationCounts { status count unread } }"},
            headers={"Authorization": f"Bearer {org.owner.token}", "X-Cost-Tag": "counts-unread"},
        )
        assert "errors" not in response.json()
        measured["counts with unread"] = commands.by_tag["counts-unread"]
        print("\nMongoDB commands per request:", json.dumps(measured, indent=1))
        # auth, page, total, customers, members: lastMessage is the conversation's own copy, and
        # unreadCount / lastReadAt are read off the same row (the caller's mark and the customer
        # message count live on the conversation): no command for them, per page or per row
        assert len(measured[10]) == len(measured[50]) == 5, measured
        assert measured[10][0] == "aggregate members", "authentication: one load_viewer aggregation"
        assert not [c for c in measured[10] + measured[50] if "messages" in c], "the page reads no messages"
        assert len(measured["10 after a cursor"]) == len(measured["50 after a cursor"]) == 5, measured
        # badges: one indexed count per status filter value ($facet can't use indexes), sent together
        assert measured["counts"][0] == "aggregate members", measured
        assert len(measured["counts"]) == 1 + len(STATUSES), measured
        assert all(c.endswith(" conversations") for c in measured["counts"][1:]), measured
        # each badge's `unread`, when asked for: one more indexed count per badge, sent together
        assert len(measured["counts with unread"]) == 1 + 2 * len(STATUSES), measured
        assert all(c.endswith(" conversations") for c in measured["counts with unread"][1:]), measured
    finally:
        await server.stop()


async def test_no_filter_ever_lists_or_counts_another_organizations_conversations(calm_server):
    """Two organizations with the same customers in every status: each sees only its own,
    whatever the filter (status unions and searches compile to $or beside org_id)."""
    ours, theirs = await build_inbox(calm_server), await build_inbox(calm_server)
    own_ids, their_ids = set(ours.ids.values()), set(theirs.ids.values())
    filters = [
        None,
        {"search": "a"},
        {"statuses": ["REP_NEEDED", "CLOSED"]},
        {"statuses": ["CLOSED"]},
        {"statuses": ["PENDING", "OVERDUE"], "search": "e"},
        {"channels": ["WHATSAPP", "LINE"]},
    ]
    for viewer in (ours.org.owner, ours.rep_a, ours.agent_c, ours.org_admin):
        for flt in filters:
            data = await ours.org.gql(
                """query($f: ConversationFilter) {
                conversations(filter: $f, first: 100) { totalCount edges { node { id } } }
                conversationCounts(filter: $f) { status count } }""",
                {"f": flt},
                as_=viewer,
            )
            listed = {e["node"]["id"] for e in data["conversations"]["edges"]}
            assert listed <= own_ids and not listed & their_ids, (viewer, flt)
            assert data["conversations"]["totalCount"] == len(listed), (viewer, flt)
            assert all(c["count"] <= len(own_ids) for c in data["conversationCounts"]), (viewer, flt)
    everything = await ours.org.gql("""{ conversationCounts(filter: {statuses: [CLOSED]}) { status count } }""")
    assert {c["status"]: c["count"] for c in everything["conversationCounts"]}["CLOSED"] == 1


async def test_a_member_of_collaboration_and_grab_teams_pages_through_exactly_what_they_may_see(calm_server):
    """Their visibility is an $or (their COLLABORATION team, or their GRAB team's unowned and own
    conversations): the merged branches must page in one order, count once, and hide the rest."""
    org = await new_org(calm_server)
    collab, grab = await org.team("Collab"), await org.team("Grab", "GRAB")
    both, rival = await org.member("both"), await org.member("rival")
    await org.add(collab, both)
    await org.add(grab, both)
    await org.add(grab, rival)
    line, whatsapp = await org.channel(collab, "LINE"), await org.channel(grab, "WHATSAPP")
    expected, hidden = [], []
    for i, (channel, grabber) in enumerate(
        [
            (line, None),
            (whatsapp, None),
            (line, None),
            (whatsapp, both),
            (whatsapp, rival),
            (line, None),
            (whatsapp, None),
            (whatsapp, rival),
        ]
    ):
        cid = (await org.customer_writes(channel, f"c{i}", f"message {i}"))["conversationId"]
        if grabber is not None:
            await room(org, "grabConversation", cid, grabber)
        (hidden if grabber is rival else expected).append(cid)
    newest_first = list(reversed(expected))
    seen, after = [], None
    while True:
        page = await listing(org, both, first=2, after=after)
        assert page["totalCount"] == len(expected)
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == newest_first
    waiting = await listing(org, both, order="WAITING_LONGEST", first=3)
    assert [e["node"]["id"] for e in waiting["edges"]] == expected[:3]
    badges = await org.gql(COUNTS, as_=both)
    assert {c["status"]: c["count"] for c in badges["conversationCounts"]}["REP_NEEDED"] == len(expected) - 1
