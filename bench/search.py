"""Message search on a seeded data set, one request at a time (no concurrency).

    python -m bench.search --data-dir DIR     # a data set seeded by `python -m bench.seed`
    python -m bench.search --scale small      # seeds a temporary one first

Times what one ``searchMessages`` request costs the database (the domain walk
with the store's commands, as the resolver runs it, without HTTP and GraphQL),
and the one command the conversation list's ``search`` adds, for three callers:
the owner (sees the whole organization), a team admin, and a plain
representative of the GRAB team "Hotline" (sees its unowned conversations and
two other teams), on the seed's 25-word vocabulary: every seeded word is in
about a third of the messages, the worst case for a text index. Also a word no
message holds, and the first three pages of a common word. Writes
``bench/results/search-<scale>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

from pymongo import AsyncMongoClient, monitoring

from api.auth import load_viewer
from api.embedded import EmbeddedMongo
from api.services import utc_now
from api.store.listing import ConversationLister
from api.store.members import Members
from api.store.search import MessageSearcher
from bench.commands import bench_settings
from bench.common import RESULTS, log, machine, write_json
from bench.seed import scale_value, seed_fresh
from domain import listing, search
from domain.enums import ConversationOrder

REPEAT = 3


class Counter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event) -> None:
        if event.command_name not in ("ping", "hello", "isMaster", "ismaster", "endSessions"):
            self.commands.append(f"{event.command_name} {event.command.get(event.command_name)}")

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


async def _bench(uri: str, manifest: dict, workdir: Path, repeat: int) -> dict:
    counter = Counter()
    client = AsyncMongoClient(uri, tz_aware=True, socketTimeoutMS=600_000, event_listeners=[counter])
    db = client["imbrace"]
    thresholds = bench_settings(uri, workdir).thresholds
    searcher, lister = MessageSearcher(db), ConversationLister(db)
    org_id = manifest["org_id"]
    hotline = manifest["teams"][0]
    admin_id = next(m["member_id"] for t in manifest["teams"][1:] for m in t["members"] if m["role"] == "ADMIN")
    admins = {m["member_id"] for t in manifest["teams"] for m in t["members"] if m["role"] == "ADMIN"}
    rep_id = next(m["member_id"] for m in hotline["members"] if m["member_id"] not in admins)
    callers = {
        "owner": await load_viewer(Members(db), manifest["owner"]["id"], org_id),
        "team admin": await load_viewer(Members(db), admin_id, org_id),
        "GRAB representative": await load_viewer(Members(db), rep_id, org_id),
    }
    results: dict[str, dict] = {}

    async def timed(name: str, fn, times: int | None = None) -> object:
        runs, outcome, spent = [], None, 0
        for _ in range(times or repeat):
            before = len(counter.commands)
            t = time.perf_counter()
            outcome = await fn()
            runs.append(round((time.perf_counter() - t) * 1000, 1))
            spent = len(counter.commands) - before
        entry: dict = {"ms_min": min(runs), "ms_runs": runs, "commands": spent}
        if isinstance(outcome, search.Found):
            entry |= {"results": len(outcome.hits), "examined": outcome.examined, "has_next": outcome.has_next}
        elif isinstance(outcome, tuple):
            entry |= {"conversations": len(outcome)}
        results[name] = entry
        log(f"search: {name}: {entry}")
        return outcome

    def request(viewer, query: str, first: int = 20, after=None):
        allowed = search.conversation_criteria(viewer, listing.ConversationFilter(), utc_now(), thresholds)
        return lambda: search.search_messages(searcher, viewer, search.query_terms(query), allowed, first, after)

    for who, viewer in callers.items():
        for query in ("refund", "refund urgent", "refund urgent broken colour", "zebra"):
            await timed(f"searchMessages {query!r}, first 20, {who}", request(viewer, query))
    rep = callers["GRAB representative"]
    after = None
    for page in range(1, 4):
        found = await timed(
            f"searchMessages 'refund', page {page} of 20, GRAB representative", request(rep, "refund", 20, after)
        )
        after = found.end  # type: ignore[union-attr]
    owner = callers["owner"]
    for query in ("refund", "zebra"):
        await timed(
            f"conversation list search {query!r}: the added command (newest {search.MAX_CONVERSATION_MATCHES} matches)",
            lambda q=query: searcher.conversations_mentioning(org_id, search.words(q)),
        )
    now = utc_now()
    for query in ("refund", "Cust"):
        by_name = listing.list_criteria(owner, listing.ConversationFilter(search=query), now, thresholds)
        await timed(
            f"conversation list page, search {query!r}, by customer only (before)",
            lambda c=by_name: lister.page(c, ConversationOrder.LAST_ACTIVITY_DESC, 50, None, now),
            times=1,  # tens of seconds
        )

        async def with_messages(q=query):
            flt = listing.ConversationFilter(search=q)
            ids = await searcher.conversations_mentioning(org_id, search.list_terms(q))
            criteria = listing.list_criteria(owner, flt, now, thresholds, ids)
            return await lister.page(criteria, ConversationOrder.LAST_ACTIVITY_DESC, 50, None, now)

        await timed(f"conversation list page, search {query!r}, customer or message text (now)", with_messages, 1)
    await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=REPEAT)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="imbrace-search-"))
    try:
        data_dir = args.data_dir or workdir / "data"
        manifest = (
            json.loads((data_dir / "manifest.json").read_text())
            if args.data_dir
            else seed_fresh(data_dir, scale_value(args.scale))
        )
        embedded = EmbeddedMongo(data_dir).start()
        try:
            started = time.perf_counter()
            timings = asyncio.run(_bench(embedded.uri, manifest, workdir, args.repeat))
            log(f"search: done in {time.perf_counter() - started:.0f} s")
        finally:
            embedded.stop()
        label = {1.0: "full", 0.02: "small"}.get(manifest["scale"], f"{manifest['scale']:g}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_json(
            RESULTS / f"search-{label}.json",
            {"scale": manifest["scale"], "sizes": manifest["sizes"], "machine": machine(), "requests": timings},
        )
        log(f"search: wrote {RESULTS / f'search-{label}.json'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
