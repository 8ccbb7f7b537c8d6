"""Benchmark 8: integrators' webhooks, from the event's commit to the receiver.

    python -m bench.webhooks [--webhooks 100 --teams-per-org 50 --rate 50 --duration-s 60 --drain-s 60]

A fresh ``imbrace serve`` process (embedded nx-27017 database, its own empty data
directory, ``IMBRACE_WEBHOOK_ALLOW_PRIVATE=true`` so that webhooks may call the local
receiver). An organization has at most 50 webhooks, so ``--webhooks`` are spread over
as many organizations as that takes (``imbrace init`` each), and each organization's
webhooks over its ``--teams-per-org`` teams, round-robin; each team has one channel
served by the generic ``/channels/{id}/inbound`` webhook. Every webhook has the default
selection (``conversationEvents``, the whole conversation).

The receiver is its own process (uvicorn, uvloop + httptools; ``--receiver``): it answers
``200`` at once and keeps, per request, the webhook (its URL's path), ``webhook-id``, the
wall-clock receipt time and the event's ``at`` from the body; it verifies the Standard
Webhooks signature of one request in ``--verify-every`` (HMAC-SHA256, the secrets
handed to it at start).

Load: customers' messages through ``/channels/{id}/inbound`` at ``--rate`` a second,
open loop, round-robin over the channels and ``--customers`` customers each, for
``--duration-s``. Each message is one event (``CREATED`` for a customer's first, then
``MESSAGE``), delivered to every webhook of its team: ``webhooks / (orgs × teams)``
deliveries per event. Then ``--drain-s`` at most for the stragglers.

Measured: latency = receipt (the receiver's ``time.time()``) minus the event's ``at``,
the moment the server stored it (same machine, same clock); also minus the moment the
driver got the ``202`` (the commit was over by then). Lost = expected deliveries (the
events each webhook should get, from the driver's ``202``s) that never arrived; duplicated =
a ``webhook-id`` received more than once by one webhook. CPU per delivery = the server
process's CPU seconds (user + system, ``/proc``) over the window and the drain, divided by
the deliveries received. The machine's load average (``os.getloadavg``, as ``uptime``
shows it) is recorded at the start and the end: the machine is shared.

Writes ``bench/results/webhooks.json`` and ``webhooks.md`` (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from api.embedded import free_port
from bench import common
from bench.common import (
    PASSWORD,
    CpuMeter,
    cpu_seconds,
    latency_summary,
    log,
    start_serve,
)
from bench.delivery import CHECKOUT, CONNECT, LOGIN, TEAM, gql

TARGETS = {"p99_ms": 1000}
WEBHOOKS_PER_ORG = 50  # domain.webhooks.MAX_WEBHOOKS_PER_ORG
CREATE = """mutation($i: CreateWebhookInput!) { createWebhook(input: $i) {
    webhook { id } secret errors { code field message } } }"""


# --- the receiver in its own process -------------------------------------------------------------


def receiver(port: int, verify_every: int) -> None:
    """``--receiver PORT``: serves ``POST /hook/{n}``; reads the secrets (one per line, webhook n
    on line n) from stdin, prints ``ready``, then obeys stdin lines: ``count``, ``dump PATH``, ``quit``."""
    import uvicorn

    keys = []
    for _ in range(int(sys.stdin.readline())):
        secret = sys.stdin.readline().strip().removeprefix("whsec_")
        keys.append(base64.b64decode(secret))
    got: list[tuple[int, str, float, str | None]] = []  # webhook, webhook-id, received at, event at
    bad_signatures = [0]
    verified = [0]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        t = time.time()
        n = int(scope["path"].rsplit("/", 1)[1])
        headers = dict(scope["headers"])
        webhook_id = headers.get(b"webhook-id", b"").decode()
        if len(got) % verify_every == 0:
            signed = webhook_id.encode() + b"." + headers.get(b"webhook-timestamp", b"") + b"." + body
            expected = base64.b64encode(hmac.new(keys[n], signed, hashlib.sha256).digest()).decode()
            offered = [s.split(",", 1)[1] for s in headers.get(b"webhook-signature", b"").decode().split() if "," in s]
            if expected in offered:
                verified[0] += 1
            else:
                bad_signatures[0] += 1
        try:
            at = json.loads(body)["data"]["conversationEvents"]["at"]
        except (ValueError, KeyError, TypeError):
            at = None
        got.append((n, webhook_id, t, at))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main() -> None:
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
                loop="uvloop",
                http="httptools",
                access_log=False,
                backlog=4096,
            )
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:  # a thread: stdin is a pipe, and this keeps the loop free
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "quit")

        threading.Thread(target=read, daemon=True).start()
        while True:
            command, _, arg = (await lines.get()).strip().partition(" ")
            if command == "count":
                print(len(got), flush=True)
            elif command == "dump":
                data = {"got": got, "verified": verified[0], "bad_signatures": bad_signatures[0]}
                Path(arg).write_text(json.dumps(data))
                print("dumped", flush=True)
            elif command == "quit":
                break
        server.should_exit = True
        await task

    import uvloop

    uvloop.run(main())


class ReceiverProcess(common.LineChild):
    dump_prefix = "received"

    def __init__(self, workdir: Path, verify_every: int) -> None:
        self.workdir = workdir
        self.verify_every = verify_every
        self.port = free_port()

    async def start(self, secrets_: list[str]) -> ReceiverProcess:
        self.proc = await asyncio.create_subprocess_exec(
            common.python(),
            "-m",
            "bench.webhooks",
            "--receiver",
            str(self.port),
            "--verify-every",
            str(self.verify_every),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=open(self.workdir / "receiver.log", "wb"),
            cwd=str(CHECKOUT),
        )
        self.proc.stdin.write(f"{len(secrets_)}\n".encode() + "".join(s + "\n" for s in secrets_).encode())
        await self.proc.stdin.drain()
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode().strip()
        if line != "ready":
            raise RuntimeError(f"the receiver did not start; see {self.workdir / 'receiver.log'}")
        return self

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{n}"


# --- set-up through the public API ---------------------------------------------------------------


def owner_email(o: int) -> str:
    return f"owner{o}@bench.example.com"


def init_orgs(workdir: Path, data_dir: Path, env: dict, orgs: int) -> None:
    """``imbrace init`` once per organization on the still-empty data directory."""
    for o in range(orgs):
        subprocess.run(
            [
                common.imbrace_bin(),
                "init",
                "--org",
                f"Bench {o}",
                "--email",
                owner_email(o),
                "--password",
                PASSWORD,
                "--name",
                "Owner",
            ],
            env={
                **os.environ,
                **env,
                "IMBRACE_DATA_DIR": str(data_dir),
                "IMBRACE_DATABASE": "imbrace",
                "IMBRACE_JWT_SECRET": common.JWT_SECRET,
                "PYTHONPATH": common.server_pythonpath(dict(os.environ)),
            },
            cwd=str(workdir),
            check=True,
            capture_output=True,
        )


async def set_up(url: str, receiver_urls: list[str], orgs: int, teams_per_org: int) -> dict:
    """Teams and channels per organization, then the webhooks, round-robin over each one's teams.
    Returns the channels (id, ingest key, how many webhooks watch its team) and the secrets."""
    webhooks = len(receiver_urls)
    channels: list[dict] = []
    secrets_: list[str] = [""] * webhooks
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for o in range(orgs):
            login = await gql(client, LOGIN, {"i": {"email": owner_email(o), "password": PASSWORD}})
            owner = login["login"]["token"]
            mine = []
            for t in range(teams_per_org):
                team = (await gql(client, TEAM, {"i": {"name": f"Team {t}", "mode": "COLLABORATION"}}, owner))[
                    "createTeam"
                ]
                team_id = team["team"]["id"]
                connect = {"type": "WHATSAPP", "name": f"Adapter {t}", "teamId": team_id}
                connected = (await gql(client, CONNECT_KEY, {"i": connect}, owner))["connectChannel"]
                assert connected["errors"] == [], connected
                mine.append({"id": connected["channel"]["id"], "key": connected["ingestKey"], "team": team_id})
            first = o * WEBHOOKS_PER_ORG
            for k, n in enumerate(range(first, min(first + WEBHOOKS_PER_ORG, webhooks))):
                channel = mine[k % teams_per_org]
                created = (
                    await gql(client, CREATE, {"i": {"url": receiver_urls[n], "teamIds": [channel["team"]]}}, owner)
                )["createWebhook"]
                assert created["errors"] == [], created
                secrets_[n] = created["secret"]
                channel.setdefault("webhooks", []).append(n)
            channels += [c for c in mine if c.get("webhooks")]
    return {"channels": channels, "secrets": secrets_}


CONNECT_KEY = CONNECT.replace("webhookUrl", "ingestKey")


# --- load --------------------------------------------------------------------------------------------


class Driver:
    def __init__(self, url: str, channels: list[dict], customers: int) -> None:
        self.channels = channels
        self.customers = customers
        self.events: list[dict] = []  # channel index, 202 received at (wall clock), ok?
        # at most as many requests in flight as connections: queued by the thousand, httpcore's
        # pool spends its time re-scanning its waiting list (quadratic) instead of sending
        self.gate = asyncio.Semaphore(64)
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=60,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=4),
        )

    async def write(self, i: int) -> None:
        c = i % len(self.channels)
        channel = self.channels[c]
        customer = (i // len(self.channels)) % self.customers
        record = {"channel": c, "issued": time.time(), "committed": None, "ok": False, "error": None}
        self.events.append(record)
        body = {"customer": {"externalId": f"bench-{c}-{customer}"}, "text": f"bench event {i}"}
        try:
            async with self.gate:
                response = await self.client.post(
                    f"/channels/{channel['id']}/inbound", json=body, headers={"X-Channel-Key": channel["key"]}
                )
            record["committed"] = time.time()
            record["ok"] = response.status_code == 202
            if not record["ok"]:
                record["error"] = f"{response.status_code}"
        except httpx.HTTPError as e:
            record["error"] = f"http:{type(e).__name__}"

    async def paced(self, rate: float, seconds: float) -> dict:
        total = int(rate * seconds)
        start = time.monotonic()
        tasks = []
        for i in range(total):
            await common.sleep_until(start + i / rate)
            tasks.append(asyncio.create_task(self.write(i)))
        issued_s = time.monotonic() - start
        await asyncio.gather(*tasks)
        return {"offered": total, "offered_per_s": rate, "issue_s": round(issued_s, 2)}

    async def close(self) -> None:
        await self.client.aclose()


def check(channels: list[dict], events: list[dict], received: dict) -> dict:
    expected_per_webhook: dict[int, int] = {}
    for e in events:
        if e["ok"]:
            for n in channels[e["channel"]]["webhooks"]:
                expected_per_webhook[n] = expected_per_webhook.get(n, 0) + 1
    expected = sum(expected_per_webhook.values())
    seen: dict[tuple[int, str], int] = {}
    latencies = []
    for n, webhook_id, t, at in received["got"]:
        key = (n, webhook_id)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 1 and at:
            from datetime import datetime

            latencies.append(t - datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
    distinct_per_webhook: dict[int, int] = {}
    for n, _ in seen:
        distinct_per_webhook[n] = distinct_per_webhook.get(n, 0) + 1
    lost = sum(max(0, want - distinct_per_webhook.get(n, 0)) for n, want in expected_per_webhook.items())
    errors: dict[str, int] = {}
    for e in events:
        if e["error"]:
            errors[e["error"]] = errors.get(e["error"], 0) + 1
    inbound = [e["committed"] - e["issued"] for e in events if e["committed"]]
    summary = latency_summary(latencies)
    summary["p95_ms"] = round(common.percentile(latencies, 95) * 1000, 2) if latencies else None
    return {
        "events_issued": len(events),
        "events_stored": sum(1 for e in events if e["ok"]),
        "events_stored_per_s": _achieved(events),
        "inbound_errors": errors,
        "inbound_request": latency_summary(inbound),
        "deliveries_expected": expected,
        "deliveries_received": len(received["got"]),
        "deliveries_distinct": len(seen),
        "lost": lost,
        "duplicated": sum(v - 1 for v in seen.values()),
        "signatures_checked": received["verified"] + received["bad_signatures"],
        "bad_signatures": received["bad_signatures"],
        "latency_from_commit": summary,
    }


def _achieved(events: list[dict]) -> float | None:
    """Events stored a second, from the first issue to the last ``202``."""
    done = [e["committed"] for e in events if e["ok"]]
    if not done:
        return None
    return round(len(done) / max(1e-9, max(done) - min(e["issued"] for e in events)), 1)


async def _run(workdir: Path, args) -> dict:
    data_dir = workdir / "webhooks-data"
    env = {"IMBRACE_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    orgs = -(-args.webhooks // WEBHOOKS_PER_ORG)
    init_orgs(workdir, data_dir, env, orgs)
    serve = start_serve("webhooks-serve", workdir, data_dir, extra_env={**env, "IMBRACE_WEBHOOK_ALLOW_PRIVATE": "true"})
    receiver_proc = ReceiverProcess(workdir, args.verify_every)
    driver = None
    try:
        t = time.monotonic()
        urls = [f"http://127.0.0.1:{receiver_proc.port}/hook/{n}" for n in range(args.webhooks)]
        world = await set_up(serve.url, urls, orgs, args.teams_per_org)
        await receiver_proc.start(world["secrets"])
        setup_s = round(time.monotonic() - t, 1)
        channels = world["channels"]
        fanout = sorted({len(c["webhooks"]) for c in channels})
        log(f"webhooks: {args.webhooks} webhooks over {orgs} orgs, {len(channels)} channels (fan-out {fanout})")
        driver = Driver(serve.url, channels, args.customers)
        pids = {"server": serve.pid, "db": serve.db_pid, "receiver": receiver_proc.pid, "driver": os.getpid()}
        uptime_start = _uptime()
        meter = CpuMeter(pids)
        server_cpu0 = cpu_seconds(serve.pid)
        log(f"webhooks: {args.rate:g} events/s for {args.duration_s:g} s")
        paced = await driver.paced(args.rate, args.duration_s)
        usage = meter.read()
        expected = sum(len(channels[e["channel"]]["webhooks"]) for e in driver.events if e["ok"])
        drained = time.monotonic()
        while time.monotonic() - drained < args.drain_s:
            if await receiver_proc.count() >= expected:
                break
            await asyncio.sleep(0.25)
        drain_s = round(time.monotonic() - drained, 2)
        server_cpu_s = (cpu_seconds(serve.pid) or 0) - (server_cpu0 or 0)
        uptime_end = _uptime()
        received = await receiver_proc.dump()
        result = check(channels, driver.events, received)
        got = result["deliveries_received"]
        out = {
            "webhooks": args.webhooks,
            "organizations": orgs,
            "channels": len(channels),
            "fanout": fanout,
            "setup_s": setup_s,
            "uptime_at_start": uptime_start,
            "uptime_at_end": uptime_end,
            "paced": {**paced, "drain_s": drain_s, "drain_window_s": args.drain_s, "usage": usage, **result},
            "server_cpu_s": round(server_cpu_s, 2),
            "server_cpu_ms_per_delivery": round(server_cpu_s * 1000 / got, 2) if got else None,
            "server_pids": pids,
        }
        lat = result["latency_from_commit"]
        out["targets"] = {
            "p99_under_1_s": (lat["p99_ms"] or 1e9) < TARGETS["p99_ms"],
            "none_lost": result["lost"] == 0 and result["events_stored"] == result["events_issued"],
        }
        log(
            f"webhooks: events {result['events_stored']}/{result['events_issued']}, deliveries "
            f"{result['deliveries_distinct']}/{result['deliveries_expected']} (lost {result['lost']}, dup "
            f"{result['duplicated']}), p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; "
            f"server CPU {out['server_cpu_ms_per_delivery']} ms/delivery; {uptime_end}"
        )
        return out
    finally:
        if driver is not None:
            await driver.close()
        if hasattr(receiver_proc, "proc"):
            await receiver_proc.stop()
        serve.stop()


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run(workdir: Path, args) -> dict:
    import uvloop

    return uvloop.run(_run(workdir, args))


def markdown(results: dict) -> str:
    m = results["machine"]
    d = results["webhooks"]
    lines = [
        "# Webhooks benchmark",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, {m['date']}. "
        f"Server code at commit `{m.get('git_commit')}`. A shared machine: other engineers' tests and servers ran "
        "beside this one. Server, embedded database, receiver and driver share the cores.",
        "",
    ]
    if "error" in d:
        return "\n".join([*lines, f"Failed: {d['error']}", ""])
    p = d["paced"]
    lat = p["latency_from_commit"]
    u = p["usage"]
    ok = d["targets"]["p99_under_1_s"] and d["targets"]["none_lost"]
    lines += [
        f"`uptime` at the start: `{d['uptime_at_start']}`; at the end: `{d['uptime_at_end']}`.",
        "",
        f"{d['webhooks']} webhooks (default selection) on one instance, over {d['organizations']} organizations "
        f"(50 webhooks at most each) and {d['channels']} channels; each event goes to {d['fanout']} webhook(s). "
        f"Customers' messages through `/channels/{{id}}/inbound` at {p['offered_per_s']:g}/s for "
        f"{p['offered'] / p['offered_per_s']:g} s, open loop. Latency: the receiver's `time.time()` at receipt minus "
        "the event's `at` (when the server stored it).",
        "",
        "| Benchmark | Measured | Target | Met | Notes |",
        "|---|---|---|---|---|",
        f"| 8. Webhooks: {d['webhooks']} webhooks, {p['offered_per_s']:g} events/s, commit → receipt "
        f"| p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; "
        f"lost (not received by the end of the drain) {p['lost']}, duplicated {p['duplicated']} "
        f"| p99 < 1 s, 0 lost | {'yes' if ok else '**no**'} "
        f"| {p['deliveries_distinct']} of {p['deliveries_expected']} deliveries expected; events stored "
        f"{p['events_stored']} of {p['events_issued']} ({p['events_stored_per_s']}/s achieved, errors "
        f"{p['inbound_errors'] or 0}); drained "
        f"{p['drain_s']} s after the window; signatures checked {p['signatures_checked']}, bad "
        f"{p['bad_signatures']} |",
        f"| 8. Webhooks: server CPU per delivery | {d['server_cpu_ms_per_delivery']} ms "
        f"({d['server_cpu_s']} s of CPU for {p['deliveries_received']} deliveries, window and drain; it includes "
        "storing the events) | | "
        f"| CPU during the window: server {u.get('server_cpu_pct')}%, db {u.get('db_cpu_pct')}%, receiver "
        f"{u.get('receiver_cpu_pct')}%, driver {u.get('driver_cpu_pct')}% of one core |",
        "",
        f"Inbound request (the event's commit, as the driver saw it): p50 {p['inbound_request']['p50_ms']} ms, "
        f"p99 {p['inbound_request']['p99_ms']} ms. Set-up {d['setup_s']} s. Wall {results.get('wall_s')} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--webhooks", type=int, default=100, help="webhooks on the instance (default 100)")
    parser.add_argument(
        "--teams-per-org", type=int, default=50, help="teams (one channel each) per organization (default 50)"
    )
    parser.add_argument("--rate", type=float, default=50, help="events/s (default 50)")
    parser.add_argument("--duration-s", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--drain-s", type=float, default=60, help="wait for late deliveries (default 60)")
    parser.add_argument("--customers", type=int, default=20, help="customers per channel (default 20)")
    parser.add_argument("--verify-every", type=int, default=10, help="the receiver checks one signature in N")
    parser.add_argument("--output", default="webhooks", help="result files under bench/results (default webhooks)")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        receiver(args.receiver, args.verify_every)
        return 0
    return common.run_standalone("webhooks", argv, args, f"{args.webhooks} webhooks", run, markdown)


if __name__ == "__main__":
    sys.exit(main())
