"""Benchmark 1: the conversation page under 32 concurrent clients, against its floor.

GraphQL ``conversations(first: 50)`` with customer, team, channel,
representatives, owner and lastMessage, served by ``imbrace serve``; beside it,
in the same run (alternating fixed-duration windows), the bare Starlette floor
(``bench.floor``) issuing the same MongoDB commands. Each client is a different
member (two ordinary teams plus the Hotline GRAB team), so visibility filters
are the real ones. Before measuring, the two answers are compared (same
conversations in the same order). MongoDB commands per request are counted
in-process for both.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from api.embedded import EmbeddedMongo
from bench.commands import InProcess
from bench.common import (
    CpuMeter,
    across_runs,
    cpu_per_op,
    latency_summary,
    log,
    maybe_profile,
    median_ratio,
    mint_token,
    start_floor,
    start_serve,
)
from bench.floor import create_floor_app

CLIENTS = 32
FIRST = 50
REQUEST_TIMEOUT_S = 60
PARITY_VIEWERS = 3  # a window ends at most this long after its duration
PAGE_QUERY = """query Page($first: Int!) { conversations(first: $first) {
  pageInfo { hasNextPage endCursor }
  edges { cursor node { id status waitingSince
    customer { id name email phone online }
    team { id name mode }
    channel { id type name }
    representatives { id name }
    owner { id name }
    lastMessage { id text seq createdAt kind } } } } }"""


async def _drive(client: httpx.AsyncClient, request_for, clients: int, duration: float) -> dict:
    """``clients`` closed-loop workers for ``duration`` seconds."""
    latencies: list[float] = []  # successful requests only
    errors: dict[str, int] = {}
    deadline = time.monotonic() + duration
    start = time.perf_counter()

    async def worker(i: int) -> None:
        while time.monotonic() < deadline:
            method, url, kwargs = request_for(i)
            t = time.perf_counter()
            try:
                response = await client.request(method, url, **kwargs)
                if response.status_code != 200:
                    problem = f"HTTP {response.status_code}"
                elif b'"errors"' in response.content[:200] or b'"edges"' not in response.content:
                    problem = "GraphQL errors: " + response.text[:120]
                else:
                    problem = None
            except httpx.TimeoutException:
                problem = f"no answer within {REQUEST_TIMEOUT_S:g} s"
            except httpx.HTTPError as e:
                problem = type(e).__name__
            if problem is None:
                latencies.append(time.perf_counter() - t)
            else:
                errors[problem] = errors.get(problem, 0) + 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    failed = sum(errors.values())
    return {
        "ok": len(latencies),
        "errors": failed,
        "error_kinds": errors,
        "elapsed_s": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 2),
        **latency_summary(latencies),
    }


async def _answers(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> bool:
    try:
        response = await client.request(method, url, timeout=15, **kwargs)
        return response.status_code == 200 and b'"errors"' not in response.content
    except httpx.HTTPError:
        return False


async def _run(manifest: dict, workdir: Path, data_dir: Path, runs: int, duration: float) -> dict:
    # The bench owns the embedded database and both apps connect to it (MONGODB_URI), so a
    # server that wedges can be restarted without touching the database or the other app.
    embedded = EmbeddedMongo(data_dir).start()
    serve = floor = None
    restarts = {"graphql": 0, "floor": 0}
    try:
        serve = start_serve("page-serve", workdir, data_dir, mongodb_uri=embedded.uri)
        serve.db_pid = embedded.process.pid
        floor = start_floor(workdir, embedded.uri)
        org = manifest["org_id"]
        viewers = [m["id"] for m in manifest["members"][:CLIENTS]]
        tokens = [mint_token(m, org) for m in viewers]

        def graphql_request(i):
            return (
                "POST",
                serve.url + "/graphql",
                {
                    "json": {"query": PAGE_QUERY, "variables": {"first": FIRST}},
                    "headers": {"Authorization": f"Bearer {tokens[i]}"},
                },
            )

        def floor_request(i):
            return "GET", floor.url + f"/page?first={FIRST}", {"headers": {"X-Member": viewers[i], "X-Org": org}}

        # commands per request, in-process, for both paths
        log("page: counting MongoDB commands in-process")
        async with InProcess(serve.db_uri, workdir) as app:
            response, gql_commands = await app.request(
                "page",
                "POST",
                "/graphql",
                json={"query": PAGE_QUERY, "variables": {"first": FIRST}},
                headers={"Authorization": f"Bearer {tokens[0]}"},
            )
            assert "errors" not in response.json(), response.text
        async with InProcess(serve.db_uri, workdir, factory=create_floor_app) as app:
            _, floor_commands = await app.request(
                "floor", "GET", f"/page?first={FIRST}", headers={"X-Member": viewers[0], "X-Org": org}
            )

        limits = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            # parity: the same conversations, in the same order, for a few viewers
            mismatches = 0
            sizes = []
            sample = None
            for i in range(PARITY_VIEWERS):
                g = (await client.request(*graphql_request(i)[:2], **graphql_request(i)[2])).json()
                f = (await client.request(*floor_request(i)[:2], **floor_request(i)[2])).json()
                assert "errors" not in g, g
                g_edges, f_edges = g["data"]["conversations"]["edges"], f["data"]["conversations"]["edges"]
                sizes.append(len(g_edges))
                if [
                    (e["node"]["id"], e["node"]["status"], (e["node"]["lastMessage"] or {}).get("id")) for e in g_edges
                ] != [
                    (e["node"]["id"], e["node"]["status"], (e["node"]["lastMessage"] or {}).get("id")) for e in f_edges
                ]:
                    mismatches += 1
                sample = sample or (g_edges[0]["node"] if g_edges else None)
            graphql_runs, floor_runs = [], []
            for r in range(runs):
                for name, request_for, out in (
                    ("graphql", graphql_request, graphql_runs),
                    ("floor", floor_request, floor_runs),
                ):
                    target = serve if name == "graphql" else floor
                    meter = CpuMeter({"server": target.pid, "db": embedded.process.pid})
                    maybe_profile(f"page-{name}", {"server": target.pid, "db": embedded.process.pid})
                    result = await _drive(client, request_for, CLIENTS, duration)
                    result.update(meter.read())
                    result["server_cpu_ms_per_page"] = cpu_per_op(result, result["ok"])
                    # still answering? (a server can wedge after the database stalled: see NOTES)
                    if name == "graphql":
                        alive = await _answers(
                            client,
                            "POST",
                            serve.url + "/graphql",
                            json={"query": "{ me { id } }"},
                            headers={"Authorization": f"Bearer {tokens[0]}"},
                        )
                    else:
                        alive = await _answers(client, "GET", floor.url + "/healthz")
                    result["answering_after_window"] = alive
                    out.append(result)
                    log(
                        f"page: run {r + 1}/{runs} {name}: {result['rps']} req/s, p50 {result['p50_ms']} ms, "
                        f"p99 {result['p99_ms']} ms, server CPU {result['server_cpu_ms_per_page']} ms/page, "
                        f"errors {result['error_kinds']}, load {result['loadavg_1m']}"
                        + ("" if alive else " -- not answering any more: restarting it")
                    )
                    if not alive:
                        restarts[name] += 1
                        if name == "graphql":
                            serve.stop(timeout=10)
                            serve = start_serve("page-serve", workdir, data_dir, mongodb_uri=embedded.uri)
                            serve.db_pid = embedded.process.pid
                        else:
                            floor.stop(timeout=10)
                            floor = start_floor(workdir, embedded.uri)
        ratios = [g["rps"] / f["rps"] for g, f in zip(graphql_runs, floor_runs, strict=False) if f["rps"]]
        return {
            "clients": CLIENTS,
            "first": FIRST,
            "duration_s": duration,
            "runs": runs,
            "page_sizes": {"min": min(sizes), "max": max(sizes)},
            "parity_mismatches": mismatches,
            "graphql": {
                "rps": across_runs(graphql_runs, "rps"),
                "p50_ms": across_runs(graphql_runs, "p50_ms"),
                "p99_ms": across_runs(graphql_runs, "p99_ms"),
                "errors": sum(x["errors"] for x in graphql_runs),
                "server_cpu_ms_per_page": across_runs(graphql_runs, "server_cpu_ms_per_page"),
                "per_run": graphql_runs,
            },
            "floor": {
                "rps": across_runs(floor_runs, "rps"),
                "p50_ms": across_runs(floor_runs, "p50_ms"),
                "p99_ms": across_runs(floor_runs, "p99_ms"),
                "errors": sum(x["errors"] for x in floor_runs),
                "server_cpu_ms_per_page": across_runs(floor_runs, "server_cpu_ms_per_page"),
                "per_run": floor_runs,
            },
            "ratio_graphql_to_floor": {
                "median": round(sorted(ratios)[len(ratios) // 2], 3) if ratios else None,
                "runs": [round(x, 3) for x in ratios],
            },
            # the headline beside the throughput ratio: server CPU per page, GraphQL over floor, per run
            "cpu_ratio_graphql_to_floor": median_ratio(graphql_runs, floor_runs, "server_cpu_ms_per_page"),
            "mongodb_commands_per_request": {
                "graphql": len(gql_commands),
                "graphql_commands": gql_commands,
                "floor": len(floor_commands),
                "floor_commands": floor_commands,
            },
            "restarts_after_wedging": restarts,
            "sample_node": sample,
            "server_pids": {"serve": serve.pid, "floor": floor.pid, "db": embedded.process.pid},
        }
    finally:
        if floor:
            floor.stop()
        if serve:
            serve.stop()
        embedded.stop()


def run(manifest: dict, workdir: Path, data_dir: Path, runs: int, duration: float) -> dict:
    return asyncio.run(_run(manifest, workdir, data_dir, runs, duration))
