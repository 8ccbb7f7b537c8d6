"""The subscriber side of the fan-out benchmarks: many WebSocket subscribers in one process.

Run by ``bench.fanout`` as its own process (``python -m bench.subscribers``),
so the load generator is one asyncio loop (uvloop) apart from the server; with
``--subscriber-processes 2`` (``bench.run``) as two such processes, each holding
half the sockets (``--offset`` says where in the roster its subscribers start),
so that on a 2-core machine one loop decoding 10,000 sockets' messages is not
what limits the measured latency. Each
subscriber opens a ``graphql-transport-ws`` connection as one member,
subscribes to ``conversationEvents`` (no filter) and notes, per conversation,
when its first event arrived (``time.time()``, comparable across processes).

Talks to its parent in JSON lines: commands on stdin, answers on stdout.

- ``{"cmd": "arm", "since": event_id}``: from now on, ignore events with ids up to
  ``since`` (counted as stale): only events of this round count.
- ``{"cmd": "await", "conversation": id, "timeout": s}``: answer once every
  subscriber has had an event for that conversation (or at the timeout). Events
  reach each subscriber in event-id order, so a marker posted after a round
  tells that subscriber has everything from before it.
- ``{"cmd": "evaluate", "file": path, "out": path}``: the file holds the round's
  posts (conversation -> commit time) and, per conversation, the members who
  must see its event; answers latency percentiles, lost and unexpected counts,
  then forgets the round's receipts.
- ``{"cmd": "exit"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import websockets

from bench.common import latency_summary, raise_nofile

SUBPROTOCOL = "graphql-transport-ws"
QUERY = """subscription { conversationEvents { id kind conversationId at conversation { id status lastMessageAt } } }"""


class Armed:
    """Events at or below ``since`` are old news: a restarted hub may replay history (see NOTES)."""

    since = 0
    stale = 0


class Sub:
    __slots__ = ("member_id", "token", "socket", "received", "messages", "errors", "closed")

    def __init__(self, member_id: str, token: str) -> None:
        self.member_id = member_id
        self.token = token
        self.socket = None
        self.received: dict[str, float] = {}
        self.messages = 0
        self.errors: list[str] = []
        self.closed = False


async def _connect(sub: Sub, url: str) -> None:
    sub.socket = await websockets.connect(
        url, subprotocols=[SUBPROTOCOL], open_timeout=120, ping_interval=None, close_timeout=5, max_queue=None
    )
    await sub.socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {sub.token}"}}))
    while True:
        message = json.loads(await asyncio.wait_for(sub.socket.recv(), 120))
        if message["type"] == "connection_ack":
            break
        if message["type"] == "ping":
            await sub.socket.send('{"type":"pong"}')
            continue
        raise RuntimeError(f"unexpected {message}")
    await sub.socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}))


async def _listen(sub: Sub) -> None:
    loads, now = json.loads, time.time
    try:
        async for raw in sub.socket:
            t = now()
            message = loads(raw)
            kind = message.get("type")
            if kind == "next":
                sub.messages += 1
                payload = message["payload"]
                if "errors" in payload:
                    sub.errors.append(str(payload["errors"])[:200])
                    continue
                event = payload["data"]["conversationEvents"]
                if int(event["id"]) <= Armed.since:
                    Armed.stale += 1
                    continue
                cid = event["conversationId"]
                if cid not in sub.received:
                    sub.received[cid] = t
            elif kind == "ping":
                await sub.socket.send('{"type":"pong"}')
            elif kind in ("error", "complete"):
                sub.errors.append(str(message)[:200])
    except websockets.ConnectionClosed as closed:
        sub.errors.append(f"closed: {closed}")
    finally:
        sub.closed = True


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def _await_conversation(subs: list[Sub], conversation: str, timeout: float) -> dict:
    started = time.monotonic()
    while True:
        done = sum(1 for s in subs if conversation in s.received)
        if done == len(subs) or time.monotonic() - started > timeout:
            return {
                "event": "awaited",
                "conversation": conversation,
                "complete": done,
                "of": len(subs),
                "seconds": round(time.monotonic() - started, 2),
            }
        await asyncio.sleep(0.05)


def _evaluate(subs: list[Sub], spec: dict) -> dict:
    posts: dict[str, float] = spec["posts"]
    expected: dict[str, list[str]] = spec["expected"]
    by_member: dict[str, set[str]] = {}
    for cid, members in expected.items():
        for m in members:
            by_member.setdefault(m, set()).add(cid)
    latencies: list[float] = []
    lost = unexpected = 0
    lost_examples = []
    for s in subs:
        should = by_member.get(s.member_id, set())
        for cid in should:
            t = s.received.get(cid)
            if t is None:
                lost += 1
                if len(lost_examples) < 5:
                    lost_examples.append({"member": s.member_id, "conversation": cid, "closed": s.closed})
            else:
                latencies.append(t - posts[cid])
        unexpected += sum(1 for cid in s.received if cid in posts and cid not in should)
        for cid in posts:
            s.received.pop(cid, None)
    return {
        "deliveries_expected": sum(len(by_member.get(s.member_id, ())) for s in subs),
        "delivered": len(latencies),
        "lost": lost,
        "unexpected": unexpected,
        "lost_examples": lost_examples,
        "received_before_commit": sum(1 for x in latencies if x < 0),
        "latency": latency_summary(latencies),
        "latencies_s": latencies,  # for a parent merging several subscriber processes
        "subscribers_closed": sum(1 for s in subs if s.closed),
        "stale_events_received": Armed.stale,
        "errors": sum(len(s.errors) for s in subs),
        "error_examples": [e for s in subs for e in s.errors][:3],
    }


async def main_async(args) -> None:
    raise_nofile()
    roster = json.load(open(args.tokens))
    picks = [roster[(args.offset + i) % len(roster)] for i in range(args.n)]
    subs = [Sub(p["member_id"], p["token"]) for p in picks]
    semaphore = asyncio.Semaphore(args.connect_concurrency)
    failures: list[str] = []
    listeners: list[asyncio.Task] = []
    started = time.monotonic()

    async def open_one(sub: Sub) -> None:
        async with semaphore:
            try:
                await _connect(sub, args.ws_url)
                listeners.append(asyncio.create_task(_listen(sub)))
            except Exception as e:  # noqa: BLE001 - report, don't die
                sub.closed = True
                failures.append(f"{type(e).__name__}: {e}"[:200])

    await asyncio.gather(*(open_one(s) for s in subs))
    live = [s for s in subs if s.socket is not None and not s.closed]
    _emit(
        {
            "event": "connected",
            "connected": len(live),
            "failed": len(failures),
            "failures": failures[:3],
            "seconds": round(time.monotonic() - started, 2),
        }
    )

    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "arm":
            Armed.since, Armed.stale = int(command["since"]), 0
            for s in live:  # whatever arrived before (a replay, say) is not this round's
                s.received.clear()
            _emit({"event": "armed", "since": Armed.since})
        elif command["cmd"] == "await":
            _emit(await _await_conversation(live, command["conversation"], command.get("timeout", 60)))
        elif command["cmd"] == "evaluate":
            result = _evaluate(live, json.load(open(command["file"])))
            json.dump(result, open(command["out"], "w"))
            _emit({"event": "evaluated", "out": command["out"]})
        elif command["cmd"] == "exit":
            break
    for s in live:
        try:
            await asyncio.wait_for(s.socket.close(), 2)
        except Exception:  # noqa: BLE001
            pass
    for task in listeners:
        task.cancel()
    _emit({"event": "bye"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--offset", type=int, default=0, help="the first subscriber's place in the roster")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main_async(args))
    except ImportError:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
