"""Benchmark 7: web widget visitors, an agent's ``sendMessage`` to the visitor's socket.

    python -m bench.widget [--visitors 2000 --rate 50 --paced-s 20 --drain-s 30]

A fresh ``imbrace serve`` process (embedded nx-27017 database, its own empty data
directory), with the widget's abuse limits raised for the run (one client address,
127.0.0.1, opens every session and writes every first message):
``IMBRACE_WIDGET_SESSIONS_PER_HOUR``, ``IMBRACE_WIDGET_MESSAGES_PER_MINUTE`` and
``IMBRACE_WIDGET_MESSAGES_PER_ADDRESS_PER_MINUTE`` (see ``LIMITS_ENV``).

Set-up, all through the public APIs: ``imbrace init``; a COLLABORATION team with an
agent (sending there needs a join); a ``WEB_WIDGET`` channel with ``allowedOrigins``;
then per visitor, paced (``--setup-concurrency``): ``POST /widget/v1/sessions`` from
the allowed ``Origin``, the first message through the widget's ``sendMessage`` (which
creates the conversation), ``visitor { conversationId }``; the agent joins every
conversation. The server's RSS (``/proc/<pid>/status`` VmRSS) is read, every visitor
opens a ``graphql-transport-ws`` socket on ``/widget/graphql`` (``connection_init``
``{token}``, ``Origin`` the session's) subscribed to ``widgetEvents``, and RSS is read
again once all are connected: memory per connected visitor = delta / visitors.

Then the agent replies at ``--rate`` sendMessage/s, round-robin over the visitors,
for ``--paced-s`` seconds (open loop, as ``bench.delivery``'s paced phase). Every
reply's text carries its visitor and sequence number; latency = the moment the
visitor's socket got the ``MESSAGE`` event minus the moment ``sendMessage`` was
issued (both ``time.monotonic()`` in this one process). Replies not received within
``--drain-s`` after the window are lost; a reply received twice is a duplicate.

The visitors' sockets and the agent's driver share this one asyncio loop (uvloop
when installed); the server and the database are their own processes.

Writes ``bench/results/widget.json`` and ``widget.md`` (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import sys
import time
from pathlib import Path

import httpx
import websockets

from bench import common
from bench.common import (
    PASSWORD,
    CpuMeter,
    latency_summary,
    log,
    percentile,
    rss_mb,
    start_serve,
)
from bench.delivery import ADD, AGENT_EMAIL, INVITE, JOIN, LOGIN, OWNER_EMAIL, TEAM, TEXT, Driver, gql, init_org

SITE = "https://shop.bench.example.com"
TARGETS = {"p99_ms": 500}
LIMITS_ENV = {  # one address opens every session: the abuse limits would refuse the set-up
    "IMBRACE_WIDGET_SESSIONS_PER_HOUR": "1000000",
    "IMBRACE_WIDGET_MESSAGES_PER_MINUTE": "1000",
    "IMBRACE_WIDGET_MESSAGES_PER_ADDRESS_PER_MINUTE": "1000000",
}
CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id } widgetKey errors { code field message } } }"""
W_SEND = """mutation($i: WidgetSendMessageInput!) { sendMessage(input: $i) {
    message { id } errors { code field message retryAfterSeconds } } }"""
W_VISITOR = "{ visitor { visitorId conversationId } }"
EVENTS = """subscription { widgetEvents { cursor kind message { id sender text } } }"""


class Visitor:
    __slots__ = ("i", "token", "conversation", "socket", "received", "errors", "closed", "events")

    def __init__(self, i: int, token: str) -> None:
        self.i = i
        self.token = token
        self.conversation: str | None = None
        self.socket = None
        self.received: dict[tuple[int, int], list[float]] = {}  # (phase, n) -> receipt times
        self.errors: list[str] = []
        self.closed = False
        self.events = 0


# --- set-up ----------------------------------------------------------------------------------------


async def set_up(url: str, n: int, concurrency: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        owner = (await gql(client, LOGIN, {"i": {"email": OWNER_EMAIL, "password": PASSWORD}}))["login"]["token"]
        team = (await gql(client, TEAM, {"i": {"name": "Web", "mode": "COLLABORATION"}}, owner))["createTeam"]
        team_id = team["team"]["id"]
        invite = {"email": AGENT_EMAIL, "name": "Agent", "password": PASSWORD, "role": "MEMBER"}
        agent_id = (await gql(client, INVITE, {"i": invite}, owner))["inviteMember"]["member"]["id"]
        added = await gql(
            client, ADD, {"i": {"teamId": team_id, "memberId": agent_id, "role": "REPRESENTATIVE"}}, owner
        )
        assert added["addTeamMember"]["errors"] == [], added
        connect = {"type": "WEB_WIDGET", "name": "Shop", "teamId": team_id, "allowedOrigins": [SITE]}
        connected = (await gql(client, CONNECT, {"i": connect}, owner))["connectChannel"]
        assert connected["errors"] == [], connected
        key = connected["widgetKey"]
        agent = (await gql(client, LOGIN, {"i": {"email": AGENT_EMAIL, "password": PASSWORD}}))["login"]["token"]

        gate = asyncio.Semaphore(concurrency)
        visitors: list[Visitor | None] = [None] * n
        done = [0]
        t0 = time.monotonic()

        async def widget(token: str, query: str, variables: dict | None = None) -> dict:
            response = await client.post(
                "/widget/graphql",
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {token}", "Origin": SITE},
            )
            body = response.json()
            assert response.status_code == 200 and "errors" not in body, (response.status_code, body)
            return body["data"]

        async def one(i: int) -> None:
            async with gate:
                response = await client.post("/widget/v1/sessions", json={"widgetKey": key}, headers={"Origin": SITE})
                assert response.status_code == 201, response.text
                v = Visitor(i, response.json()["token"])
                sent = (await widget(v.token, W_SEND, {"i": {"text": f"Hello, visitor {i} here"}}))["sendMessage"]
                assert not sent["errors"], sent
                v.conversation = (await widget(v.token, W_VISITOR))["visitor"]["conversationId"]
                assert v.conversation, i
                joined = await gql(client, JOIN, {"id": v.conversation}, agent)
                assert joined["joinConversation"]["errors"] == [], joined
                visitors[i] = v
                done[0] += 1
                if done[0] % 250 == 0:
                    log(f"widget: {done[0]}/{n} visitors set up ({time.monotonic() - t0:.0f} s)")

        await asyncio.gather(*(one(i) for i in range(n)))
    return {"agent_token": agent, "widget_key": key, "visitors": visitors}


# --- the visitors' sockets ---------------------------------------------------------------------------


async def connect(v: Visitor, ws_url: str) -> None:
    v.socket = await websockets.connect(
        ws_url,
        subprotocols=["graphql-transport-ws"],
        additional_headers={"Origin": SITE},
        open_timeout=120,
        ping_interval=None,
        close_timeout=5,
        max_queue=None,
        compression=None,
    )
    await v.socket.send(json.dumps({"type": "connection_init", "payload": {"token": v.token}}))
    while True:
        message = json.loads(await asyncio.wait_for(v.socket.recv(), 120))
        if message["type"] == "connection_ack":
            break
        if message["type"] == "ping":
            await v.socket.send('{"type":"pong"}')
            continue
        raise RuntimeError(f"unexpected {message}")
    await v.socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}))


async def listen(v: Visitor) -> None:
    loads, now, match = json.loads, time.monotonic, TEXT.match
    try:
        async for raw in v.socket:
            t = now()
            message = loads(raw)
            kind = message.get("type")
            if kind == "next":
                payload = message["payload"]
                if "errors" in payload:
                    v.errors.append(str(payload["errors"])[:200])
                    continue
                v.events += 1
                event = payload["data"]["widgetEvents"]
                if event["kind"] != "MESSAGE" or not event["message"] or event["message"]["sender"] != "AGENT":
                    continue
                m = match(event["message"]["text"] or "")
                if m and int(m.group(2)) == v.i:
                    v.received.setdefault((int(m.group(1)), int(m.group(3))), []).append(t)
            elif kind == "ping":
                await v.socket.send('{"type":"pong"}')
            elif kind in ("error", "complete"):
                v.errors.append(str(message)[:200])
    except websockets.ConnectionClosed as closed:
        v.errors.append(f"closed: {closed}")
    finally:
        v.closed = True


# --- the check -------------------------------------------------------------------------------------


def check(driver: Driver, visitors: list[Visitor], phase: int, window: tuple[float, float]) -> dict:
    mine = {k: r for k, r in driver.sent.items() if r["phase"] == phase}
    stored = {k: r for k, r in mine.items() if r["stored"]}
    latencies, lost, duplicated = [], [], 0
    for (c, n), r in stored.items():
        times = visitors[c].received.get((phase, n))
        if not times:
            lost.append({"visitor": c, "n": n, "socket_closed": visitors[c].closed})
            continue
        duplicated += len(times) - 1
        latencies.append(times[0] - r["issued"])
    errors: dict[str, int] = {}
    for r in mine.values():
        if r["error"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    start, end = window
    summary = latency_summary(latencies)
    summary["p95_ms"] = round(percentile(latencies, 95) * 1000, 2) if latencies else None
    mutation = [r["returned"] - r["issued"] for r in mine.values() if r["returned"]]
    return {
        "issued": len(mine),
        "stored": len(stored),
        "mutation_errors": errors,
        "received": len(latencies),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "duplicated": duplicated,
        "latency_from_issue": summary,
        "send_mutation": latency_summary(mutation),
        "sendmessage_per_s": round(len(stored) / (end - start), 1) if end > start else None,
    }


async def _run(workdir: Path, args) -> dict:
    data_dir = workdir / "widget-data"
    env = {
        "IMBRACE_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        **LIMITS_ENV,
    }
    init_org(workdir, data_dir, env)
    serve = start_serve("widget-serve", workdir, data_dir, extra_env=env)
    driver = None
    visitors: list[Visitor] = []
    listeners: list[asyncio.Task] = []
    try:
        t = time.monotonic()
        world = await set_up(serve.url, args.visitors, args.setup_concurrency)
        visitors = world["visitors"]
        setup_s = round(time.monotonic() - t, 1)
        log(f"widget: set up {len(visitors)} visitors (session, first message, join) in {setup_s} s")
        pids = {"server": serve.pid, "db": serve.db_pid, "driver": os.getpid()}
        await asyncio.sleep(args.settle_s)
        rss_before = {"server": rss_mb(serve.pid), "db": rss_mb(serve.db_pid), "driver": rss_mb(os.getpid())}
        log(f"widget: RSS before connecting: {rss_before}")

        ws_url = f"ws://127.0.0.1:{serve.port}/widget/graphql"
        gate = asyncio.Semaphore(args.connect_concurrency)
        failures: list[str] = []
        t = time.monotonic()

        async def open_one(v: Visitor) -> None:
            async with gate:
                try:
                    await connect(v, ws_url)
                    listeners.append(asyncio.create_task(listen(v)))
                except Exception as e:  # noqa: BLE001 - counted and reported
                    v.closed = True
                    failures.append(f"{type(e).__name__}: {e}"[:200])

        await asyncio.gather(*(open_one(v) for v in visitors))
        connect_s = round(time.monotonic() - t, 1)
        connected = sum(1 for v in visitors if v.socket is not None and not v.closed)
        log(f"widget: {connected} sockets connected ({len(failures)} failed) in {connect_s} s")
        await asyncio.sleep(args.settle_s)
        rss_after = {"server": rss_mb(serve.pid), "db": rss_mb(serve.db_pid), "driver": rss_mb(os.getpid())}
        log(f"widget: RSS after connecting: {rss_after}")

        conversations = [v.conversation for v in visitors]
        driver = Driver(serve.url, world["agent_token"], conversations, 64)
        # warm-up, not counted: one reply to every 40th visitor
        await asyncio.gather(*(driver.send(0, c) for c in range(0, len(visitors), 40)))
        await asyncio.sleep(2)

        log(f"widget: {args.rate:g} replies/s for {args.paced_s:g} s, round-robin over {len(visitors)} visitors")
        meter = CpuMeter(pids)
        paced = await driver.paced(args.rate, args.paced_s)
        end = time.monotonic()
        usage = meter.read()
        expected = sum(1 for r in driver.sent.values() if r["phase"] == 1 and r["stored"])
        drained = time.monotonic()
        while time.monotonic() - end < args.drain_s:
            got = sum(1 for v in visitors for (p, _n) in v.received if p == 1)
            if got >= expected:
                break
            await asyncio.sleep(0.2)
        drain_s = round(time.monotonic() - drained, 2)
        result = check(driver, visitors, 1, (paced["start"], end))
        delta = (rss_after["server"] or 0) - (rss_before["server"] or 0)
        out = {
            "visitors": len(visitors),
            "connected": connected,
            "connect_failures": len(failures),
            "connect_failure_examples": failures[:3],
            "sockets_closed_at_end": sum(1 for v in visitors if v.closed),
            "socket_errors": sum(len(v.errors) for v in visitors),
            "socket_error_examples": [e for v in visitors for e in v.errors][:3],
            "setup_s": setup_s,
            "connect_s": connect_s,
            "limits_env": LIMITS_ENV,
            "rss_mb_before_connect": rss_before,
            "rss_mb_after_connect": rss_after,
            "server_rss_delta_mb": round(delta, 1),
            "server_kb_per_visitor": round(delta * 1024 / connected, 1) if connected else None,
            "db_rss_delta_mb": round((rss_after["db"] or 0) - (rss_before["db"] or 0), 1),
            "paced": {
                **{k: v for k, v in paced.items() if k != "start"},
                "drain_s": drain_s,
                "drain_window_s": args.drain_s,
                "usage": usage,
                **result,
            },
            "server_pids": pids,
        }
        lat = result["latency_from_issue"]
        out["targets"] = {
            "p99_under_500_ms": (lat["p99_ms"] or 1e9) < TARGETS["p99_ms"],
            "none_lost": result["lost"] == 0 and result["stored"] == result["issued"],
        }
        log(
            f"widget: stored {result['stored']}/{result['issued']}, received {result['received']}, "
            f"lost {result['lost']}, dup {result['duplicated']}, p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, "
            f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; server +{delta:.1f} MB for {connected} sockets "
            f"({out['server_kb_per_visitor']} KB each); CPU server {usage.get('server_cpu_pct')}%, "
            f"db {usage.get('db_cpu_pct')}%, driver {usage.get('driver_cpu_pct')}%"
        )
        return out
    finally:
        if driver is not None:
            await driver.close()
        for v in visitors:
            if v is not None and v.socket is not None:
                try:
                    await asyncio.wait_for(v.socket.close(), 2)
                except Exception:  # noqa: BLE001
                    pass
        for task in listeners:
            task.cancel()
        serve.stop()


def run(workdir: Path, args) -> dict:
    try:
        import uvloop

        return uvloop.run(_run(workdir, args))
    except ImportError:
        return asyncio.run(_run(workdir, args))


def rows(d: dict) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, measured, target, met, notes), as ``bench.report`` lays them out."""
    if "error" in d:
        return [("7. Web widget", "failed", "", "", d["error"])]
    p = d["paced"]
    lat = p["latency_from_issue"]
    u = p["usage"]
    ok = d["targets"]["p99_under_500_ms"] and d["targets"]["none_lost"]
    return [
        (
            f"7. Web widget: {d['connected']} connected visitors, agent replies paced {p['offered_per_s']:g}/s "
            f"round-robin for {p['offered'] / p['offered_per_s']:g} s, sendMessage to the visitor's socket",
            f"p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; "
            f"lost {p['lost']}, duplicated {p['duplicated']}",
            f"p99 < {TARGETS['p99_ms']} ms, 0 lost",
            "yes" if ok else "**no**",
            f"{p['stored']} stored of {p['issued']} issued (sendMessage {p['sendmessage_per_s']}/s), errors "
            f"{p['mutation_errors'] or 0}; sendMessage p50 {p['send_mutation']['p50_ms']} ms / p99 "
            f"{p['send_mutation']['p99_ms']} ms; drained {p['drain_s']} s after the window; CPU server "
            f"{u.get('server_cpu_pct')}%, db {u.get('db_cpu_pct')}%, driver {u.get('driver_cpu_pct')}%; "
            f"load average {u.get('loadavg_1m')}",
        ),
        (
            "7. Web widget: server memory per connected visitor",
            f"{d['server_kb_per_visitor']} KB (RSS {d['rss_mb_before_connect']['server']} → "
            f"{d['rss_mb_after_connect']['server']} MB, +{d['server_rss_delta_mb']} MB for {d['connected']} sockets)",
            "",
            "",
            f"database RSS {d['rss_mb_before_connect']['db']} → {d['rss_mb_after_connect']['db']} MB; "
            f"driver {d['rss_mb_after_connect']['driver']} MB",
        ),
    ]


def markdown(results: dict) -> str:
    m = results["machine"]
    d = results["widget"]
    lines = [
        "# Web widget benchmark",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, {m['date']}; "
        f"load average at start {m['loadavg_at_start']}, at the end {results.get('loadavg_at_end')} "
        f"(a shared machine, loaded by other work during the run). Server code at commit `{m.get('git_commit')}`. "
        "Server, embedded database and the driver (visitors' sockets and the agent's sendMessage, one asyncio "
        "process) share the cores.",
        "",
    ]
    if "error" not in d:
        lines += [
            "Widget limits raised for the run (one address opens every session): "
            + ", ".join(f"`{k}={v}`" for k, v in d["limits_env"].items())
            + ".",
            "",
        ]
    lines += [
        "Latency: the visitor's socket receiving the `MESSAGE` event (`time.monotonic()`) minus the moment the "
        "agent's `sendMessage` was issued (same process, same clock). Memory per visitor: the server's VmRSS after "
        "every socket connected minus before any, over the sockets connected.",
        "",
        "| Benchmark | Measured | Target | Met | Notes |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(d)]
    lines.append("")
    if "error" not in d:
        lines.append(
            f"Set-up ({d['visitors']} sessions, first messages, joins) {d['setup_s']} s; {d['connected']} sockets "
            f"connected in {d['connect_s']} s ({d['connect_failures']} failed); sockets closed at the end "
            f"{d['sockets_closed_at_end']}, socket errors {d['socket_errors']}."
        )
    lines.append(f"Wall {results.get('wall_s')} s.")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument(f"--{prefix}visitors", type=int, default=2000, help="connected visitors (default 2000)")
    parser.add_argument(f"--{prefix}rate", type=float, default=50, help="agent replies/s (default 50)")
    parser.add_argument(f"--{prefix}paced-s", type=float, default=20, help="seconds of replies (default 20)")
    parser.add_argument(f"--{prefix}drain-s", type=float, default=30, help="wait for late replies (default 30)")
    parser.add_argument(f"--{prefix}setup-concurrency", type=int, default=16, help="visitors set up at once")
    parser.add_argument(f"--{prefix}connect-concurrency", type=int, default=50, help="sockets opened at once")
    parser.add_argument(f"--{prefix}settle-s", type=float, default=3, help="pause before each RSS reading")


OPTIONS = ("visitors", "rate", "paced_s", "drain_s", "setup_concurrency", "connect_concurrency", "settle_s")


def options(args: argparse.Namespace, prefix: str = "") -> argparse.Namespace:
    return argparse.Namespace(**{k: getattr(args, prefix + k) for k in OPTIONS})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.widget", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--output", default="widget", help="result files under bench/results (default widget)")
    args = parser.parse_args(argv)
    return common.run_standalone("widget", argv, args, f"{args.visitors} visitors", run, markdown)


if __name__ == "__main__":
    sys.exit(main())
