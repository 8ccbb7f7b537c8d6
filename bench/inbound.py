"""Benchmark 2: inbound burst.

32 concurrent posters send customer messages to ``POST /channels/{id}/inbound``
for 2,000 existing customers (each post a new provider ``messageId``), for a
fixed duration per run. Messages/s, latency, and MongoDB commands per inbound
message (counted in-process for each path a message can take). Each run is
followed by the same burst against the inbound floor (``bench/floor.py``: a bare
route that only takes a sequence number and inserts the message), on the same
database, for the ratio to what the database allows at all.

A server process remembers which customer id an external id maps to (it never
changes) and, for a few seconds, each channel, so the paths are counted for
customers and channels the process has already seen, as in a running server;
``known_customer_first_seen`` shows the one extra lookup of a customer's first
message after a (re)start (a channel not seen for a while adds one more).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path

import httpx

from bench.commands import InProcess
from bench.common import (
    CpuMeter,
    across_runs,
    cpu_per_op,
    latency_summary,
    log,
    maybe_profile,
    median_ratio,
    start_floor,
    start_serve,
)

POSTERS = 32
CUSTOMERS = 2000


def reserved_ids(manifest: dict) -> set[str]:
    return set(manifest["hotline_open"])


def pick_customers(manifest: dict, n: int, seed: int) -> list[dict]:
    """Current threads (their id is the customer's), never the Hotline ones other benchmarks reserve."""
    reserved = reserved_ids(manifest)
    pool = [c for c in manifest["current_threads"] if c["id"] not in reserved]
    rng = random.Random(seed)
    return rng.sample(pool, min(n, len(pool)))


async def _count_commands(manifest: dict, uri: str, workdir: Path) -> dict:
    channels = manifest["channels"]
    pool = pick_customers(manifest, 10**9, 99)
    by_status: dict[str, dict] = {}
    for c in pool:
        by_status.setdefault(c["status"], c)
    async with InProcess(uri, workdir) as app:

        async def post(tag: str, team: int, external_id: str, message_id: str | None = None) -> list[str]:
            ch = channels[team]
            response, commands = await app.request(
                tag,
                "POST",
                f"/channels/{ch['id']}/inbound",
                json={
                    "messageId": message_id or f"count-{tag}-{time.time_ns()}",
                    "customer": {"externalId": external_id},
                    "text": "How much?",
                },
                headers={"X-Channel-Key": ch["key"]},
            )
            assert response.status_code == 202, response.text
            return commands

        out = {}
        waiting = by_status.get("REP_NEEDED") or by_status.get("PENDING")
        replied = by_status.get("REPLIED")
        closed = by_status.get("CLOSED")
        cold = next(c for c in pool if c not in (waiting, replied, closed))
        store = app.app.state.services.store
        for c in (waiting, replied, closed, cold):  # seen before by this process (not counted: no request tag)
            if c:
                await store.channel_with_key_hash(channels[c["team"]]["id"])
                if c is not cold:
                    await store.customer_id_by_external_id(channels[c["team"]]["id"], c["external_id"])
        await store.channel_with_key_hash(channels[1]["id"])
        out["known_customer_first_seen"] = await post("cold", cold["team"], cold["external_id"])
        if waiting:
            out["customer_already_waiting"] = await post("waiting", waiting["team"], waiting["external_id"])
        if replied:
            out["customer_starts_waiting"] = await post("replied", replied["team"], replied["external_id"])
        if closed:
            out["reopens_closed_conversation"] = await post("closed", closed["team"], closed["external_id"])
        new_customer, message_id = f"bench-new-{time.time_ns()}", f"count-new-{time.time_ns()}"
        out["new_customer"] = await post("new", 1, new_customer, message_id)
        out["provider_retry_duplicate"] = await post("dup", 1, new_customer, message_id)
    return {k: {"count": len(v), "commands": v} for k, v in out.items()}


async def _burst(url: str, manifest: dict, customers: list[dict], duration: float, run_id: int) -> dict:
    channels = manifest["channels"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = itertools.count()
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=POSTERS, max_keepalive_connections=POSTERS)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def poster(p: int) -> None:
            while time.monotonic() < deadline:
                n = next(counter)
                c = customers[n % len(customers)]
                ch = channels[c["team"]]
                t = time.perf_counter()
                try:
                    response = await client.post(
                        f"/channels/{ch['id']}/inbound",
                        json={
                            "messageId": f"burst-{run_id}-{n}",
                            "customer": {"externalId": c["external_id"]},
                            "text": f"Message {n}: is my order on its way?",
                        },
                        headers={"X-Channel-Key": ch["key"]},
                    )
                    code = response.status_code
                except httpx.HTTPError:
                    code = 0
                latencies.append(time.perf_counter() - t)
                statuses[code] = statuses.get(code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(poster(p) for p in range(POSTERS)))
        elapsed = time.perf_counter() - start
    accepted = statuses.get(202, 0)
    return {
        "posted": len(latencies),
        "accepted": accepted,
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed_s": round(elapsed, 2),
        "msgs_per_s": round(accepted / elapsed, 1),
        **latency_summary(latencies),
    }


async def _run(manifest: dict, workdir: Path, data_dir: Path, runs: int, duration: float) -> dict:
    serve = start_serve("inbound-serve", workdir, data_dir)
    floor = None
    try:
        log("inbound: counting MongoDB commands in-process")
        commands = await _count_commands(manifest, serve.db_uri, workdir)
        customers = pick_customers(manifest, CUSTOMERS, 1)
        floor = start_floor(workdir, serve.db_uri)
        per_run, floor_runs = [], []
        for r in range(runs):
            meter = CpuMeter({"server": serve.pid, "db": serve.db_pid})
            if r == runs - 1:  # steady state: conversations already waiting
                maybe_profile("inbound", {"server": serve.pid, "db": serve.db_pid})
            result = await _burst(serve.url, manifest, customers, duration, r)
            result.update(meter.read())
            result["server_cpu_ms_per_msg"] = cpu_per_op(result, result["accepted"])
            per_run.append(result)
            log(
                f"inbound: run {r + 1}/{runs}: {result['msgs_per_s']} msg/s, p50 {result['p50_ms']} ms, "
                f"p99 {result['p99_ms']} ms, statuses {result['statuses']}, load {result['loadavg_1m']}"
            )
            meter = CpuMeter({"server": floor.pid, "db": serve.db_pid})
            result = await _burst(floor.url, manifest, customers, duration, f"floor-{r}")
            result.update(meter.read())
            result["server_cpu_ms_per_msg"] = cpu_per_op(result, result["accepted"])
            floor_runs.append(result)
            log(
                f"inbound: floor run {r + 1}/{runs}: {result['msgs_per_s']} msg/s, p50 {result['p50_ms']} ms, "
                f"p99 {result['p99_ms']} ms, statuses {result['statuses']}"
            )
        ratios = [
            round(a["msgs_per_s"] / b["msgs_per_s"], 3)
            for a, b in zip(per_run, floor_runs, strict=False)
            if b["msgs_per_s"]
        ]
        return {
            "posters": POSTERS,
            "customers": len(customers),
            "duration_s": duration,
            "runs": runs,
            "msgs_per_s": across_runs(per_run, "msgs_per_s"),
            "p50_ms": across_runs(per_run, "p50_ms"),
            "p99_ms": across_runs(per_run, "p99_ms"),
            "non_202": sum(r["posted"] - r["accepted"] for r in per_run),
            "server_cpu_ms_per_msg": across_runs(per_run, "server_cpu_ms_per_msg"),
            "cpu_ratio_to_floor": median_ratio(per_run, floor_runs, "server_cpu_ms_per_msg"),
            "mongodb_commands_per_message": commands,
            "per_run": per_run,
            "floor": {
                "commands_per_message": 2,
                "msgs_per_s": across_runs(floor_runs, "msgs_per_s"),
                "p50_ms": across_runs(floor_runs, "p50_ms"),
                "p99_ms": across_runs(floor_runs, "p99_ms"),
                "server_cpu_ms_per_msg": across_runs(floor_runs, "server_cpu_ms_per_msg"),
                "per_run": floor_runs,
            },
            "ratio_to_floor": {"median": sorted(ratios)[len(ratios) // 2] if ratios else None, "runs": ratios},
            "server_pids": {"serve": serve.pid, "db": serve.db_pid, "floor": floor.pid},
        }
    finally:
        if floor is not None:
            floor.stop()
        serve.stop()


def run(manifest: dict, workdir: Path, data_dir: Path, runs: int, duration: float) -> dict:
    return asyncio.run(_run(manifest, workdir, data_dir, runs, duration))
