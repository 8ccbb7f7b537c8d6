"""The sweeper reads only what is due, announces each transition once at its moment,
and never announces a decision that a write made stale in the meantime.

Sweeps are driven by hand with an explicit clock (the periodic one sleeps for an hour).
"""

from __future__ import annotations

from datetime import timedelta

from pymongo import monitoring

from api.store import codec
from domain.status import Thresholds
from tests.world import support_desk

T = Thresholds(soon_after_s=60, overdue_after_s=120, auto_close_after_s=600, presence_timeout_s=60)
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) { errors { code } } }"""
STATUS = "query($id: ID!) { conversation(id: $id) { status } }"


class Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.filters: list[dict] = []

    def started(self, event) -> None:
        if event.command_name == "find" and event.command.get("find") == "conversations":
            self.filters.append(event.command.get("filter"))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


async def announced(server, cid: str) -> list[tuple[str, str | None]]:
    events = (
        await server.db.events.find({"conversation._id": cid, "kind": {"$in": ["STATUS_CHANGED", "CLOSED"]}})
        .sort("seq", 1)
        .to_list()
    )
    return [(e["kind"], e.get("new_status")) for e in events]


async def test_each_transition_is_announced_once_at_its_moment_from_an_index_range(make_server):
    finds = Finds()
    server = await make_server(thresholds=T, sweep_interval_s=3600, listeners=[finds])
    sweeper = server.app.state.runtime.sweeper
    org, team, (agent,), channel = await support_desk(server, "agent")
    wrote = server.services.clock()
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    await org.customer_writes(channel, "other", "Me too")  # a second waiting customer, also due
    at = lambda seconds: wrote + timedelta(seconds=seconds)  # noqa: E731

    finds.filters.clear()
    assert await sweeper.sweep(at(59)) == 0
    assert finds.filters == [{"next_due_at": {"$lt": int(at(59).timestamp() * 1000)}}]  # no scan of the rest
    assert await sweeper.sweep(at(61)) == 2
    assert await sweeper.sweep(at(62)) == 0, "announced once"
    assert await announced(server, cid) == [("STATUS_CHANGED", "SOON_TO_BE")]
    # writing again while waiting does not restart the wait
    await org.customer_writes(channel, "c1", "Still here")
    assert await sweeper.sweep(at(121)) == 2
    assert await announced(server, cid) == [("STATUS_CHANGED", "SOON_TO_BE"), ("STATUS_CHANGED", "OVERDUE")]

    # a reply ends the wait: only the inactivity close is left, from the customer's last message
    assert (await org.gql(JOIN, {"id": cid}, as_=agent))["joinConversation"]["errors"] == []
    assert (await org.gql(SEND, {"i": {"conversationId": cid, "text": "Here"}}, as_=agent))["sendMessage"][
        "errors"
    ] == []
    last_customer = (await server.db.conversations.find_one({"_id": cid}))["last_customer_message_at"]
    close_at = wrote.fromtimestamp(last_customer / 1000, tz=wrote.tzinfo) + timedelta(seconds=600)
    assert await sweeper.sweep(close_at - timedelta(milliseconds=1)) == 1  # only the other one closes
    assert await announced(server, cid) == [("STATUS_CHANGED", "SOON_TO_BE"), ("STATUS_CHANGED", "OVERDUE")]
    assert await sweeper.sweep(close_at + timedelta(milliseconds=1)) == 1
    assert (await announced(server, cid))[-1] == ("CLOSED", "CLOSED")
    assert await sweeper.sweep(close_at + timedelta(days=30)) == 0, "nothing left to announce, ever"


async def test_a_decision_made_stale_by_a_write_is_not_announced(make_server):
    server = await make_server(thresholds=T, sweep_interval_s=3600)
    sweeper = server.app.state.runtime.sweeper
    org, team, (agent,), channel = await support_desk(server, "agent")
    wrote = server.services.clock()
    cid = (await org.customer_writes(channel, "c1", "Hello?"))["conversationId"]
    read = codec.conversation(await server.db.conversations.find_one({"_id": cid}))

    # between the sweeper's read and its claim, an agent answers
    assert (await org.gql(JOIN, {"id": cid}, as_=agent))["joinConversation"]["errors"] == []
    assert (await org.gql(SEND, {"i": {"conversationId": cid, "text": "Hi!"}}, as_=agent))["sendMessage"][
        "errors"
    ] == []
    late = wrote + timedelta(seconds=61)
    assert await sweeper._announce(read, late) == 0
    assert await announced(server, cid) == []
    # and the customer writing again before an inactivity close is claimed keeps it open
    quiet = wrote + timedelta(seconds=601)
    read = codec.conversation(await server.db.conversations.find_one({"_id": cid}))
    await org.customer_writes(channel, "c1", "One more thing")
    assert await sweeper._announce(read, quiet) == 0
    assert await announced(server, cid) == []
    assert (await org.gql(STATUS, {"id": cid}))["conversation"]["status"] == "PENDING"
