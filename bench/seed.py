"""Seeds a benchmark data set straight into the database (bulk ``insert_many``).

Full scale (issue 7): 1 organization, 20 teams (half GRAB), 200 members,
20,000 customers, 50,000 conversations across every status and channel type,
500,000 messages. ``--scale`` shrinks customers, conversations and messages;
teams and members stay, since the grab benchmark needs 200 representatives.

Documents have exactly the shapes the server writes (``api.store.codec``);
the organization and its owner are created through the onboarding use case,
so ``login`` works. Statuses are laid out for the bench's thresholds
(``bench.common.THRESHOLD_ENV``: SOON_TO_BE after 1 h, OVERDUE after 2 h) and
already "announced", so the sweeper finds nothing to do while benchmarks run.

Team layout: team 0, "Hotline", is a GRAB team with all 200 members as
representatives (the grab contention benchmark races them). Every member is
also in two of the other 19 teams (about 21 members each; the lowest-numbered
member of a team is its ADMIN). One channel per team, types in rotation.

The domain keeps one conversation per customer and channel, whose id is the
customer's id (inbound messages go there). The first 20,000 conversations are
those; the other 30,000 are further threads of the same customers, with ids
of their own, as the conversation list sees them.

Writes ``manifest.json`` beside the data: ids, channel keys, and the
conversations reserved for each benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import random
import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bson import ObjectId
from pymongo import AsyncMongoClient

from api.auth import Passwords
from api.embedded import EmbeddedMongo
from api.store import codec
from api.store.database import create_indexes
from api.store.mongo import MongoStore
from bench.common import PASSWORD, THRESHOLD_ENV, log
from domain.entities import Conversation, Customer, Message
from domain.enums import ChannelType, ClosedReason, MessageKind, OrgRole, SenderKind, TeamMode, TeamRole
from domain.status import Thresholds, next_transition_at
from domain.usecases.onboarding import create_organization, hash_ingest_key

FULL = {"customers": 20_000, "conversations": 50_000, "messages": 500_000}
SCALES = {"full": 1.0, "small": 1 / 50}
N_TEAMS = 20
N_MEMBERS = 200
CHANNEL_TYPES = [
    ChannelType.WEB_WIDGET,
    ChannelType.FACEBOOK,
    ChannelType.WHATSAPP,
    ChannelType.LINE,
    ChannelType.WECHAT,
]
STATUS_MIX = [
    ("REP_NEEDED", 0.10),
    ("PENDING", 0.10),
    ("SOON_TO_BE", 0.05),
    ("OVERDUE", 0.05),
    ("REPLIED", 0.30),
    ("CLOSED", 0.40),
]
# Unowned, open Hotline conversations reserved for benchmarks (forced to REP_NEEDED):
# current threads every member sees an event of (fan-out warm-ups and round markers),
# and further threads the 200 representatives race to grab.
HOTLINE_MARKERS = 30
GRAB_TARGETS = 60
BATCH = 2000
# the thresholds the bench runs its servers with: next_due_at is computed with them
THRESHOLDS = Thresholds(
    soon_after_s=float(THRESHOLD_ENV["IMBRACE_SOON_AFTER_S"]),
    overdue_after_s=float(THRESHOLD_ENV["IMBRACE_OVERDUE_AFTER_S"]),
    auto_close_after_s=float(THRESHOLD_ENV["IMBRACE_AUTO_CLOSE_AFTER_S"]),
)
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
FIRST_NAMES = [
    "Ann",
    "Bo",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Goro",
    "Hana",
    "Ivan",
    "Jun",
    "Kofi",
    "Lena",
    "Mei",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Wei",
    "Yara",
    "Zoe",
]
WORDS = [
    "hello",
    "order",
    "refund",
    "delivery",
    "status",
    "invoice",
    "parcel",
    "please",
    "thanks",
    "help",
    "account",
    "password",
    "login",
    "payment",
    "card",
    "booking",
    "change",
    "address",
    "tomorrow",
    "today",
    "urgent",
    "broken",
    "size",
    "colour",
    "return",
]


def scale_value(scale: str | float) -> float:
    if isinstance(scale, (int, float)):
        return float(scale)
    return SCALES[scale] if scale in SCALES else float(scale)


def sizes(scale: float) -> dict[str, int]:
    return {k: max(1, round(v * scale)) for k, v in FULL.items()}


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def dt(value_ms: int) -> datetime:
    return codec.dt(value_ms)


async def seed(uri: str, database: str, scale: float, out: Path, rng_seed: int = 7) -> dict:
    rng = random.Random(rng_seed)
    n = sizes(scale)
    started = time.perf_counter()
    client = AsyncMongoClient(uri, tz_aware=True)
    db = client[database]
    now_dt = datetime.now(UTC)
    now = codec.ms(now_dt)
    timings: dict[str, float] = {}

    # organization and owner, through the use case (so `login` works)
    passwords = Passwords()
    org, owner = await create_organization(
        MongoStore(db), passwords, "Bench Org", "owner@bench.example.com", PASSWORD, "Owner", now_dt
    )
    password_hash = passwords.hash(PASSWORD)  # one hash for everyone: argon2 is slow by design
    if inspect.isawaitable(password_hash):
        password_hash = await password_hash

    members = [
        {
            "_id": str(ObjectId()),
            "org_id": org.id,
            "email": f"member{i}@bench.example.com",
            "name": f"{rng.choice(FIRST_NAMES)} Agent{i}",
            "password_hash": password_hash,
            "role": OrgRole.MEMBER.value,
            "created_at": now - 30 * DAY,
        }
        for i in range(N_MEMBERS)
    ]
    await db.members.insert_many(members, ordered=False)

    # teams: 0 = Hotline (GRAB, everyone a representative); 1..19 two per member
    team_members: list[list[tuple[int, str]]] = [[] for _ in range(N_TEAMS)]
    for i in range(N_MEMBERS):
        team_members[0].append((i, TeamRole.REPRESENTATIVE.value))
        for t in (1 + i % (N_TEAMS - 1), 1 + (i + 9) % (N_TEAMS - 1)):
            team_members[t].append((i, None))
    teams = []
    for t in range(N_TEAMS):
        mode = TeamMode.GRAB if t % 2 == 0 else TeamMode.COLLABORATION
        roster = []
        for pos, (i, role) in enumerate(sorted(team_members[t])):
            role = role or (TeamRole.ADMIN.value if pos == 0 else TeamRole.REPRESENTATIVE.value)
            roster.append({"member_id": members[i]["_id"], "role": role})
        teams.append(
            {
                "_id": str(ObjectId()),
                "org_id": org.id,
                "name": "Hotline" if t == 0 else f"Team {t:02d}",
                "mode": mode.value,
                "members": roster,
                "created_at": now - 30 * DAY,
            }
        )
    await db.teams.insert_many(teams, ordered=False)

    channels, keys = [], []
    for t in range(N_TEAMS):
        ctype = CHANNEL_TYPES[t % len(CHANNEL_TYPES)]
        key = "ik_" + secrets.token_urlsafe(32)
        keys.append(key)
        channels.append(
            {
                "_id": str(ObjectId()),
                "org_id": org.id,
                "team_id": teams[t]["_id"],
                "type": ctype.value,
                "name": f"{ctype.value.title().replace('_', ' ')} {t:02d}",
                "ingest_key_hash": hash_ingest_key(key),
                "created_at": now - 30 * DAY,
            }
        )
    await db.channels.insert_many(channels, ordered=False)
    timings["accounts_s"] = round(time.perf_counter() - started, 2)

    # customers: customer c writes through channel c % 20
    t0 = time.perf_counter()
    customers: list[Customer] = []
    for c in range(n["customers"]):
        ch = channels[c % N_TEAMS]
        ctype = ChannelType(ch["type"])
        name = f"{rng.choice(FIRST_NAMES)} Customer{c}"
        online = ctype is ChannelType.WEB_WIDGET and rng.random() < 0.1
        customers.append(
            Customer(
                id=str(ObjectId()),
                org_id=org.id,
                channel_id=ch["_id"],
                channel_type=ctype,
                external_id=f"cust-{c}",
                name=name,
                email=f"customer{c}@mail.example.com" if rng.random() < 0.7 else None,
                phone=f"+8529{c:07d}" if rng.random() < 0.5 else None,
                online_until=dt(now + HOUR) if online else None,
                last_active_at=dt(now - rng.randrange(DAY)),
                created_at=dt(now - 40 * DAY),
            )
        )
    await _insert(db.customers, [codec.customer_doc(c) for c in customers])
    timings["customers_s"] = round(time.perf_counter() - t0, 2)

    # conversations and their messages
    t0 = time.perf_counter()
    n_conv, n_msg = n["conversations"], n["messages"]
    counts = _message_counts(rng, n_conv, n_msg)
    reps_of = [[m["member_id"] for m in team["members"]] for team in teams]
    admins_of = [[m["member_id"] for m in team["members"] if m["role"] == TeamRole.ADMIN.value] for team in teams]
    hotline_open: list[str] = []
    grab_targets: list[str] = []
    by_status: dict[str, int] = {}
    current_threads: list[dict] = []  # conversations inbound messages reach (id == customer id)
    conv_docs: list[dict] = []
    msg_docs: list[dict] = []
    inserted_msgs = 0
    for k in range(n_conv):
        c = k % n["customers"]
        customer = customers[c]
        t = c % N_TEAMS
        team = teams[t]
        grab = team["mode"] == TeamMode.GRAB.value
        status = _pick_status(rng)
        current = k < n["customers"]
        conv_id = customer.id if current else str(ObjectId())
        if t == 0 and current and len(hotline_open) < HOTLINE_MARKERS:
            status = "REP_NEEDED"
            hotline_open.append(conv_id)
        elif t == 0 and not current and len(grab_targets) < GRAB_TARGETS:
            status = "REP_NEEDED"
            grab_targets.append(conv_id)
        conv, msgs = _conversation(
            rng, now, k, conv_id, customer, channels[t], team, status, counts[k], reps_of[t], admins_of[t], grab
        )
        by_status[status] = by_status.get(status, 0) + 1
        if k < n["customers"]:
            current_threads.append({"id": conv_id, "external_id": customer.external_id, "team": t, "status": status})
        conv_docs.append(codec.conversation_doc(conv))
        msg_docs.extend(codec.message_doc(m) for m in msgs)
        if len(conv_docs) >= BATCH:
            await _insert(db.conversations, conv_docs)
            conv_docs = []
        if len(msg_docs) >= BATCH:
            await _insert(db.messages, msg_docs)
            inserted_msgs += len(msg_docs)
            msg_docs = []
            if inserted_msgs % 50_000 < BATCH:
                log(
                    f"seed: {k + 1}/{n_conv} conversations, {inserted_msgs}/{n_msg} messages "
                    f"({time.perf_counter() - started:.0f}s)"
                )
    await _insert(db.conversations, conv_docs)
    await _insert(db.messages, msg_docs)
    timings["conversations_and_messages_s"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    await create_indexes(db)
    timings["indexes_s"] = round(time.perf_counter() - t0, 2)
    actual = {
        name: await db[name].count_documents({})
        for name in ("members", "teams", "channels", "customers", "conversations", "messages")
    }
    await client.close()
    timings["total_s"] = round(time.perf_counter() - started, 2)

    manifest = {
        "scale": scale,
        "sizes": actual,
        "seeded_at_ms": now,
        "status_mix": by_status,
        "timings": timings,
        "org_id": org.id,
        "owner": {"id": owner.id, "email": owner.email},
        "members": [{"id": m["_id"], "email": m["email"]} for m in members],
        "teams": [{"id": tm["_id"], "name": tm["name"], "mode": tm["mode"], "members": tm["members"]} for tm in teams],
        "channels": [{"id": ch["_id"], "key": keys[i], "type": ch["type"], "team": i} for i, ch in enumerate(channels)],
        "hotline_open": hotline_open,
        "grab_targets": grab_targets,
        "current_threads": current_threads,
    }
    out.write_text(json.dumps(manifest))
    return manifest


async def _insert(collection, docs: list[dict]) -> None:
    for i in range(0, len(docs), BATCH):
        await collection.insert_many(docs[i : i + BATCH], ordered=False)


def _pick_status(rng: random.Random) -> str:
    x = rng.random()
    for status, weight in STATUS_MIX:
        if x < weight:
            return status
        x -= weight
    return STATUS_MIX[-1][0]


def _message_counts(rng: random.Random, n_conv: int, n_msg: int) -> list[int]:
    """Between 1 and ~2x the mean per conversation, summing to exactly ``n_msg``."""
    mean = n_msg / n_conv
    counts = [max(1, round(mean * rng.uniform(0.2, 1.8))) for _ in range(n_conv)]
    diff = n_msg - sum(counts)
    i = 0
    while diff != 0:
        j = i % n_conv
        if diff > 0:
            counts[j] += 1
            diff -= 1
        elif counts[j] > 1:
            counts[j] -= 1
            diff += 1
        i += 1
    return counts


def _conversation(
    rng: random.Random,
    now: int,
    k: int,
    conv_id: str,
    customer: Customer,
    channel: dict,
    team: dict,
    status: str,
    n_msgs: int,
    reps: list[str],
    admins: list[str],
    grab: bool,
) -> tuple[Conversation, list[Message]]:
    waiting_since = closed_at = owner = None
    closed_reason = announced = None
    participants: list[str] = []
    in_room = [rng.choice(reps)] + ([rng.choice(reps)] if not grab and rng.random() < 0.3 else [])
    in_room = list(dict.fromkeys(in_room))
    if status in ("REP_NEEDED", "PENDING", "SOON_TO_BE", "OVERDUE"):
        if status in ("REP_NEEDED", "PENDING"):
            waiting_since = now - rng.randrange(MIN, 20 * MIN)
        elif status == "SOON_TO_BE":
            waiting_since = now - rng.randrange(62 * MIN, 80 * MIN)
            announced = "SOON_TO_BE"
        else:
            waiting_since = now - rng.randrange(2 * HOUR + 2 * MIN, 18 * HOUR)
            announced = "OVERDUE"
        last_message = waiting_since + rng.randrange(max(1, now - waiting_since))
        last_customer = last_message
        if status == "PENDING" or (status in ("SOON_TO_BE", "OVERDUE") and rng.random() < 0.5):
            participants = in_room
    elif status == "REPLIED":
        last_customer = now - rng.randrange(5 * MIN, 20 * HOUR)
        last_message = min(now, last_customer + rng.randrange(10_000, 10 * MIN))
        participants = in_room
    else:  # CLOSED
        last_customer = now - rng.randrange(HOUR, 30 * DAY)
        last_message = last_customer + rng.randrange(0, 10 * MIN)
        if last_customer < now - DAY and rng.random() < 0.5:
            closed_at, closed_reason = last_customer + DAY, ClosedReason.INACTIVITY
        else:
            closed_at, closed_reason = min(now, last_message + rng.randrange(MIN, HOUR)), ClosedReason.MANUAL
        announced = "CLOSED"
    if grab and participants:
        owner = participants[0]
        participants = [owner]
    first_at = min(waiting_since or last_customer, last_customer) - rng.randrange(10 * MIN, 3 * DAY)

    # messages: history before the anchor, then the tail that makes the status true
    customer_tail = status in ("REP_NEEDED", "PENDING", "SOON_TO_BE", "OVERDUE")
    msgs: list[Message] = []
    member_pool = participants or in_room
    for seq in range(1, n_msgs + 1):
        from_end = n_msgs - seq
        if from_end == 0:
            at = last_message
            sender = (
                SenderKind.CUSTOMER
                if customer_tail
                else (SenderKind.MEMBER if status == "REPLIED" or rng.random() < 0.5 else SenderKind.CUSTOMER)
            )
        elif customer_tail and from_end == 1 and waiting_since is not None and n_msgs >= 2:
            at, sender = waiting_since, SenderKind.CUSTOMER
        elif not customer_tail and from_end == 1:
            at, sender = min(last_customer, last_message), SenderKind.CUSTOMER
        else:
            anchor = waiting_since if customer_tail and waiting_since else min(last_customer, last_message)
            at = first_at + (anchor - 1 - first_at) * seq // (n_msgs + 1)
            sender = SenderKind.CUSTOMER if seq % 2 else SenderKind.MEMBER
        member_id = rng.choice(member_pool) if sender is SenderKind.MEMBER else None
        msgs.append(
            Message(
                id=str(ObjectId()),
                org_id=customer.org_id,
                conversation_id=conv_id,
                seq=seq,
                sender_kind=sender,
                kind=MessageKind.TEXT,
                text=_text(rng, rng.randint(4, 18)),
                created_at=dt(at),
                sender_member_id=member_id,
                sender_customer_id=customer.id if member_id is None else None,
                channel_id=channel["_id"] if member_id is None else None,
            )
        )
    conversation = Conversation(
        id=conv_id,
        org_id=customer.org_id,
        team_id=team["_id"],
        channel_id=channel["_id"],
        channel_type=customer.channel_type,
        channel_name=channel["name"],
        customer_id=customer.id,
        customer_name=customer.name,
        customer_email=customer.email,
        customer_phone=customer.phone,
        customer_online_until=customer.online_until,
        participants=tuple(participants),
        owner_id=owner,
        waiting_since=dt(waiting_since) if waiting_since else None,
        last_customer_message_at=dt(last_customer),
        last_message_at=dt(last_message),
        message_seq=n_msgs,
        closed_at=dt(closed_at) if closed_at else None,
        closed_reason=closed_reason,
        created_at=dt(first_at),
        updated_at=dt(max(last_message, closed_at or 0)),
        announced_status=announced,
        last_message=msgs[-1],
    )
    # as the server keeps them: the newest message's copy, and when the sweeper should look next
    return replace(conversation, next_due_at=next_transition_at(conversation, THRESHOLDS)), msgs


def seed_fresh(data_dir: Path, scale: float) -> dict:
    """Starts the embedded database on ``data_dir``, seeds it, stops it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedMongo(data_dir).start()
    try:
        return asyncio.run(seed(embedded.uri, "imbrace", scale, data_dir / "manifest.json"))
    finally:
        embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Seed a benchmark data set into an embedded database.")
    parser.add_argument("--scale", default="small", help="small, full, or a fraction of full (e.g. 0.2)")
    parser.add_argument("--data-dir", required=True, type=Path)
    args = parser.parse_args()
    manifest = seed_fresh(args.data_dir, scale_value(args.scale))
    print(json.dumps({k: manifest[k] for k in ("scale", "sizes", "status_mix", "timings")}, indent=1))


if __name__ == "__main__":
    main()
