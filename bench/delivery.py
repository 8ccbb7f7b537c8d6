"""Benchmark 6: delivery, an agent's ``sendMessage`` to the provider's receipt.

    python -m bench.delivery [--channel whatsapp|line|wechat|all]
        [--rate 50 --paced-s 20 --push-clients 32 --push-s 20] [--profile]

A fresh ``imbrace serve`` process (embedded nx-27017 database, its own empty data
directory) pointing at the channel's fake provider, answering every send after
50 ms: WhatsApp, ``IMBRACE_META_GRAPH_URL`` at the fake Graph API
(``tests/fakes/meta_graph.py``); LINE, ``IMBRACE_LINE_API_URL`` and
``IMBRACE_LINE_DATA_API_URL`` at the fake Messaging API (``tests/fakes/line_api.py``);
WeChat, ``IMBRACE_WECHAT_API_URL`` at the fake official-account API
(``tests/fakes/wechat_api.py``). The fake runs in a process of its own
(``--fake-server CHANNEL``), so that the driver's event loop, busy issuing
mutations, never delays the moment a send is recorded as received. ``--channel all``
runs the three one after the other, each on a fresh server, database and fake.

Set-up, all through the public API: one organization, a team, an agent, one
channel connected with credentials; 200 customers write once each via signed
webhooks (200 conversations inside the channel's window); the agent joins all.

1. **Paced**: ``--rate`` sendMessage/s for ``--paced-s`` seconds, round-robin over
   the conversations (open loop: a send is issued at its scheduled time, unless
   the same conversation's previous send has not returned yet).
2. **Push**: ``--push-clients`` closed-loop clients, each owning a slice of the
   conversations, send as fast as the server answers for ``--push-s`` seconds.

Every text carries its conversation, a per-conversation sequence number and the
issue time. Latency = the fake's ``received_at`` minus the moment the mutation
was issued (both ``time.monotonic()``: CLOCK_MONOTONIC is one clock for every
process on the host). After each phase the driver waits for the backlog to
drain, then checks: every stored reply reached the fake exactly once (lost,
duplicated counted apart) and per conversation in increasing sequence order.

Writes ``bench/results/delivery.json`` and ``delivery.md`` (``--output``), rows per
channel with ``--channel all``; ``python -m bench.run --only delivery`` runs the same
with its defaults (``--delivery-channel``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench import common
from bench.common import (
    PASSWORD,
    RESULTS,
    CpuMeter,
    imbrace_bin,
    latency_summary,
    log,
    machine,
    maybe_profile,
    percentile,
    start_serve,
    write_json,
)

PHONE_NUMBER_ID = "106540352242922"
WA_TOKEN = "EAAbenchWHATSAPPtoken0001"
APP_SECRET = "bench-app-secret-5e2d"
VERIFY_TOKEN = "bench-verify-4411"
LINE_SECRET = "be4c4b1f0e2d3a5b6c7d8e9f0a1b2c3d"
LINE_TOKEN = "lineBenchACCESStoken/0123456789abcdefXYZ="
WECHAT_APP_ID = "wx5f2b7c9e1a3dbe6c"
WECHAT_APP_SECRET = "3c9a6f0e8b7d4c2a1f5e9d8c7b6abe4e"
WECHAT_TOKEN = "benchServerToken7Kq2"
CHANNELS = ("whatsapp", "line", "wechat")
LABELS = {"whatsapp": "WhatsApp", "line": "LINE", "wechat": "WeChat"}
FAKES = {"whatsapp": "fake Graph API", "line": "fake LINE API", "wechat": "fake WeChat API"}
OWNER_EMAIL = "owner@bench.example.com"
AGENT_EMAIL = "agent@bench.example.com"
CONVERSATIONS = 200
LATENCY_S = 0.05
TARGETS = {"p99_ms": 500, "push_deliveries_per_s": 200}

GQL = "/graphql"
CONNECT = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
    channel { id } webhookUrl errors { code field message } } }"""
INVITE = """mutation($i: InviteMemberInput!) { inviteMember(input: $i) { member { id } errors { code message } } }"""
TEAM = """mutation($i: CreateTeamInput!) { createTeam(input: $i) { team { id } errors { code } } }"""
ADD = """mutation($i: AddTeamMemberInput!) { addTeamMember(input: $i) { errors { code } } }"""
LOGIN = "mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }"
JOIN = "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id } errors { code message } } }"""
CHECKOUT = Path(__file__).resolve().parent.parent  # the fake and the driver run from this checkout
TEXT = re.compile(r"^bench p(\d) c(\d+) n(\d+) t([\d.]+)$")


# --- the fake provider in its own process ------------------------------------------------------


def _normalize_sends(channel: str, fake) -> list[dict]:
    """Every send request the fake received, as ``{received_at, answered_at, outcome, status, to, text}``
    (``outcome`` "accepted" when the provider took it)."""
    out = []
    if channel == "whatsapp":
        for r in fake.sends():
            body = r.body if isinstance(r.body, dict) else {}
            text = (body.get("text") or {}).get("body") if isinstance(body.get("text"), dict) else None
            out.append(
                {"received_at": r.received_at, "answered_at": r.answered_at, "outcome": r.outcome, "status": r.status}
                | {"to": body.get("to"), "text": text}
            )
    elif channel == "line":
        for r in fake.push_requests():
            body = r.body if isinstance(r.body, dict) else {}
            texts = [m.get("text") for m in body.get("messages") or [] if isinstance(m, dict)]
            out.append(
                {"received_at": r.received_at, "answered_at": r.answered_at, "outcome": r.outcome, "status": r.status}
                | {"to": body.get("to"), "text": texts[0] if len(texts) == 1 else None}
            )
    else:
        for r in fake.sends():
            body = r.body if isinstance(r.body, dict) else {}
            content = body.get("text") if isinstance(body.get("text"), dict) else {}
            ok = r.answer == {"errcode": 0, "errmsg": "ok"}
            out.append(
                {"received_at": r.received_at, "answered_at": r.answered_at}
                | {"outcome": "accepted" if ok else f"errcode {r.errcode}", "status": r.errcode}
                | {"to": body.get("touser"), "text": content.get("content")}
            )
    return out


def _peak_concurrency(sends: list[dict]) -> int:
    """The most sends the fake held at once (received, not yet answered)."""
    edges = sorted(
        [(s["received_at"], 1) for s in sends] + [(s["answered_at"], -1) for s in sends if s["answered_at"] is not None]
    )
    in_flight = peak = 0
    for _, step in edges:
        in_flight += step
        peak = max(peak, in_flight)
    return peak


def fake_server(channel: str, latency_s: float) -> None:
    """``--fake-server CHANNEL``: runs the channel's fake, prints ``fake URL...``, then obeys stdin
    lines: ``count`` (sends accepted so far), ``dump PATH`` (every send as JSON), ``quit``."""
    sys.path.insert(0, str(CHECKOUT))

    async def main() -> None:
        if channel == "whatsapp":
            from tests.fakes.meta_graph import FakeGraphAPI

            fake = FakeGraphAPI(tokens=[WA_TOKEN], latency_s=latency_s)
            accepted = lambda: len(fake.sent_whatsapp())  # noqa: E731
        elif channel == "line":
            from tests.fakes.line_api import FakeLineAPI

            fake = FakeLineAPI(tokens=[LINE_TOKEN], latency_s=latency_s)
            accepted = lambda: len(fake.pushes())  # noqa: E731
        else:
            from tests.fakes.wechat_api import FakeWeChatAPI

            fake = FakeWeChatAPI(apps={WECHAT_APP_ID: WECHAT_APP_SECRET}, latency_s=latency_s)
            accepted = lambda: len(fake.sent())  # noqa: E731
        await fake.start()
        urls = [fake.api_url, fake.data_api_url] if channel == "line" else [fake.base_url]
        print("fake", *urls, flush=True)
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
                print(accepted(), flush=True)
            elif command == "dump":
                sends = _normalize_sends(channel, fake)
                Path(arg).write_text(json.dumps({"sends": sends, "peak_concurrency": _peak_concurrency(sends)}))
                print("dumped", flush=True)
            elif command == "quit":
                break
        await fake.stop()

    asyncio.run(main())


class FakeProcess(common.LineChild):
    def __init__(self, workdir: Path, channel: str, latency_s: float) -> None:
        self.workdir = workdir
        self.channel = channel
        self.latency_s = latency_s
        self.dump_prefix = f"fake-{channel}"

    async def start(self) -> FakeProcess:
        log_path = self.workdir / f"fake-{self.channel}.log"
        self.proc = await asyncio.create_subprocess_exec(
            common.python(),
            "-m",
            "bench.delivery",
            "--fake-server",
            self.channel,
            "--latency",
            str(self.latency_s),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=open(log_path, "wb"),
            cwd=str(CHECKOUT),
        )
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode().split()
        if not line or line[0] != "fake":
            raise RuntimeError(f"{FAKES[self.channel]} did not start; see {log_path}")
        self.urls = line[1:]
        return self

    def server_env(self) -> dict[str, str]:
        """What points ``imbrace serve`` at this fake."""
        if self.channel == "whatsapp":
            return {"IMBRACE_META_GRAPH_URL": self.urls[0]}
        if self.channel == "line":
            return {"IMBRACE_LINE_API_URL": self.urls[0], "IMBRACE_LINE_DATA_API_URL": self.urls[1]}
        return {"IMBRACE_WECHAT_API_URL": self.urls[0]}


# --- set-up through the public API ---------------------------------------------------------------


async def gql(client: httpx.AsyncClient, query: str, variables: dict | None = None, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(GQL, json={"query": query, "variables": variables or {}}, headers=headers)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def init_org(workdir: Path, data_dir: Path, env: dict) -> None:
    """``imbrace init`` on the still-empty data directory, as an operator would."""
    subprocess.run(
        [imbrace_bin(), "init", "--org", "Bench", "--email", OWNER_EMAIL, "--password", PASSWORD, "--name", "Owner"],
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


CONNECTION = {  # connectChannel's type, name and credentials input, per channel
    "whatsapp": (
        "WHATSAPP",
        {
            "whatsapp": {
                "phoneNumberId": PHONE_NUMBER_ID,
                "accessToken": WA_TOKEN,
                "appSecret": APP_SECRET,
                "verifyToken": VERIFY_TOKEN,
            }
        },
    ),
    "line": ("LINE", {"line": {"channelSecret": LINE_SECRET, "channelAccessToken": LINE_TOKEN}}),
    "wechat": ("WECHAT", {"wechat": {"appId": WECHAT_APP_ID, "appSecret": WECHAT_APP_SECRET, "token": WECHAT_TOKEN}}),
}


def customer_ids(channel: str, n: int) -> list[str]:
    """The customers' ids on the channel, as the provider shapes them."""
    if channel == "whatsapp":
        return [f"1555{i:07d}" for i in range(n)]
    if channel == "line":
        return [f"U{i:032x}" for i in range(n)]  # U and 32 hexadecimal digits
    return [f"oBench{i:022d}" for i in range(n)]  # a 28-character openid


async def customer_writes(client: httpx.AsyncClient, channel: str, webhook: str, external_id: str, i: int) -> None:
    """One customer's first message, posted and signed as the provider does."""
    if channel == "whatsapp":
        from tests.fakes.meta_webhooks import signed_post, whatsapp_message

        payload = whatsapp_message(PHONE_NUMBER_ID, external_id, f"Customer {i}", text="Where is my order?")
        response = await signed_post(client, webhook, payload, APP_SECRET)
        assert response.status_code == 200, response.text
    elif channel == "line":
        from tests.fakes import line_webhooks

        payload = line_webhooks.callback(line_webhooks.text(external_id, "Where is my order?"))
        response = await line_webhooks.signed_post(client, webhook, payload, LINE_SECRET)
        assert response.status_code == 200, response.text
    else:
        from tests.fakes import wechat_webhooks

        body = wechat_webhooks.text(external_id, "Where is my order?")
        response = await wechat_webhooks.push(client, webhook, WECHAT_TOKEN, body)
        assert (response.status_code, response.text) == (200, "success"), response.text


async def set_up(url: str, db_uri: str, n: int, channel: str = "whatsapp") -> dict:
    from pymongo import AsyncMongoClient

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        owner = (await gql(client, LOGIN, {"i": {"email": OWNER_EMAIL, "password": PASSWORD}}))["login"]["token"]
        team = (await gql(client, TEAM, {"i": {"name": "Support", "mode": "COLLABORATION"}}, owner))["createTeam"]
        invite = {"email": AGENT_EMAIL, "name": "Agent", "password": PASSWORD, "role": "MEMBER"}
        agent_id = (await gql(client, INVITE, {"i": invite}, owner))["inviteMember"]["member"]["id"]
        added = await gql(
            client, ADD, {"i": {"teamId": team["team"]["id"], "memberId": agent_id, "role": "REPRESENTATIVE"}}, owner
        )
        assert added["addTeamMember"]["errors"] == [], added
        kind, credentials = CONNECTION[channel]
        connect = {"type": kind, "name": LABELS[channel], "teamId": team["team"]["id"], "credentials": credentials}
        connected = (await gql(client, CONNECT, {"i": connect}, owner))["connectChannel"]
        assert connected["errors"] == [], connected
        channel_id = connected["channel"]["id"]
        webhook = f"/webhooks/{channel}/{channel_id}"
        agent = (await gql(client, LOGIN, {"i": {"email": AGENT_EMAIL, "password": PASSWORD}}))["login"]["token"]

        external_ids = customer_ids(channel, n)
        gate = asyncio.Semaphore(16)

        async def writes(i: int) -> None:
            async with gate:
                await customer_writes(client, channel, webhook, external_ids[i], i)

        await asyncio.gather(*(writes(i) for i in range(n)))
        mongo = AsyncMongoClient(db_uri)
        try:
            docs = await mongo["imbrace"].customers.find({"channel_id": channel_id}).to_list(None)
        finally:
            await mongo.close()
        by_external = {d["external_id"]: d["_id"] for d in docs}
        conversations = [by_external[e] for e in external_ids]  # the conversation id is the customer's

        async def join(cid: str) -> None:
            async with gate:
                joined = await gql(client, JOIN, {"id": cid}, agent)
                assert joined["joinConversation"]["errors"] == [], joined

        await asyncio.gather(*(join(c) for c in conversations))
    return {
        "agent_token": agent,
        "channel_id": channel_id,
        "conversations": conversations,
        "external_ids": external_ids,
    }


# --- the phases -----------------------------------------------------------------------------------


class Driver:
    def __init__(self, url: str, token: str, conversations: list[str], clients: int) -> None:
        self.conversations = conversations
        self.seq = [0] * len(conversations)
        self.locks = [asyncio.Lock() for _ in conversations]
        self.sent: dict[tuple[int, int], dict] = {}  # (conversation, seq) -> issue/return times, stored?
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=120,
            headers={"Authorization": f"Bearer {token}"},
            # uvicorn drops keep-alive connections idle for 5 s: close them first on our side
            limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=4),
        )

    async def send(self, phase: int, c: int) -> None:
        async with self.locks[c]:  # one conversation's sends never overlap: their order is the issue order
            n = self.seq[c]
            self.seq[c] += 1
            issued = time.monotonic()
            text = f"bench p{phase} c{c} n{n} t{issued:.6f}"
            record = {"phase": phase, "issued": issued, "returned": None, "stored": False, "error": None}
            self.sent[(c, n)] = record
            try:
                response = await self.client.post(
                    GQL,
                    json={
                        "query": SEND,
                        "variables": {"i": {"conversationId": self.conversations[c], "kind": "TEXT", "text": text}},
                    },
                )
                body = response.json()
                payload = (body.get("data") or {}).get("sendMessage")
                if payload is None:
                    record["error"] = str(body.get("errors"))[:200]
                elif payload["errors"]:
                    record["error"] = payload["errors"][0]["code"]
                else:
                    record["stored"] = True
            except (httpx.HTTPError, ValueError) as e:
                record["error"] = f"http:{type(e).__name__}"
            record["returned"] = time.monotonic()

    async def paced(self, rate: float, seconds: float) -> dict:
        total = int(rate * seconds)
        start = time.monotonic()
        tasks = []
        for i in range(total):
            await common.sleep_until(start + i / rate)
            tasks.append(asyncio.create_task(self.send(1, i % len(self.conversations))))
        issued_s = time.monotonic() - start
        await asyncio.gather(*tasks)
        return {"offered": total, "offered_per_s": rate, "issue_s": round(issued_s, 2), "start": start}

    async def push(self, clients: int, seconds: float) -> dict:
        start = time.monotonic()
        deadline = start + seconds

        async def client(k: int) -> None:
            mine = list(range(k, len(self.conversations), clients))
            i = 0
            while time.monotonic() < deadline:
                await self.send(2, mine[i % len(mine)])
                i += 1

        await asyncio.gather(*(client(k) for k in range(clients)))
        return {"clients": clients, "start": start, "elapsed_s": round(time.monotonic() - start, 2)}

    async def close(self) -> None:
        await self.client.aclose()


async def drain(fake: FakeProcess, expected: int, timeout: float = 120) -> float:
    """Seconds until the fake has accepted ``expected`` sends (or the timeout)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await fake.count() >= expected:
            break
        await asyncio.sleep(0.1)
    return round(time.monotonic() - t0, 2)


def check(driver: Driver, sends: list[dict], phase: int, window: tuple[float, float]) -> dict:
    """Latency, throughput at the fake, lost / duplicated / out of order, for one phase."""
    accepted = [s for s in sends if s["outcome"] == "accepted" and s["text"]]
    received: dict[tuple[int, int], list[float]] = {}
    arrival: dict[int, list[int]] = {}
    for s in accepted:
        m = TEXT.match(s["text"])
        if not m or int(m.group(1)) != phase:
            continue
        key = (int(m.group(2)), int(m.group(3)))
        received.setdefault(key, []).append(s["received_at"])
        arrival.setdefault(key[0], []).append(key[1])
    mine = {k: r for k, r in driver.sent.items() if r["phase"] == phase}
    stored = {k: r for k, r in mine.items() if r["stored"]}
    lost = [k for k in stored if k not in received]
    duplicated = sum(len(v) - 1 for v in received.values() if len(v) > 1)
    unexpected = [k for k in received if k not in stored]  # reached the fake, yet the mutation said not stored
    out_of_order = 0
    for seqs in arrival.values():
        highest = -1
        for n in seqs:
            if n < highest:
                out_of_order += 1
            elif n > highest:
                highest = n
    from_issue = [received[k][0] - r["issued"] for k, r in stored.items() if k in received]
    from_return = [received[k][0] - r["returned"] for k, r in stored.items() if k in received]
    mutation = [r["returned"] - r["issued"] for r in mine.values()]
    firsts = sorted(v[0] for v in received.values())
    start, end = window
    in_window = sum(1 for t in firsts if start <= t <= end)
    errors: dict[str, int] = {}
    for r in mine.values():
        if r["error"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    summary = latency_summary(from_issue)
    summary["p95_ms"] = round(percentile(from_issue, 95) * 1000, 2) if from_issue else None
    return {
        "issued": len(mine),
        "stored": len(stored),
        "mutation_errors": errors,
        "received": len(firsts),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "duplicated": duplicated,
        "unexpected": len(unexpected),
        "out_of_order": out_of_order,
        "latency_from_issue": summary,
        "latency_from_return": latency_summary(from_return),
        "send_mutation": latency_summary(mutation),
        "sendmessage_per_s": round(len(stored) / (end - start), 1) if end > start else None,
        "deliveries_per_s_in_window": round(in_window / (end - start), 1) if end > start else None,
        "deliveries_per_s_overall": (
            round(len(firsts) / (firsts[-1] - start), 1) if firsts and firsts[-1] > start else None
        ),
        "last_receipt_after_window_s": round(firsts[-1] - end, 2) if firsts else None,
    }


async def _run(workdir: Path, args, channel: str) -> dict:
    workdir = workdir / channel
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "delivery-data"
    fake = await FakeProcess(workdir, channel, args.latency).start()
    env = {
        **fake.server_env(),
        "IMBRACE_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        **({"IMBRACE_DELIVERY_CONCURRENCY": str(args.concurrency)} if args.concurrency else {}),
    }
    init_org(workdir, data_dir, env)
    serve = start_serve("delivery-serve", workdir, data_dir, extra_env=env)
    driver = None
    try:
        # the server also answers webhooks at its own address (IMBRACE_PUBLIC_URL only names them)
        setup_t = time.monotonic()
        world = await set_up(serve.url, serve.db_uri, args.conversations, channel)
        setup_s = round(time.monotonic() - setup_t, 1)
        log(f"delivery {channel}: set up {len(world['conversations'])} conversations in {setup_s} s")
        pids = {"server": serve.pid, "db": serve.db_pid, "fake": fake.pid, "driver": os.getpid()}
        clients = max(args.push_clients, 64)
        driver = Driver(serve.url, world["agent_token"], world["conversations"], clients)
        # warm-up: one send per 10 conversations, not counted
        await asyncio.gather(*(driver.send(0, c) for c in range(0, len(world["conversations"]), 10)))
        await drain(fake, sum(1 for r in driver.sent.values() if r["stored"]), 30)
        out: dict = {
            "channel": channel,
            "conversations": len(world["conversations"]),
            "fake_latency_s": args.latency,
            "fake_process": f"separate (bench.delivery --fake-server {channel})",
            "delivery_concurrency": args.concurrency or "server default (32)",
            "setup_s": setup_s,
        }
        stored_so_far = lambda: sum(1 for r in driver.sent.values() if r["stored"])  # noqa: E731

        log(f"delivery {channel}: phase 1, {args.rate:g} sendMessage/s for {args.paced_s:g} s")
        meter = CpuMeter(pids)
        paced = await driver.paced(args.rate, args.paced_s)
        end = time.monotonic()
        usage = meter.read()
        drain_s = await drain(fake, stored_so_far())
        out["paced"] = {**{k: v for k, v in paced.items() if k != "start"}, "drain_s": drain_s, "usage": usage}

        log(f"delivery {channel}: phase 2, {args.push_clients} closed-loop clients for {args.push_s:g} s")
        meter = CpuMeter(pids)
        if args.profile:
            maybe_profile(
                f"delivery-push-{channel}" if channel != "whatsapp" else "delivery-push",
                {"server": serve.pid, "db": serve.db_pid},
            )
        push = await driver.push(args.push_clients, args.push_s)
        end2 = time.monotonic()
        usage2 = meter.read()
        drain_s2 = await drain(fake, stored_so_far())
        out["push"] = {**{k: v for k, v in push.items() if k != "start"}, "drain_s": drain_s2, "usage": usage2}

        dump = await fake.dump()
        out["paced"].update(check(driver, dump["sends"], 1, (paced["start"], end)))
        out["push"].update(check(driver, dump["sends"], 2, (push["start"], end2)))
        out["fake_peak_concurrency"] = dump["peak_concurrency"]
        out["fake_sends_not_accepted"] = sum(1 for s in dump["sends"] if s["outcome"] != "accepted")
        out["db_deliveries"] = await _db_statuses(serve.db_uri)
        for name in ("paced", "push"):
            p = out[name]
            log(
                f"delivery {channel}: {name}: stored {p['stored']}, received {p['received']}, lost {p['lost']}, "
                f"dup {p['duplicated']}, out of order {p['out_of_order']}, p50 {p['latency_from_issue']['p50_ms']} ms, "
                f"p99 {p['latency_from_issue']['p99_ms']} ms, {p['deliveries_per_s_in_window']} deliveries/s, "
                f"server CPU {p['usage'].get('server_cpu_pct')}%, db {p['usage'].get('db_cpu_pct')}%"
            )
        p1, p2 = out["paced"], out["push"]
        out["targets"] = {
            "p99_under_500_ms": (p1["latency_from_issue"]["p99_ms"] or 1e9) < TARGETS["p99_ms"],
            "push_at_least_200_per_s": (p2["deliveries_per_s_in_window"] or 0) >= TARGETS["push_deliveries_per_s"],
            "none_lost_or_out_of_order": all(p[k] == 0 for p in (p1, p2) for k in ("lost", "out_of_order")),
        }
        out["server_pids"] = pids
        return out
    finally:
        if driver is not None:
            await driver.close()
        serve.stop()
        await fake.stop()


async def _db_statuses(uri: str) -> dict:
    from pymongo import AsyncMongoClient

    mongo = AsyncMongoClient(uri)
    try:
        messages = mongo["imbrace"].messages
        out = {}
        for status in ("QUEUED", "SENT", "FAILED"):
            out[status] = await messages.count_documents({"deliveries.CHANNEL.status": status})
        out["outbox_pending"] = await messages.count_documents({"outbox_due": {"$exists": True}})
        return out
    finally:
        await mongo.close()


def channels_of(choice: str) -> list[str]:
    return list(CHANNELS) if choice == "all" else [choice]


def run(workdir: Path, args) -> dict:
    """One channel's figures; with ``--channel all``, ``{"channels": {channel: figures}}`` (each
    channel on a fresh server, database and fake, one after the other)."""
    channels = channels_of(getattr(args, "channel", "whatsapp"))
    if len(channels) == 1:
        return asyncio.run(_run(workdir, args, channels[0]))
    out: dict = {"channels": {}}
    for channel in channels:
        try:
            out["channels"][channel] = asyncio.run(_run(workdir, args, channel))
        except Exception as e:  # one channel failing leaves the others' figures
            log(f"delivery {channel}: failed: {type(e).__name__}: {e}")
            out["channels"][channel] = {"channel": channel, "error": f"{type(e).__name__}: {e}"[:500]}
    return out


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The options, also offered by ``bench.run`` (there with a ``delivery-`` prefix)."""
    parser.add_argument(f"--{prefix}rate", type=float, default=50, help="phase 1 sendMessage/s (default 50)")
    parser.add_argument(f"--{prefix}paced-s", type=float, default=20, help="phase 1 seconds (default 20)")
    parser.add_argument(f"--{prefix}push-clients", type=int, default=32, help="phase 2 closed-loop clients")
    parser.add_argument(f"--{prefix}push-s", type=float, default=20, help="phase 2 seconds (default 20)")
    parser.add_argument(f"--{prefix}conversations", type=int, default=CONVERSATIONS)
    parser.add_argument(
        f"--{prefix}channel",
        choices=(*CHANNELS, "all"),
        default="whatsapp",
        help="the provider (default whatsapp); all: the three in turn, rows per channel",
    )
    parser.add_argument(f"--{prefix}latency", type=float, default=LATENCY_S, help="fake provider's latency per send, s")
    parser.add_argument(
        f"--{prefix}concurrency", type=int, default=None, help="IMBRACE_DELIVERY_CONCURRENCY (default: server's)"
    )


OPTIONS = ("channel", "rate", "paced_s", "push_clients", "push_s", "conversations", "latency", "concurrency")


def options(args: argparse.Namespace, prefix: str = "") -> argparse.Namespace:
    """This benchmark's options out of ``args`` (``bench.run`` names them ``delivery_*``)."""
    return argparse.Namespace(profile=False, **{k: getattr(args, prefix + k) for k in OPTIONS})


def rows(d: dict) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, measured, target, met, notes), as ``bench.report`` lays them out: a paced and a
    push row per channel."""
    if "channels" in d:
        return [row for one in d["channels"].values() for row in rows(one)]
    label = LABELS.get(d.get("channel", "whatsapp"), d.get("channel"))
    if "error" in d:
        return [(f"6. Delivery, {label}", "failed", "", "", d["error"])]
    fake = FAKES.get(d.get("channel", "whatsapp"), "fake")
    out = []
    for name in ("paced", "push"):
        p = d[name]
        lat = p["latency_from_issue"]
        if name == "paced":
            title = (
                f"6. Delivery, {label}: sendMessage to {fake} receipt ({int(d['fake_latency_s'] * 1000)} ms), "
                f"{d['conversations']} conversations, paced {p['offered_per_s']:g}/s"
            )
            target = f"p99 < {TARGETS['p99_ms']} ms, 0 lost, 0 out of order"
            ok = (lat["p99_ms"] or 1e9) < TARGETS["p99_ms"] and p["lost"] == 0 and p["out_of_order"] == 0
        else:
            title = f"6. Delivery, {label}, push: {p['clients']} closed-loop clients"
            target = f">= {TARGETS['push_deliveries_per_s']} deliveries/s, 0 lost, 0 out of order"
            ok = (p["deliveries_per_s_in_window"] or 0) >= TARGETS["push_deliveries_per_s"] and (
                p["lost"] == 0 and p["out_of_order"] == 0
            )
        u = p["usage"]
        out.append(
            (
                title,
                f"{p['deliveries_per_s_in_window']} deliveries/s (sendMessage {p['sendmessage_per_s']}/s); "
                f"p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms; "
                f"lost {p['lost']}, duplicated {p['duplicated']}, out of order {p['out_of_order']}",
                target,
                "yes" if ok else "**no**",
                f"{name}: {p['stored']} stored of {p['issued']} issued, errors {p['mutation_errors'] or 0}; "
                f"sendMessage p50 {p['send_mutation']['p50_ms']} ms / p99 {p['send_mutation']['p99_ms']} ms; "
                f"drained {p['drain_s']} s after the window; CPU server {u.get('server_cpu_pct')}%, "
                f"db {u.get('db_cpu_pct')}%, fake {u.get('fake_cpu_pct')}%, driver {u.get('driver_cpu_pct')}%",
            )
        )
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    d = results["delivery"]
    lines = [
        "# Delivery benchmark",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, {m['date']}; "
        f"load average at start {m['loadavg_at_start']}. Server code at commit `{m.get('git_commit')}`. "
        "Server, embedded database, the fake provider (its own process) and the driver share the cores.",
        "",
        "Latency: the fake's receipt (`received_at`, `time.monotonic()`) minus the moment the driver issued "
        "`sendMessage` (same clock). Deliveries/s: first receipts at the fake inside the phase's window / "
        "window length.",
        "",
        "| Benchmark | Measured | Target | Met | Notes |",
        "|---|---|---|---|---|",
    ]
    for row in rows(d):
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for one in d["channels"].values() if "channels" in d else [d]:
        if "error" in one:
            continue
        lines.append(
            f"{LABELS[one['channel']]}: {FAKES[one['channel']]} peak {one['fake_peak_concurrency']} sends in flight; "
            f"{one['fake_sends_not_accepted']} not accepted. Stored deliveries at the end: {one['db_deliveries']}. "
            f"Set-up ({one['conversations']} signed webhooks, joins) {one['setup_s']} s."
        )
    lines.append(f"Wall {results.get('wall_s')} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--output", default="delivery", help="result files under bench/results (default delivery)")
    parser.add_argument("--profile", action="store_true", help="py-spy the server and db during phase 2")
    parser.add_argument("--profile-seconds", type=float, default=10)
    parser.add_argument("--profile-dir", type=Path, default=RESULTS)
    parser.add_argument("--fake-server", choices=CHANNELS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fake_server:
        fake_server(args.fake_server, args.latency)
        return 0
    common.raise_nofile()
    if args.profile:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
        common.PROFILE = {"seconds": args.profile_seconds, "dir": args.profile_dir}
    command = "python -m bench.delivery " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict = {"command": command.strip(), "machine": machine()}
    workdir = Path(tempfile.mkdtemp(prefix="imbrace-bench-delivery-"))
    started = time.monotonic()
    log(f"bench: delivery ({args.channel}), work dir {workdir}")
    try:
        results["delivery"] = run(workdir, args)
    finally:
        results["wall_s"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{args.output}.json", results)
    (RESULTS / f"{args.output}.md").write_text(markdown(results))
    print(markdown(results))
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
