"""Benchmarks 3 and 5: subscription fan-out, and cross-instance delivery.

Fan-out: N ``conversationEvents`` subscribers (one ``bench.subscribers``
process), spread over the 200 members (each in the Hotline team and two of the
other 19), while a driver posts inbound customer messages at a steady rate to
distinct conversations of the 19 ordinary teams (so an event concerns about a
tenth of the members, as in a real inbox). Per delivery: latency from the
moment the POST returned (the commit) to receipt by the subscriber. Who must
receive each event is decided from the stored event with the server's own
rules (``domain.listing.event_criteria`` + ``domain.events.route_event``); a
subscriber missing one is a lost event, one receiving an event it must not is
"unexpected". A marker message on a Hotline conversation (seen by everyone)
ends each round: events reach a subscriber in id order, so once every
subscriber has the marker, everything before it has arrived or is lost.

Cross-instance: the bench starts the embedded database itself and two
``imbrace serve`` processes on it (``MONGODB_URI``); messages are posted to A
and received by subscribers connected to B.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from api.embedded import EmbeddedMongo
from api.store import codec
from api.store.database import connect
from api.store.events import event_from_doc
from bench.common import (
    ROOT,
    THRESHOLD_ENV,
    CpuMeter,
    _preexec_nofile,
    cpu_per_op,
    latency_summary,
    log,
    maybe_profile,
    mint_token,
    percentile,
    python,
    start_serve,
)
from domain import listing
from domain.enums import OrgRole
from domain.events import route_event
from domain.status import Thresholds
from domain.visibility import Viewer

MESSAGE_KINDS = {"MESSAGE", "REOPENED", "CREATED"}
MAX_IN_FLIGHT = 16  # driver posts outstanding at once; beyond that the schedule slips and is cut at the end


def _thresholds() -> Thresholds:
    return Thresholds(
        soon_after_s=float(THRESHOLD_ENV["IMBRACE_SOON_AFTER_S"]),
        overdue_after_s=float(THRESHOLD_ENV["IMBRACE_OVERDUE_AFTER_S"]),
        auto_close_after_s=float(THRESHOLD_ENV["IMBRACE_AUTO_CLOSE_AFTER_S"]),
    )


class SubscriberProcess:
    def __init__(self, workdir: Path, name: str, ws_url: str, tokens_file: Path, n: int, offset: int = 0) -> None:
        self.workdir = workdir
        self.name = name
        self.stderr = open(workdir / f"{name}.stderr", "wb")
        self.process = subprocess.Popen(
            [
                python(),
                "-m",
                "bench.subscribers",
                "--ws-url",
                ws_url,
                "--tokens",
                str(tokens_file),
                "--n",
                str(n),
                "--offset",
                str(offset),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=str(ROOT),
            preexec_fn=_preexec_nofile,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read(self, timeout: float) -> dict:
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited; see {self.stderr.name}")
        return json.loads(line)

    def send(self, command: dict) -> None:
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"cmd": "exit"})
                self.process.wait(timeout=60)
            except Exception:  # noqa: BLE001
                self.process.kill()
                self.process.wait(timeout=10)


class SubscriberProcesses:
    """``count`` subscriber processes holding ``n`` sockets between them, driven as one.

    Each takes its share of the roster in order (subscriber i is member i mod 200,
    as with one process); every command goes to all of them, and their answers are
    merged (counts summed, latency percentiles over all their receipts)."""

    def __init__(self, workdir: Path, name: str, ws_url: str, tokens_file: Path, n: int, count: int = 1) -> None:
        count = max(1, min(count, n))
        shares = [n // count + (1 if i < n % count else 0) for i in range(count)]
        starts = [sum(shares[:i]) for i in range(count)]
        self.processes = [
            SubscriberProcess(workdir, name if i == 0 else f"{name}-{i + 1}", ws_url, tokens_file, share, start)
            for i, (share, start) in enumerate(zip(shares, starts, strict=True))
        ]
        self._evaluating: str | None = None

    @property
    def pids(self) -> dict[str, int]:
        """For the CPU meter: ``clients`` (one process) or ``clients_1``, ``clients_2``, … (summed as ``clients``)."""
        if len(self.processes) == 1:
            return {"clients": self.processes[0].pid}
        return {f"clients_{i + 1}": p.pid for i, p in enumerate(self.processes)}

    def send(self, command: dict) -> None:
        if command["cmd"] == "evaluate":
            self._evaluating = command["out"]
            for i, p in enumerate(self.processes):
                p.send({**command, "out": f"{command['out']}.{i}"})
            return
        for p in self.processes:
            p.send(command)

    async def read(self, timeout: float) -> dict:
        answers = await asyncio.gather(*(p.read(timeout) for p in self.processes))
        first = answers[0]
        kind = first["event"]
        if kind == "connected":
            return {
                **first,
                "connected": sum(a["connected"] for a in answers),
                "failed": sum(a["failed"] for a in answers),
                "failures": [f for a in answers for f in a["failures"]][:3],
                "seconds": max(a["seconds"] for a in answers),
                "processes": len(answers),
            }
        if kind == "awaited":
            return {
                **first,
                "complete": sum(a["complete"] for a in answers),
                "of": sum(a["of"] for a in answers),
                "seconds": max(a["seconds"] for a in answers),
            }
        if kind == "evaluated" and self._evaluating is not None:
            out, self._evaluating = self._evaluating, None
            parts = [json.loads(Path(f"{out}.{i}").read_text()) for i in range(len(self.processes))]
            Path(out).write_text(json.dumps(_merge_evaluations(parts)))
            return {**first, "out": out}
        return first

    def close(self) -> None:
        for p in self.processes:
            p.close()


def _merge_evaluations(parts: list[dict]) -> dict:
    summed = (
        "deliveries_expected",
        "delivered",
        "lost",
        "unexpected",
        "received_before_commit",
        "subscribers_closed",
        "stale_events_received",
        "errors",
    )
    merged: dict = {k: sum(p[k] for p in parts) for k in summed}
    merged["lost_examples"] = [x for p in parts for x in p["lost_examples"]][:5]
    merged["error_examples"] = [x for p in parts for x in p["error_examples"]][:3]
    merged["latency"] = latency_summary([x for p in parts for x in p.get("latencies_s", [])])
    return merged


class Poster:
    """Posts inbound customer messages; notes when each POST returned (the commit)."""

    def __init__(self, url: str, manifest: dict) -> None:
        self.channels = manifest["channels"]
        self.client = httpx.AsyncClient(
            base_url=url, timeout=120, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
        self.seq = 0

    async def post(self, conversation: dict) -> tuple[float, int]:
        self.seq += 1
        ch = self.channels[conversation["team"]]
        try:
            response = await self.client.post(
                f"/channels/{ch['id']}/inbound",
                json={
                    "messageId": f"fan-{time.time_ns()}-{self.seq}",
                    "customer": {"externalId": conversation["external_id"]},
                    "text": "Any news about my order?",
                },
                headers={"X-Channel-Key": ch["key"]},
            )
            code = response.status_code
        except httpx.HTTPError:
            code = 0
        return time.time(), code

    async def close(self) -> None:
        await self.client.aclose()


async def _viewers(db, manifest: dict, members: list[str]) -> dict[str, Viewer]:
    teams = tuple(
        sorted(
            (codec.team(t) for t in await db.teams.find({"org_id": manifest["org_id"]}).to_list()), key=lambda t: t.name
        )
    )
    return {m: Viewer(member_id=m, org_id=manifest["org_id"], org_role=OrgRole.MEMBER, teams=teams) for m in members}


async def _expected(db, since_event_id: int, conversations: set[str], viewers: dict[str, Viewer]) -> dict:
    """Which members must receive each conversation's event, by the server's own routing rules."""
    docs = await db.events.find({"_id": {"$gt": since_event_id}}).sort("_id", 1).to_list()
    thresholds = _thresholds()
    flt = listing.ConversationFilter()
    expected: dict[str, list[str]] = {}
    for doc in docs:
        cid = doc.get("conversation", {}).get("_id")
        if cid not in conversations or doc["kind"] not in MESSAGE_KINDS or cid in expected:
            continue
        event = event_from_doc(doc)
        expected[cid] = [
            m
            for m, viewer in viewers.items()
            if route_event(viewer, event, listing.event_criteria(viewer, flt, event.kind, event.at, thresholds))
        ]
    return expected


async def _last_event_id(db) -> int:
    """The event id counter (not ``find_one(sort=_id desc)``: nx-27017 sorts integer ids as text
    when the filter is empty, so that returns 99 rather than 660; see NOTES)."""
    doc = await db.counters.find_one({"_id": "events"})
    return doc["n"] if doc else 0


async def session(
    *,
    manifest: dict,
    workdir: Path,
    name: str,
    post_url: str,
    ws_url: str,
    db_uri: str,
    n: int,
    rounds: int,
    rate: float,
    drive_s: float,
    pool: list[dict],
    markers: list[dict],
    warmup: dict,
    pids: dict,
    drain_timeout: float = 120,
    connect_timeout: float = 900,
    subscriber_processes: int = 1,
) -> dict:
    """One subscriber population, ``rounds`` driver rounds. ``pool``: conversations to post to."""
    members = [m["id"] for m in manifest["members"]]
    tokens_file = workdir / f"{name}-tokens.json"
    tokens_file.write_text(json.dumps([{"member_id": m, "token": mint_token(m, manifest["org_id"])} for m in members]))
    client = connect(db_uri)
    db = client["imbrace"]
    viewers = await _viewers(db, manifest, members)
    subscribers = SubscriberProcesses(workdir, name, ws_url, tokens_file, n, subscriber_processes)
    poster = Poster(post_url, manifest)
    out: dict = {"subscribers_requested": n, "subscriber_processes": len(subscribers.processes)}
    try:
        t0 = time.monotonic()
        connected = await subscribers.read(connect_timeout)
        out["connect"] = connected
        log(
            f"{name}: {connected['connected']}/{n} subscribers connected in {connected['seconds']} s "
            f"(failed {connected['failed']})"
        )
        # warm-up: every subscription is live once each subscriber got an event of the warm-up conversation
        subscribers.send({"cmd": "arm", "since": await _last_event_id(db)})
        await subscribers.read(60)
        subscribers.send({"cmd": "await", "conversation": warmup["id"], "timeout": 300})
        ready_task = asyncio.create_task(subscribers.read(330))
        while not ready_task.done():
            await poster.post(warmup)
            await asyncio.wait([ready_task], timeout=2)
        out["warmup"] = ready_task.result()
        out["setup_s"] = round(time.monotonic() - t0, 1)
        log(f"{name}: ready ({out['warmup']['complete']}/{out['warmup']['of']} after {out['warmup']['seconds']} s)")
        per_round = []
        # distinct conversations within a round; rounds may reuse them (receipts are per round)
        per_event = max(1, min(int(rate * drive_s), len(pool)))
        for r in range(rounds):
            offset = (r * per_event) % len(pool)
            batch = (pool[offset:] + pool[:offset])[:per_event]
            since = await _last_event_id(db)
            subscribers.send({"cmd": "arm", "since": since})
            await subscribers.read(60)
            meter = CpuMeter({**pids, **subscribers.pids})
            maybe_profile(name, {**pids, **subscribers.pids})
            posts: dict[str, float] = {}
            codes: dict[int, int] = {}
            dropped = 0
            in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
            start = time.monotonic()

            async def fire(i: int, conversation: dict) -> None:
                nonlocal dropped
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                async with in_flight:
                    if time.monotonic() > start + drive_s:
                        dropped += 1  # the server fell behind the schedule: the round ends on time
                        return
                    committed, code = await poster.post(conversation)
                codes[code] = codes.get(code, 0) + 1
                if code == 202:
                    posts[conversation["id"]] = committed

            await asyncio.gather(*(fire(i, c) for i, c in enumerate(batch)))
            drive_elapsed = time.monotonic() - start
            marker = markers[r % len(markers)]
            await poster.post(marker)
            subscribers.send({"cmd": "await", "conversation": marker["id"], "timeout": drain_timeout})
            drained = await subscribers.read(drain_timeout + 60)
            usage = meter.read()
            if len(subscribers.processes) > 1:  # the load generator's CPU, all its processes together
                for measure in ("cpu_pct", "cpu_s", "rss_mb"):
                    values = [usage.get(f"{k}_{measure}") for k in subscribers.pids]
                    usage[f"clients_{measure}"] = round(sum(v for v in values if v is not None), 3)
            expected = await _expected(db, since, set(posts), viewers)
            spec_file, result_file = workdir / f"{name}-r{r}.json", workdir / f"{name}-r{r}-result.json"
            spec_file.write_text(json.dumps({"posts": posts, "expected": expected}))
            subscribers.send({"cmd": "evaluate", "file": str(spec_file), "out": str(result_file)})
            await subscribers.read(300)
            result = json.loads(result_file.read_text())
            recipients = [len(v) for v in expected.values()]
            result.update(
                {
                    "round": r + 1,
                    "events_scheduled": len(batch),
                    "events_committed": len(posts),
                    "events_dropped_behind_schedule": dropped,
                    "post_statuses": {str(k): v for k, v in codes.items()},
                    "events_per_s": round(len(posts) / drive_elapsed, 1),
                    "drive_s": round(drive_elapsed, 1),
                    "marker_complete": drained["complete"],
                    "drain_s_after_last_post": drained["seconds"],
                    "recipients_per_event": round(sum(recipients) / len(recipients), 1) if recipients else 0,
                    "events_without_recipients": sum(1 for x in recipients if x == 0),
                    "events_missing_in_log": len(posts) - len(expected),
                    **usage,
                }
            )
            # all of the server's CPU in the round (taking the posts included) over the deliveries made
            result["server_cpu_us_per_delivery"] = cpu_per_op(result, result["delivered"], unit=1e6)
            # and the load generator's (all its processes), receiving and decoding them
            result["clients_cpu_us_per_delivery"] = cpu_per_op(result, result["delivered"], unit=1e6, key="clients")
            per_round.append(result)
            lat = result["latency"]
            log(
                f"{name}: round {r + 1}/{rounds}: {result['events_per_s']} ev/s, {result['delivered']} deliveries, "
                f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, lost {result['lost']}, "
                f"unexpected {result['unexpected']}, server cpu {usage.get('server_cpu_pct')}% "
                f"({result['server_cpu_us_per_delivery']} us/delivery; subscribers "
                f"{result['clients_cpu_us_per_delivery']} us/delivery), "
                f"rss {usage.get('server_rss_mb')} MB, load {usage['loadavg_1m']}"
            )
        out["rounds"] = per_round
        out["summary"] = _summarize(per_round)
        return out
    finally:
        await poster.close()
        subscribers.close()
        await client.close()


def _summarize(per_round: list[dict]) -> dict:
    p50s = [r["latency"]["p50_ms"] for r in per_round if r["latency"]["p50_ms"] is not None]
    p99s = [r["latency"]["p99_ms"] for r in per_round if r["latency"]["p99_ms"] is not None]
    return {
        "rounds": len(per_round),
        "p50_ms_median": round(percentile(p50s, 50), 1) if p50s else None,
        "p99_ms_median": round(percentile(p99s, 50), 1) if p99s else None,
        "p99_ms_max": max(p99s) if p99s else None,
        "lost": sum(r["lost"] for r in per_round),
        "unexpected": sum(r["unexpected"] for r in per_round),
        "deliveries": sum(r["delivered"] for r in per_round),
        "events_per_s_median": percentile([r["events_per_s"] for r in per_round], 50) if per_round else None,
        "events_scheduled": sum(r["events_scheduled"] for r in per_round),
        "events_committed": sum(r["events_committed"] for r in per_round),
        "recipients_per_event": round(
            sum(r["recipients_per_event"] * r["events_committed"] for r in per_round)
            / max(1, sum(r["events_committed"] for r in per_round)),
            1,
        ),
        "server_cpu_us_per_delivery": percentile(
            [r["server_cpu_us_per_delivery"] for r in per_round if r.get("server_cpu_us_per_delivery")], 50
        ),
        "clients_cpu_us_per_delivery": percentile(
            [r["clients_cpu_us_per_delivery"] for r in per_round if r.get("clients_cpu_us_per_delivery")], 50
        ),
        "server_cpu_pct_max": max((r.get("server_cpu_pct") or 0) for r in per_round) if per_round else None,
        "server_rss_mb_max": max((r.get("server_rss_mb") or 0) for r in per_round) if per_round else None,
        "db_cpu_pct_max": max((r.get("db_cpu_pct") or 0) for r in per_round) if per_round else None,
        "clients_cpu_pct_max": max((r.get("clients_cpu_pct") or 0) for r in per_round) if per_round else None,
    }


def driver_pool(manifest: dict) -> list[dict]:
    """Current threads of the 19 ordinary teams, in a fixed shuffled order."""
    import random

    reserved = set(manifest["hotline_open"])
    pool = [c for c in manifest["current_threads"] if c["team"] != 0 and c["id"] not in reserved]
    random.Random(3).shuffle(pool)
    return pool


def _hotline(manifest: dict, index: int) -> dict:
    cid = manifest["hotline_open"][index]
    for c in manifest["current_threads"]:
        if c["id"] == cid:
            return c
    raise KeyError(cid)


def hotline_slots(manifest: dict, first: int, count: int) -> list[dict]:
    return [_hotline(manifest, i) for i in range(first, min(first + count, len(manifest["hotline_open"])))]


async def _fanout(
    manifest: dict,
    workdir: Path,
    data_dir: Path,
    sizes: list[int],
    rounds: int,
    rate: float,
    drive_s: float,
    unshared_sizes: list[int] = (),
    subscriber_processes: int = 1,
) -> dict:
    """The sizes with shared execution (the default), then ``unshared_sizes`` on a server
    started with IMBRACE_SHARED_EXECUTION=false: the difference is what sharing saves."""
    results = {"rate_target": rate, "drive_s": drive_s, "sizes": {}, "unshared_sizes": {}}
    plans = [("sizes", "fanout-serve", {}, sizes)]
    if unshared_sizes:
        plans.append(
            ("unshared_sizes", "fanout-serve-unshared", {"IMBRACE_SHARED_EXECUTION": "false"}, list(unshared_sizes))
        )
    k = 0
    for key, name, env, plan_sizes in plans:
        serve = start_serve(name, workdir, data_dir, extra_env=env)
        try:
            for n in plan_sizes:
                results[key][str(n)] = await _fanout_size(
                    manifest, workdir, serve, n, k, rounds, rate, drive_s, subscriber_processes
                )
                k += 1
                if serve.process.poll() is not None:
                    results["server_exited"] = serve.process.returncode
                    break
            results.setdefault("server_pids", {})[key] = {"serve": serve.pid, "db": serve.db_pid}
        finally:
            serve.stop()
    return results


async def _fanout_size(
    manifest: dict,
    workdir: Path,
    serve,
    n: int,
    k: int,
    rounds: int,
    rate: float,
    drive_s: float,
    subscriber_processes: int = 1,
) -> dict:
    pool = driver_pool(manifest)
    slots = hotline_slots(manifest, 0, 12)  # 12-15 are the cross benchmark's
    per_round = max(1, int(rate * drive_s))
    n_rounds = rounds if n <= 1000 else 1
    offset = (k * rounds * per_round) % max(1, len(pool) - rounds * per_round)
    sample = pool[offset:] + pool[:offset]
    first = (k * 4) % 12
    warmup, markers = slots[first], slots[first + 1 : first + 4]
    log(
        f"fanout: N={n}, {n_rounds} round(s) of {per_round} events at {rate}/s ({serve.name}, "
        f"{subscriber_processes} subscriber process(es))"
    )
    try:
        return await session(
            manifest=manifest,
            workdir=workdir,
            name=f"{serve.name}-{n}",
            post_url=serve.url,
            ws_url=serve.ws_url,
            db_uri=serve.db_uri,
            n=n,
            rounds=n_rounds,
            rate=rate,
            drive_s=drive_s,
            pool=sample,
            markers=markers,
            warmup=warmup,
            pids={"server": serve.pid, "db": serve.db_pid},
            drain_timeout=180 if n > 1000 else 120,
            subscriber_processes=subscriber_processes,
        )
    except Exception as e:  # noqa: BLE001 - record what happened, keep the other sizes
        log(f"fanout: N={n} failed: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"}


async def _cross(
    manifest: dict, workdir: Path, data_dir: Path, rounds: int, n: int, rate: float, drive_s: float
) -> dict:
    embedded = EmbeddedMongo(data_dir).start()
    a = b = None
    try:
        a = start_serve("cross-a", workdir, data_dir, mongodb_uri=embedded.uri)
        b = start_serve("cross-b", workdir, data_dir, mongodb_uri=embedded.uri)
        pool = driver_pool(manifest)
        pool = pool[len(pool) // 2 :] + pool[: len(pool) // 2]
        slots = hotline_slots(manifest, 12, 4)
        log(f"cross: {n} subscribers on B, posts to A at {rate}/s")
        result = await session(
            manifest=manifest,
            workdir=workdir,
            name="cross",
            post_url=a.url,
            ws_url=b.ws_url,
            db_uri=embedded.uri,
            n=n,
            rounds=rounds,
            rate=rate,
            drive_s=drive_s,
            pool=pool,
            markers=slots[1:],
            warmup=slots[0],
            pids={"server": b.pid, "server_a": a.pid, "db": embedded.process.pid},
        )
        result.update({"instances": 2, "posts_to": "A", "subscribers_on": "B"})
        return result
    finally:
        for served in (b, a):
            if served:
                served.stop()
        embedded.stop()


def run_fanout(
    manifest: dict,
    workdir: Path,
    data_dir: Path,
    sizes: list[int],
    rounds: int,
    rate: float,
    drive_s: float,
    unshared_sizes: list[int] = (),
    subscriber_processes: int = 1,
) -> dict:
    return asyncio.run(
        _fanout(manifest, workdir, data_dir, sizes, rounds, rate, drive_s, unshared_sizes, subscriber_processes)
    )


def run_cross(
    manifest: dict, workdir: Path, data_dir: Path, rounds: int, n: int = 50, rate: float = 10, drive_s: float = 10
) -> dict:
    return asyncio.run(_cross(manifest, workdir, data_dir, rounds, n, rate, drive_s))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use python -m bench.run --only fanout,cross")
