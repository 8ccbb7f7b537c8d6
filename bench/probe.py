"""Single-command costs on a seeded data set, one at a time (no concurrency).

    python -m bench.probe --data-dir DIR      # a data set seeded by `python -m bench.seed`
    python -m bench.probe --scale small       # seeds a temporary one first

Times, against the embedded database alone, each MongoDB command the hot
paths issue: the page's, the inbound path's lookups, the sweeper's "due"
range scan and the hub's poll; and, labelled "former" or "alternative", the
commands they replaced or could have used (last messages by aggregation or by
``_id``, the sweeper's old ``$or`` filter). Shows which commands grow with the data set
(full scans) and which stay flat (index lookups). Writes
``bench/results/probe-<scale>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from pymongo import AsyncMongoClient

from api.auth import load_viewer
from api.embedded import EmbeddedMongo
from api.services import utc_now
from api.store.codec import ms
from api.store.listing import ConversationLister
from api.store.members import Members
from api.store.query import to_mongo
from bench.commands import bench_settings
from bench.common import RESULTS, log, machine, write_json
from bench.seed import scale_value, seed_fresh
from domain import listing
from domain.enums import ConversationOrder

REPEAT = 3


async def _probe(uri: str, manifest: dict, workdir: Path, repeat: int = REPEAT) -> dict:
    # the app's client gives up after 20 s (socketTimeoutMS); the probe waits, to see the full cost
    client = AsyncMongoClient(uri, tz_aware=True, socketTimeoutMS=600_000)
    db = client["imbrace"]
    thresholds = bench_settings(uri, workdir).thresholds
    timings: dict[str, dict] = {}

    async def timed(name: str, fn) -> None:
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            await fn()
            runs.append(round((time.perf_counter() - t) * 1000, 1))
            if runs[-1] > 5000:
                break  # slow enough: one or two samples tell
        timings[name] = {"ms_min": min(runs), "ms_runs": runs}
        log(f"probe: {name}: {min(runs)} ms")

    member = manifest["members"][0]["id"]
    viewer = await load_viewer(Members(db), member, manifest["org_id"])
    now = utc_now()
    criteria = listing.list_criteria(viewer, listing.ConversationFilter(), now, thresholds)
    page_filter = {"$and": [to_mongo(criteria), {"last_message_at": {"$lte": ms(now)}}]}
    docs = await db.conversations.find(page_filter).sort([("last_message_at", -1), ("_id", -1)]).limit(51).to_list()
    ids = [d["_id"] for d in docs[:50]]
    customer_ids = [d["customer_id"] for d in docs[:50]]
    member_ids = [m["id"] for m in manifest["members"][:20]]
    thread = manifest["current_threads"][7]
    channel = manifest["channels"][thread["team"]]

    await timed(
        "page: load_viewer aggregation (members + $lookup teams)",
        lambda: load_viewer(Members(db), member, manifest["org_id"]),
    )
    lister = ConversationLister(db)
    await timed(
        "page: conversations, as the lister asks (flat filter; one sorted find per visibility branch)",
        lambda: lister.page(criteria, ConversationOrder.LAST_ACTIVITY_DESC, 50, None, now),
    )
    await timed(
        "former page: conversations find, one nested $and/$or filter (sort, limit 51)",
        lambda: db.conversations.find(page_filter).sort([("last_message_at", -1), ("_id", -1)]).limit(51).to_list(),
    )
    await timed(
        "page: customers find $in (50 ids)",
        lambda: db.customers.find({"_id": {"$in": customer_ids}, "org_id": manifest["org_id"]}).to_list(),
    )
    await timed(
        "page: members find $in (20 ids)",
        lambda: db.members.find({"_id": {"$in": member_ids}}, {"password_hash": 0}).to_list(),
    )

    async def last_messages():
        cursor = await db.messages.aggregate(
            [
                {"$match": {"conversation_id": {"$in": ids}}},
                {"$sort": {"seq": -1}},
                {"$group": {"_id": "$conversation_id", "doc": {"$first": "$$ROOT"}}},
            ]
        )
        return await cursor.to_list()

    await timed("former page: last messages aggregation ($match $in 50, $sort, $group $first $$ROOT)", last_messages)
    last_ids = [d["last_message"]["_id"] for d in docs[:50] if d.get("last_message")]
    await timed(
        "alternative: messages find by _id $in the page's 50 last_message ids",
        lambda: db.messages.find({"_id": {"$in": last_ids}}).to_list(),
    )
    await timed(
        "alternative: messages find $in the same 50 conversations (no $group)",
        lambda: db.messages.find({"conversation_id": {"$in": ids}}).to_list(),
    )

    async def one_by_one():
        return await asyncio.gather(
            *(db.messages.find({"conversation_id": c}).sort("seq", -1).limit(1).to_list() for c in ids)
        )

    await timed("alternative: 50 finds, one per conversation (sort seq desc, limit 1), concurrent", one_by_one)
    await timed(
        "page: totalCount, as the lister counts (count per disjoint visibility branch)", lambda: lister.count(criteria)
    )
    await timed(
        "former page: totalCount (count_documents with the nested filter)",
        lambda: db.conversations.count_documents(page_filter),
    )
    await timed(
        "inbound: customer by (channel_id, external_id)",
        lambda: db.customers.find_one({"channel_id": channel["id"], "external_id": thread["external_id"]}),
    )
    await timed("inbound: message by provider_key", lambda: db.messages.find_one({"provider_key": "none:none"}))
    await timed("inbound/grab: conversation by _id", lambda: db.conversations.find_one({"_id": thread["id"]}))

    soon = ms(now - timedelta(seconds=thresholds.soon_after_s))
    overdue = ms(now - timedelta(seconds=thresholds.overdue_after_s))
    inactive = ms(thresholds.inactivity_cutoff(now))
    due = {
        "closed_at": None,
        "$or": [
            {"last_customer_message_at": {"$lt": inactive}},
            {"waiting_since": {"$lt": overdue}, "announced_status": {"$ne": "OVERDUE"}},
            {"waiting_since": {"$lt": soon}, "announced_status": {"$nin": ["SOON_TO_BE", "OVERDUE"]}},
        ],
    }
    await timed("former sweeper: due conversations $or scan", lambda: db.conversations.find(due).limit(500).to_list())
    await timed(
        "sweeper: next_due_at range (every sweep interval, 1 s)",
        lambda: db.conversations.find({"next_due_at": {"$lt": ms(now)}}).sort("next_due_at", 1).limit(500).to_list(),
    )
    await timed(
        "hub: poll for new events", lambda: db.events.find({"_id": {"$gt": 0}}).sort("_id", 1).limit(1000).to_list()
    )
    await client.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="imbrace-probe-"))
    try:
        data_dir = args.data_dir or workdir / "data"
        manifest = (
            json.loads((data_dir / "manifest.json").read_text())
            if args.data_dir
            else seed_fresh(data_dir, scale_value(args.scale))
        )
        embedded = EmbeddedMongo(data_dir).start()
        try:
            timings = asyncio.run(_probe(embedded.uri, manifest, workdir))
        finally:
            embedded.stop()
        label = {1.0: "full", 0.02: "small"}.get(manifest["scale"], f"{manifest['scale']:g}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_json(
            RESULTS / f"probe-{label}.json",
            {
                "scale": manifest["scale"],
                "sizes": manifest["sizes"],
                "machine": machine(),
                "single_command_ms": timings,
            },
        )
        log(f"probe: wrote {RESULTS / f'probe-{label}.json'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
