"""The conversation page's own CPU, in process and without a database.

    python -m bench.pagecpu [--pages 400] [--repeat 5] [--profile out.svg]

Executes the page benchmark's query (``bench.page.PAGE_QUERY``, 50 conversations
with customer, team, channel, representatives, owner and lastMessage) through the
real schema (every extension, the DataLoaders) against a fixed set of entities held
in memory, and encodes the answer to JSON as the HTTP view does. What it reports is
process CPU time (user + sys) per page: the per-field cost of GraphQL itself, with
no HTTP, no database and little sensitivity to other load on the machine. The
minimum over ``--repeat`` rounds is the figure to compare between commits.

``--profile``: run ``py-spy`` on this process while it executes, into an SVG
(summarise it with ``python -m bench.flame``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from api import json_body
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.settings import Settings
from bench.page import FIRST, PAGE_QUERY
from domain import entities as e
from domain.enums import ChannelType, DeliveryStatus, DeliveryVia, MessageKind, OrgRole, SenderKind, TeamMode, TeamRole
from domain.visibility import Viewer

ORG = "org1"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def world(first: int = FIRST):
    """A viewer (admin of the conversations' team) and one page of conversations with their
    customers and members, shaped like the seeded benchmark data."""
    members = [
        e.Member(
            id=f"m{i}",
            org_id=ORG,
            email=f"agent{i}@example.com",
            name=f"Agent {i}",
            role=OrgRole.MEMBER,
            created_at=NOW,
        )
        for i in range(10)
    ]
    team = e.Team(
        id="t1",
        org_id=ORG,
        name="Hotline",
        mode=TeamMode.COLLABORATION,
        memberships=tuple(e.TeamMembership(member_id=m.id, role=TeamRole.ADMIN) for m in members),
    )
    viewer = Viewer(member_id="m0", org_id=ORG, org_role=OrgRole.MEMBER, name="Agent 0", teams=(team,))
    customers = [
        e.Customer(
            id=f"c{i}",
            org_id=ORG,
            channel_id="ch1",
            channel_type=ChannelType.WHATSAPP,
            external_id=f"x{i}",
            name=f"Customer {i}",
            email=f"customer{i}@example.com",
            phone=f"+1555000{i:04d}",
        )
        for i in range(first)
    ]
    conversations = []
    for i in range(first):
        at = NOW - timedelta(minutes=i)
        last = e.Message(
            id=f"msg{i}",
            org_id=ORG,
            conversation_id=f"conv{i}",
            seq=10 + i,
            sender_kind=SenderKind.CUSTOMER,
            kind=MessageKind.TEXT,
            text=f"Hello, this is message {i} about my order",
            created_at=at,
            sender_customer_id=f"c{i}",
            deliveries=(e.Delivery(via=DeliveryVia.CHANNEL, status=DeliveryStatus.DELIVERED, attempts=1, at=at),),
        )
        conversations.append(
            e.Conversation(
                id=f"conv{i}",
                org_id=ORG,
                team_id="t1",
                channel_id="ch1",
                channel_type=ChannelType.WHATSAPP,
                channel_name="WhatsApp main",
                customer_id=f"c{i}",
                customer_name=f"Customer {i}",
                participants=(f"m{i % 10}", f"m{(i + 3) % 10}"),
                owner_id=f"m{i % 10}" if i % 3 == 0 else None,
                waiting_since=at if i % 2 else None,
                last_message=last,
                last_message_at=at,
                last_customer_message_at=at,
                created_at=at - timedelta(days=1),
                updated_at=at,
                message_seq=10 + i,
            )
        )
    return viewer, members, customers, conversations


def services_for(members, customers, conversations):
    """The parts of :class:`api.services.Services` the page reads, answering from memory."""
    by_id = {m.id: m for m in members}
    customer_by_id = {c.id: c for c in customers}
    page = SimpleNamespace(items=[(c, f"cursor-{c.id}") for c in conversations], has_next=True)

    class Store:
        async def members_by_ids(self, org, ids):
            return [by_id[i] for i in ids if i in by_id]

        async def customers_by_ids(self, org, ids):
            return [customer_by_id[i] for i in ids if i in customer_by_id]

    class Lister:
        async def page(self, criteria, order, first, after, now):
            return page

    return SimpleNamespace(settings=Settings(), store=Store(), lister=Lister(), metrics=None, clock=lambda: NOW)


async def run_pages(schema, services, viewer, pages: int) -> str:
    answer = ""
    for _ in range(pages):
        context = Context(services=services, viewer=viewer, now=NOW)
        result = await schema.execute(PAGE_QUERY, variable_values={"first": FIRST}, context_value=context)
        assert not result.errors, result.errors
        # as the HTTP view encodes it
        answer = json_body.encode({"data": result.data}).decode()
    return answer


def measure(pages: int, repeat: int) -> dict:
    viewer, members, customers, conversations = world()
    services = services_for(members, customers, conversations)
    schema = build_schema(services.settings)
    asyncio.run(run_pages(schema, services, viewer, 20))  # warm caches (parser, validation, cost)
    rounds = []
    for _ in range(repeat):
        t0 = time.process_time()
        asyncio.run(run_pages(schema, services, viewer, pages))
        rounds.append((time.process_time() - t0) / pages * 1000)
    answer = asyncio.run(run_pages(schema, services, viewer, 1))
    return {
        "pages_per_round": pages,
        "cpu_ms_per_page": {"min": round(min(rounds), 3), "rounds": [round(r, 3) for r in rounds]},
        "answer_bytes": len(answer),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", type=Path, help="py-spy flame graph of the rounds, as SVG")
    args = parser.parse_args(argv)
    spy = None
    if args.profile:
        binary = next(
            (str(p) for p in (Path(sys.executable).parent / "py-spy", Path("/tmp/pyspy/bin/py-spy")) if p.exists()),
            "py-spy",
        )
        spy = subprocess.Popen(
            [binary, "record", "-r", "400", "-o", str(args.profile), "--pid", str(os.getpid())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
    out = measure(args.pages, args.repeat)
    if spy is not None:
        spy.send_signal(2)
        spy.wait(timeout=60)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
