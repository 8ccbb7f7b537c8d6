"""Message search: `searchMessages` finds messages by their words, newest first, only in
conversations the caller may see, paged stably; the conversation list's `search` also matches
message text at one more command; every refusal is typed.

One server and one hand-built desk for the module (tests that write use conversations of their
own); the suite's database is the embedded nx-27017 server, so the text index path it runs
($text on an FTS5 table, beside flat conditions only) is the one tested here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from api.store import codec
from domain import search
from domain.entities import Message
from domain.enums import MessageKind, SenderKind
from tests import conftest
from tests.test_api_keys import create_key
from tests.test_conversation_list import CALM, Commands, room, tag_requests
from tests.world import Org, Person, new_org

SEARCH = """query($q: String!, $f: ConversationFilter, $first: Int, $after: String) {
    searchMessages(query: $q, filter: $f, first: $first, after: $after) {
        examined pageInfo { hasNextPage endCursor }
        edges { cursor node { id kind text } conversation { id customer { name } } } } }"""
LIST = """query($f: ConversationFilter) { conversations(filter: $f, first: 20) {
    totalCount edges { node { id } } } }"""
COUNTS = """query($f: ConversationFilter) { conversationCounts(filter: $f) { status count } }"""
NOTE = "mutation($i: AddNoteInput!) { addNote(input: $i) { errors { code } } }"


class SearchCommands(Commands):
    """Also keeps the filters of the text searches' finds on messages."""

    def __init__(self) -> None:
        super().__init__()
        self.message_filters: list[dict] = []

    def started(self, event) -> None:
        super().started(event)
        if (
            event.command_name == "find"
            and event.command.get("find") == "messages"
            and "$text" in event.command["filter"]
        ):
            self.message_filters.append(event.command["filter"])


@pytest.fixture(scope="module")
async def server(mongo_uri, data_dir):
    commands = SearchCommands()
    server = conftest.Server(conftest.make_settings(mongo_uri, data_dir, thresholds=CALM), [commands])
    server.server.config.app = tag_requests(server.app)
    server.commands = commands  # type: ignore[attr-defined]
    await server.start()
    yield server
    await server.stop()


@dataclass
class Desk:
    org: Org
    collab: str
    rep_a: Person  # GRAB representative, grabbed Eve's conversation
    rep_b: Person  # GRAB representative
    grab_admin: Person  # ADMIN of the GRAB team
    agent_c: Person  # COLLABORATION representative, joined Ann's conversation
    outsider: Person  # in no team
    ids: dict[str, str]
    other_org: Org


@pytest.fixture(scope="module")
async def desk(server) -> Desk:
    """
    conversation  team    messages (oldest first)                                    visible to
    Ann           collab  "My parcel never arrived"                                   owner, C
    Eve           grab    "Parcel damaged, I want a refund" (grabbed by A)            owner, A, grab admin
    Fay           grab    "Where is my PARCEL?" (unowned)                             owner, A, B, grab admin
    Ann           collab  then a note by C: "Parcel lost, refund ok" (the newest)
    and another organization whose customer writes "parcel refund arrived".
    """
    org = await new_org(server)
    collab, grab = await org.team("Collab"), await org.team("Grab", "GRAB")
    rep_a, rep_b, grab_admin = await org.member("repa"), await org.member("repb"), await org.member("gadmin")
    agent_c, outsider = await org.member("agentc"), await org.member("outsider")
    await org.add(grab, rep_a)
    await org.add(grab, rep_b)
    await org.add(grab, grab_admin, "ADMIN")
    await org.add(collab, agent_c)
    web, whatsapp = await org.channel(collab, "WEB_WIDGET", "Site"), await org.channel(grab, "WHATSAPP", "WA")
    ids = {}
    for name, channel, text in (
        ("Ann", web, "My parcel never arrived"),
        ("Eve", whatsapp, "Parcel damaged, I want a refund"),
        ("Fay", whatsapp, "Where is my PARCEL?"),
    ):
        receipt = await org.customer_writes(channel, name.lower(), text, customer={"name": f"{name} Customer"})
        ids[name] = receipt["conversationId"]
    await room(org, "joinConversation", ids["Ann"], agent_c)  # writes a SYSTEM line naming agentc
    data = await org.gql(NOTE, {"i": {"conversationId": ids["Ann"], "text": "Parcel lost, refund ok"}}, as_=agent_c)
    assert data["addNote"]["errors"] == []
    await room(org, "grabConversation", ids["Eve"], rep_a)
    other = await new_org(server, "Other")
    other_team = await other.team("Support")
    other_channel = await other.channel(other_team)
    await other.customer_writes(other_channel, "zed", "parcel refund arrived")
    return Desk(org, collab, rep_a, rep_b, grab_admin, agent_c, outsider, ids, other)


async def found(org: Org, query: str, as_: Person | None = None, **variables) -> dict:
    return (await org.gql(SEARCH, {"q": query, **variables}, as_=as_))["searchMessages"]


def texts(result: dict) -> list[str]:
    return [edge["node"]["text"] for edge in result["edges"]]


async def refusal(org: Org, query: str, as_: Person | None = None, **variables) -> list[tuple[str, str | None]]:
    body = await org.server.gql(SEARCH, {"q": query, **variables}, (as_ or org.owner).token, expect_errors=True)
    assert body["data"] is None, body
    return [(e["extensions"]["code"], e["extensions"].get("field")) for e in body["errors"]]


async def test_each_caller_finds_only_messages_of_conversations_they_may_see(desk):
    org = desk.org
    everything = await found(org, "parcel")
    # newest first, a note included, the other organization's message never
    assert texts(everything) == [
        "Parcel lost, refund ok",
        "Where is my PARCEL?",
        "Parcel damaged, I want a refund",
        "My parcel never arrived",
    ]
    assert everything["pageInfo"]["hasNextPage"] is False
    by_id = {e["node"]["text"]: e["conversation"] for e in everything["edges"]}
    assert by_id["Parcel lost, refund ok"] == {"id": desk.ids["Ann"], "customer": {"name": "Ann Customer"}}
    assert [e["node"]["kind"] for e in everything["edges"]] == ["NOTE", "TEXT", "TEXT", "TEXT"]

    # grab privacy: B doesn't see Eve's conversation, grabbed by A; A and the team admin do
    assert texts(await found(org, "parcel", desk.rep_b)) == ["Where is my PARCEL?"]
    assert texts(await found(org, "parcel", desk.rep_a)) == ["Where is my PARCEL?", "Parcel damaged, I want a refund"]
    assert texts(await found(org, "parcel", desk.grab_admin)) == texts(await found(org, "parcel", desk.rep_a))
    assert texts(await found(org, "parcel", desk.agent_c)) == ["Parcel lost, refund ok", "My parcel never arrived"]
    assert texts(await found(org, "parcel", desk.outsider)) == []
    # the other organization finds its own message only
    assert texts(await found(desk.other_org, "parcel")) == ["parcel refund arrived"]

    # an API key sees its teams' conversations only
    app, _ = await create_key(org, ["READ_CONVERSATIONS"], [desk.collab], name="Search app")
    assert texts(await found(org, "parcel", app)) == ["Parcel lost, refund ok", "My parcel never arrived"]
    # and the filter narrows further: teams, statuses
    narrowed = await found(org, "refund", f={"teamIds": [desk.collab]})
    assert texts(narrowed) == ["Parcel lost, refund ok"]
    assert texts(await found(org, "parcel", f={"statuses": ["CLOSED"]})) == []


async def test_every_word_must_be_there_whole_case_and_accents_ignored_system_lines_never(desk):
    org = desk.org
    assert texts(await found(org, "REFUND parcel")) == ["Parcel lost, refund ok", "Parcel damaged, I want a refund"]
    assert texts(await found(org, "refund never")) == []
    assert texts(await found(org, "parcél")) == texts(await found(org, "parcel"))
    assert texts(await found(org, "parc")) == [], "whole words, not prefixes"
    # quotes, minus signs and operators are separators, never text-search or query syntax
    assert texts(await found(org, '"refund" -parcel')) == texts(await found(org, "refund parcel"))
    assert texts(await found(org, '{"$gt": ""} parcel')) == []  # "gt" is a word no message holds
    assert texts(await found(org, "^.*parcel|where")) == ["Where is my PARCEL?"]  # a regex is words too
    # agentc's join wrote a SYSTEM line with their name: system lines are not searched
    assert texts(await found(org, "agentc")) == []
    assert texts(await found(org, "joined")) == []


async def test_pages_are_stable_and_end(server, desk):
    org = desk.org
    team = await org.team("Paging")
    channel = await org.channel(team)
    for i in range(7):
        await org.customer_writes(channel, "pat", f"ticket number {i}")
    seen: list[str] = []
    after = None
    pages = []
    for _ in range(4):
        page = await found(org, "ticket", first=3, after=after)
        pages.append(len(page["edges"]))
        seen += texts(page)
        assert page["edges"] == [] or page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        if len(seen) == 3:  # a message written while paging is newer than the cursor: not on later pages
            await org.customer_writes(channel, "pat", "ticket number 7")
    assert pages == [3, 3, 1]
    assert seen == [f"ticket number {i}" for i in range(6, -1, -1)]
    assert texts(await found(org, "ticket", first=1))[0] == "ticket number 7"  # a new search sees it

    # messages of the same millisecond (a bulk import): the cursor counts them, none is lost or repeated
    at = datetime(2026, 1, 1, tzinfo=UTC)
    conversation = (await found(org, "ticket", first=1))["edges"][0]["conversation"]["id"]
    stored = await server.services.store.conversation(
        (await server.db.conversations.find_one({"_id": conversation}))["org_id"], conversation
    )
    docs = [
        codec.message_doc(
            Message(
                id=f"tie-{conversation}-{i:02d}",
                org_id=stored.org_id,
                conversation_id=conversation,
                seq=1000 + i,
                sender_kind=SenderKind.CUSTOMER,
                kind=MessageKind.TEXT,
                text=f"simultaneous {i}",
                created_at=at,
            )
        )
        for i in range(5)
    ]
    await server.db.messages.insert_many(docs)
    seen, after = [], None
    while True:
        page = await found(org, "simultaneous", first=2, after=after)
        seen += texts(page)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"simultaneous {i}" for i in range(4, -1, -1)]


async def test_each_request_examines_a_bounded_number_of_candidates(desk, monkeypatch):
    """B sees only unowned conversations of the GRAB team: the walk skips A's, at most
    MAX_EXAMINED per request, and says how far it got."""
    org = desk.org
    monkeypatch.setattr(search, "MAX_EXAMINED", 3)
    monkeypatch.setattr(search, "BATCH", 2)
    grab = org.teams["Grab"]
    channel = await org.channel(grab, "LINE", "Line")
    ids = [(await org.customer_writes(channel, f"w{i}", f"warranty claim {i}"))["conversationId"] for i in range(6)]
    for cid in ids[1:5]:  # A grabs the four in the middle; B may see claims 0 and 5
        await room(org, "grabConversation", cid, desk.rep_a)
    first = await found(org, "warranty", desk.rep_b, first=5)
    assert texts(first) == ["warranty claim 5"] and first["examined"] == 3
    assert first["pageInfo"]["hasNextPage"] is True, "the limit ended the page, not the results"
    second = await found(org, "warranty", desk.rep_b, first=5, after=first["pageInfo"]["endCursor"])
    assert texts(second) == ["warranty claim 0"] and second["examined"] == 3
    assert second["pageInfo"]["hasNextPage"] is False
    # A, who sees all six, gets a full page from the same budget
    assert len((await found(org, "warranty", desk.rep_a, first=2))["edges"]) == 2


async def test_the_conversation_list_search_also_matches_message_text_at_one_more_command(server, desk):
    org = desk.org

    async def listed(search_text: str, as_: Person | None = None, tag: str | None = None) -> list[str]:
        response = await server.http.post(
            "/graphql",
            json={"query": LIST, "variables": {"f": {"search": search_text, "statuses": STATUSES}}},
            headers={"Authorization": f"Bearer {(as_ or org.owner).token}", **({"X-Cost-Tag": tag} if tag else {})},
        )
        body = response.json()
        assert "errors" not in body, body
        return sorted(e["node"]["id"] for e in body["data"]["conversations"]["edges"])

    ids = desk.ids
    assert await listed("arrived") == [ids["Ann"]]  # only a message says it
    assert await listed("refund") == sorted([ids["Ann"], ids["Eve"]])  # Ann's through the note
    assert await listed("Fay Cust") == [ids["Fay"]]  # the customer's name still matches, as a substring
    assert await listed("refund", desk.rep_b) == [], "a message never reveals a conversation B may not see"
    assert await listed("refund", desk.agent_c) == [ids["Ann"]]
    other = await desk.other_org.gql(LIST, {"f": {"search": "refund"}})
    assert other["conversations"]["totalCount"] == 1  # its own conversation, none of this org's
    # the badges count what the list shows: Ann (joined) and Eve (grabbed), neither answered
    counts = (await org.gql(COUNTS, {"f": {"search": "refund"}}))["conversationCounts"]
    assert {c["status"]: c["count"] for c in counts}["PENDING"] == 2
    assert {c["status"]: c["count"] for c in counts}["CLOSED"] == 0

    # cost: one more command, a find on messages, beside the page's own
    await listed("+", tag="no-word")  # no word to look for in messages
    await listed("arrived", tag="by-text")
    no_word, by_text = server.commands.by_tag["no-word"], server.commands.by_tag["by-text"]
    assert len(by_text) == len(no_word) + 1, (no_word, by_text)
    assert [c for c in by_text if "messages" in c] == ["find messages"], by_text
    assert not [c for c in no_word if "messages" in c], no_word


STATUSES = ["ONLINE", "REP_NEEDED", "PENDING", "SOON_TO_BE", "OVERDUE", "REPLIED", "CLOSED"]


async def test_search_costs_two_commands_per_batch_on_flat_filters(server, desk):
    """On nx-27017 an `$or` beside `$text` runs in Python over every message: the cursor is flat."""
    org = desk.org
    first = await found(org, "parcel", first=1)
    for tag, after in (("search-first", None), ("search-after", first["pageInfo"]["endCursor"])):
        response = await server.http.post(
            "/graphql",
            json={"query": SEARCH, "variables": {"q": "parcel", "first": 1, "after": after}},
            headers={"Authorization": f"Bearer {org.owner.token}", "X-Cost-Tag": tag},
        )
        assert "errors" not in response.json()
        spent = server.commands.by_tag[tag]
        # auth, one batch of candidates, their conversations; then the page's loaders (customers here)
        assert spent == ["aggregate members", "find messages", "find conversations", "find customers"], spent
    # the filters themselves: $text of quoted words, and flat conditions, never $or/$and
    filters = server.commands.message_filters[-2:]
    assert all(set(f) <= {"org_id", "$text", "kind", "created_at"} for f in filters), filters
    assert filters[-1]["$text"] == {"$search": "parcel"} and "$lte" in filters[-1]["created_at"]


async def test_refusals_are_typed_and_change_nothing(server, desk):
    org = desk.org
    assert await refusal(org, "") == [("INVALID_INPUT", "query")]
    assert await refusal(org, "   ") == [("INVALID_INPUT", "query")]
    assert await refusal(org, '?! -- "" .*') == [("INVALID_INPUT", "query")]  # no word at all
    assert await refusal(org, "a" * (search.MAX_QUERY_LENGTH + 1)) == [("INVALID_INPUT", "query")]
    assert await refusal(org, " ".join(f"w{i}" for i in range(search.MAX_TERMS + 1))) == [("INVALID_INPUT", "query")]
    assert await refusal(org, "parcel", first=-1) == [("INVALID_INPUT", "first")]
    assert await refusal(org, "parcel", first=101) == [("INVALID_INPUT", "first")]
    assert await refusal(org, "parcel", after="not a cursor") == [("INVALID_INPUT", "after")]
    listing_cursor = (await org.gql("{ conversations(first: 1) { pageInfo { endCursor } } }"))["conversations"]
    assert await refusal(org, "parcel", after=listing_cursor["pageInfo"]["endCursor"]) == [("INVALID_INPUT", "after")]
    assert await refusal(org, "parcel", f={"search": "x" * 201}) == [("INVALID_INPUT", "search")]
    # the list's search keeps its own limit
    too_long = await server.gql(LIST, {"f": {"search": "x" * 201}}, org.owner.token, expect_errors=True)
    assert [e["extensions"]["code"] for e in too_long["errors"]] == ["INVALID_INPUT"]
    # an API key needs READ_CONVERSATIONS; no token, no search
    sender, _ = await create_key(org, ["SEND_MESSAGES"], name="Sender only")
    assert [code for code, _ in await refusal(org, "parcel", sender)] == ["FORBIDDEN"]
    anonymous = await server.gql(SEARCH, {"q": "parcel"}, None, expect_errors=True)
    assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]


def test_words_are_letters_and_digits_folded_and_a_message_must_hold_them_all():
    """The rule both databases' results pass through (MongoDB's index ORs the words, nx-27017's ANDs)."""
    assert search.words('Parcél_ID "x" -Y {"$gt": 1} PARCEL') == ("parcel", "id", "x", "y", "gt", "1")
    assert search.holds_all("Where is my PARCÉL?", ("parcel", "where"))
    assert not search.holds_all("Where is my parcel?", ("parcel", "refund"))
    assert not search.holds_all("parcels", ("parcel",)) and not search.holds_all(None, ("parcel",))
