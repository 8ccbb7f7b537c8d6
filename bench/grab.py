"""Benchmark 4: grab contention.

200 representatives of the Hotline GRAB team call ``grabConversation`` on the
same unowned conversation at once; exactly one must win. Repeated on 50
different conversations. Every caller has its own keep-alive connection,
opened before the first round, so the 200 requests leave together.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from bench.common import CpuMeter, cpu_per_op, latency_summary, log, maybe_profile, mint_token, percentile, start_serve

GRAB = """mutation Grab($id: ID!) { grabConversation(id: $id) {
  conversation { id owner { id } } errors { code } } }"""
LEAVE = """mutation Leave($id: ID!) { leaveConversation(id: $id) { errors { code } } }"""
CONTENDERS = 200


async def _run(manifest: dict, workdir: Path, data_dir: Path, rounds: int) -> dict:
    serve = start_serve("grab-serve", workdir, data_dir)
    try:
        org = manifest["org_id"]
        hotline = manifest["teams"][0]
        reps = [m["member_id"] for m in hotline["members"] if m["role"] == "REPRESENTATIVE"][:CONTENDERS]
        tokens = [mint_token(m, org) for m in reps]
        pool = manifest["grab_targets"]
        targets = [pool[r % len(pool)] for r in range(rounds)]
        # uvicorn drops keep-alive connections idle for 5 s; closing them first on our side (4 s)
        # avoids racing a request into a connection the server is closing.
        clients = [
            httpx.AsyncClient(
                base_url=serve.url,
                timeout=120,
                headers={"Authorization": f"Bearer {t}"},
                limits=httpx.Limits(max_connections=1, keepalive_expiry=4),
            )
            for t in tokens
        ]
        try:
            # open every connection (and warm the server) before racing
            await asyncio.gather(*(c.post("/graphql", json={"query": "{ me { id } }"}) for c in clients))
            results = []
            all_latencies: list[float] = []
            meter = CpuMeter({"server": serve.pid, "db": serve.db_pid})
            maybe_profile("grab", {"server": serve.pid, "db": serve.db_pid})
            for r, conversation_id in enumerate(targets):
                latencies = [0.0] * len(clients)
                outcomes: list[str] = [""] * len(clients)

                async def contend(i: int) -> None:
                    t = time.perf_counter()
                    try:
                        response = await clients[i].post(
                            "/graphql", json={"query": GRAB, "variables": {"id": conversation_id}}
                        )
                        body = response.json()
                        payload = body.get("data", {}).get("grabConversation") if "errors" not in body else None
                        if payload is None:
                            outcomes[i] = "error"
                        elif not payload["errors"]:
                            outcomes[i] = "won" if payload["conversation"]["owner"]["id"] == reps[i] else "odd"
                        else:
                            outcomes[i] = payload["errors"][0]["code"]
                    except httpx.HTTPError as e:
                        outcomes[i] = f"http:{type(e).__name__}"
                    latencies[i] = time.perf_counter() - t

                started = time.perf_counter()
                await asyncio.gather(*(contend(i) for i in range(len(clients))))
                round_s = time.perf_counter() - started
                counts: dict[str, int] = {}
                for o in outcomes:
                    counts[o] = counts.get(o, 0) + 1
                all_latencies += latencies
                results.append(
                    {
                        "round": r + 1,
                        "winners": counts.get("won", 0),
                        "outcomes": counts,
                        "round_s": round(round_s, 3),
                        **latency_summary(latencies),
                    }
                )
                if r + len(pool) < len(targets) and "won" in outcomes:
                    # the target comes round again (small data sets): the winner leaves, which releases it
                    winner = outcomes.index("won")
                    left = (
                        await clients[winner].post(
                            "/graphql", json={"query": LEAVE, "variables": {"id": conversation_id}}
                        )
                    ).json()
                    assert not left.get("errors") and not left["data"]["leaveConversation"]["errors"], left
                if r % 10 == 0 or counts.get("won", 0) != 1:
                    log(
                        f"grab: round {r + 1}/{len(targets)}: winners {counts.get('won', 0)}, "
                        f"p99 {results[-1]['p99_ms']} ms, outcomes {counts}"
                    )
            usage = meter.read()
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        winners = [x["winners"] for x in results]
        per_round_p99 = [x["p99_ms"] for x in results]
        return {
            "contenders": len(clients),
            "rounds": len(results),
            "distinct_conversations": len(set(targets)),
            "winners_per_round": {
                "all_exactly_one": all(w == 1 for w in winners),
                "min": min(winners),
                "max": max(winners),
            },
            "latency_all_requests": latency_summary(all_latencies),
            "per_round_p99_ms": {"median": round(percentile(per_round_p99, 50), 2), "max": max(per_round_p99)},
            "round_wall_s": {"median": round(percentile([x["round_s"] for x in results], 50), 3)},
            "usage": usage,
            # every contender's request (the winner's and the refused ones)
            "server_cpu_ms_per_grab": cpu_per_op(usage, len(all_latencies)),
            "per_round": results,
        }
    finally:
        serve.stop()


def run(manifest: dict, workdir: Path, data_dir: Path, rounds: int = 50) -> dict:
    return asyncio.run(_run(manifest, workdir, data_dir, rounds))
