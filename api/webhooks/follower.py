"""The webhook follower: one per instance, it takes webhooks with a lease and moves each
one's cursor over the event log, delivering in log order.

1. **Claim.** Webhooks that are enabled, behind the log, not leased and not waiting for a
   retry are taken with a conditional update that sets a lease and a fresh token
   (:meth:`api.store.webhooks.Webhooks.claim`); every later write names the token, so
   across instances one follower at a time delivers a webhook, and one that dies is
   taken over when its lease ends. Before that, one read of each organization's new
   events (only whom they concern) tells the webhooks with something to run from the idle
   ones, which are moved past in one update: a busy organization's fifty webhooks cost two
   commands a look, not two each.
2. **Read** the organization's events after the cursor, up to the hub's frontier (every
   event up to it is stored: the hub waits for ids taken but not yet written), a page
   at a time.
3. **Execute** the webhook's subscription for each event (:mod:`api.webhooks.execution`);
   an event it would not deliver just moves the cursor.
4. **Send**, signed (:mod:`api.webhooks.signing`), to the address checked at that moment
   (:mod:`api.webhooks.address`), and log the attempt.
5. **Advance** past a delivered event; on a failure keep the cursor before it, store the
   body sent, and come back after :func:`domain.webhooks.retry_delay`. The events after
   it wait: every conversation's events arrive in order, and none is skipped, at the
   cost of one slow event holding back the others of its webhook (head-of-line
   blocking). An endpoint failing for ``IMBRACE_WEBHOOK_DISABLE_AFTER_S`` without a
   break is disabled and the organization's admins are notified.

A crash between sending and advancing sends that event again: deliveries are at least
once, with the same ``webhook-id`` every time, so receivers de-duplicate on it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from api.store.events import is_conversation_event, teams_concerned
from api.store.webhooks import Claim, SealedSecret
from api.webhooks.execution import Execution, QueryInvalid
from api.webhooks.sender import Answer, Sender
from api.webhooks.signing import WebhookSecrets, headers
from domain.enums import EventKind
from domain.usecases.webhooks import notify_disabled
from domain.webhooks import Webhook, WebhookDelivery, message_id, retry_delay, should_disable

log = logging.getLogger("imbrace.webhooks")

PAGE = 100
IDLE_LOOKS = 256  # webhooks looked at beyond the free slots in one look
SCAN = 2000  # new events of an organization read in one look, to tell idle webhooks apart
STOP_WAIT_S = 3.0  # within the application's shutdown budget for each worker
# Kinds in the log that only mean something live (typing indicators) or to one member
# (their read marks, which only their own tabs receive): never sent.
EPHEMERAL_KINDS = frozenset({EventKind.TYPING.value, EventKind.READ.value})


class WebhookFollower:
    def __init__(
        self,
        services,
        execution: Execution,
        secrets_: WebhookSecrets,
        *,
        poll_s: float = 0.25,
        lease_s: float | None = None,
        concurrency: int = 8,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = services
        self.execution = execution
        self.secrets = secrets_
        self.poll_s = poll_s
        settings = services.settings
        # A lease outlives a page of sends by far: each one is cut off at the timeout and
        # every delivered event extends the lease.
        self.lease_s = lease_s if lease_s is not None else max(60.0, 3 * settings.webhook_timeout_s + 10)
        self.concurrency = concurrency
        self.jitter = jitter
        # webhook-timestamp is checked by receivers against their own clock: real time,
        # whatever clock the server's rules run on.
        self.wall_clock = wall_clock
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._running: dict[str, asyncio.Task] = {}

    @property
    def store(self):
        return self.services.store.webhooks

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="webhook-follower")

    def wake(self) -> None:
        """A webhook changed in this process: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Stops claiming; webhooks in hand are released after their current send, or, past
        ``timeout_s``, left to their leases (an event cut off is sent again, same id)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            for running in list(self._running.values()):
                running.cancel()
            await asyncio.gather(task, *self._running.values(), return_exceptions=True)

    async def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    await self.claim_some()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database may be briefly unreachable: keep polling
                    log.warning("webhook claim failed; retrying", exc_info=True)
                try:
                    async with asyncio.timeout(self.poll_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            if self._running:
                await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def claim_some(self) -> int:
        """Takes what is due, up to the free slots, and serves each in its own task. Webhooks
        with nothing of theirs since their cursor are moved on together, without a slot."""
        free = self.concurrency - len(self._running)
        if free <= 0:
            return 0
        now = self.services.clock()
        frontier = self.services.hub.dispatched_id
        looked_at = free + len(self._running) + IDLE_LOOKS
        behind = [b for b in await self.store.claimable(now, frontier, looked_at) if b[0] not in self._running]
        wanted, idle = await self._sort_out(behind, frontier)
        if idle:
            await self.store.skip_idle(idle, frontier, now)
        taken = 0
        for webhook_id in wanted[:free]:
            claim = await self.store.claim(webhook_id, now, frontier, self.lease_s, secrets.token_hex(12))
            if claim is None:
                continue  # another instance took it
            task = asyncio.create_task(self._guarded(claim), name=f"webhook-{webhook_id}")
            self._running[webhook_id] = task
            task.add_done_callback(functools.partial(self._finished, webhook_id))
            taken += 1
        return taken

    async def _sort_out(
        self, behind: list[tuple[str, str, int, tuple[str, ...]]], frontier: int
    ) -> tuple[list[str], list[tuple[str, int]]]:
        """The webhooks with an event to run (ids, furthest behind first) and the idle ones
        (id, cursor): one read of each organization's new events, the fields that say whom they
        concern, from the furthest-behind cursor, at most :data:`SCAN` of them; a webhook behind
        what that read covers is taken (serving it pages through)."""
        wanted: list[str] = []
        idle: list[tuple[str, int]] = []
        by_org: dict[str, list[tuple[str, int, tuple[str, ...]]]] = {}
        for webhook_id, org_id, cursor, team_ids in behind:
            by_org.setdefault(org_id, []).append((webhook_id, cursor, team_ids))
        for org_id, webhooks in by_org.items():
            oldest = min(cursor for _, cursor, _ in webhooks)
            docs = await self.services.store.events.concerning(org_id, oldest, frontier, SCAN)
            covered = frontier if len(docs) < SCAN else docs[-1]["_id"]
            for webhook_id, cursor, team_ids in webhooks:
                if any(d["_id"] > cursor and _may_concern(team_ids, d) for d in docs):
                    wanted.append(webhook_id)
                elif covered == frontier:
                    idle.append((webhook_id, cursor))
                else:
                    wanted.append(webhook_id)  # nothing in what was read, more after it
        return wanted, idle

    def _finished(self, webhook_id: str, _task: asyncio.Task) -> None:
        self._running.pop(webhook_id, None)
        self._wake.set()

    async def _guarded(self, claim: Claim) -> None:
        try:
            await self.serve(claim)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook %s failed; it is taken up again when its lease ends", claim.webhook.id)

    async def serve(self, claim: Claim) -> None:
        """Delivers a claimed webhook's events until it has caught up, fails, or loses its lease."""
        webhook = claim.webhook
        settings = self.services.settings
        viewer = await self.execution.viewer(webhook)
        cursor = webhook.cursor
        pending = claim.pending
        # The first event sent is the one that failed before, if one did (a change of settings
        # drops the body kept for it, not the failures: they are the endpoint's).
        failing = webhook.attempts > 0
        async with Sender(settings.webhook_allow_private, settings.webhook_timeout_s) as sender:
            while True:
                frontier = self.services.hub.dispatched_id
                docs = await self.services.store.events.of_org_page(webhook.org_id, cursor, frontier, PAGE)
                concerned = [d for d in docs if _may_concern(webhook.team_ids, d)]
                states = await self.execution.states(webhook.org_id, concerned)
                for doc in docs:
                    if self._stopping.is_set():
                        await self.store.release(claim, cursor)
                        return
                    event_id = doc["_id"]
                    try:
                        body = await self._body(claim, viewer, doc, states, pending)
                    except QueryInvalid as error:
                        await self._disable(claim, cursor, f"{error} Update its query to enable it again.")
                        return
                    if body is None:
                        cursor = event_id
                        continue
                    answer = await self._send(sender, claim, event_id, body)
                    now = self.services.clock()
                    if answer.succeeded:
                        await self._log(webhook, event_id, answer, now, None)
                        if not await self.store.advance(claim, event_id, now, self.lease_s):
                            return  # the lease was taken over or broken by a change: stop here
                        cursor, pending, failing = event_id, None, False
                        continue
                    attempts = (webhook.attempts if failing else 0) + 1
                    since = (webhook.failing_since if failing else None) or now
                    await self._failed(claim, cursor, (event_id, body.decode()), attempts, since, answer, now)
                    return
                if len(docs) < PAGE:
                    await self.store.release(claim, max(cursor, frontier))
                    return
                if not await self.store.advance(claim, cursor, self.services.clock(), self.lease_s):
                    return

    async def _body(self, claim: Claim, viewer, doc: dict, states, pending) -> bytes | None:
        """The payload for ``doc`` (the one sent before, when it is being retried); None: nothing
        to send. :class:`QueryInvalid` when the webhook's document no longer runs."""
        if not _may_concern(claim.webhook.team_ids, doc):
            return None
        if pending is not None and pending[0] == doc["_id"]:
            return pending[1].encode()
        return await self.execution.body(claim.webhook, viewer, doc, states)

    async def _send(self, sender: Sender, claim: Claim, event_id: int, body: bytes) -> Answer:
        keys = self.secrets.keys(claim.webhook.id, claim.secrets, self.services.clock())
        signed = headers(keys, message_id(claim.webhook.id, event_id), int(self.wall_clock()), body)
        return await sender.post(claim.webhook.url, body, signed)

    async def _failed(
        self,
        claim: Claim,
        cursor: int,
        pending: tuple[int, str],
        attempts: int,
        since: datetime,
        answer: Answer,
        now: datetime,
    ) -> None:
        webhook = claim.webhook
        if should_disable(since, now, self.services.settings.webhook_disable_after_s):
            await self._log(webhook, pending[0], answer, now, None)
            hours = (now - since).total_seconds() / 3600
            await self._disable(
                claim,
                cursor,
                f"Its endpoint failed for {hours:.0f} h without a break (last: {_what(answer)}). "
                "Enable it again once the endpoint works: it resumes where it stopped.",
            )
            return
        retry_at = now + retry_delay(attempts, self.jitter)
        await self._log(webhook, pending[0], answer, now, retry_at)
        if await self.store.failed(claim, cursor, pending, attempts, since, retry_at):
            log.info(
                "webhook %s: event %d not delivered (%s); retry at %s", webhook.id, pending[0], _what(answer), retry_at
            )

    async def _disable(self, claim: Claim, cursor: int, reason: str) -> None:
        webhook = claim.webhook
        now = self.services.clock()
        if not await self.store.disable(claim, cursor, reason, now):
            return
        log.warning("webhook %s disabled: %s", webhook.id, reason)
        store, events = self.services.store, self.services.events
        notified = await notify_disabled(store.notifications, store, webhook, now)
        await events.publish_notified(webhook.org_id, now, notified)

    async def _log(
        self,
        webhook: Webhook,
        event_id: int | None,
        answer: Answer,
        now: datetime,
        retry_at: datetime | None,
        sent_id: str | None = None,
    ) -> WebhookDelivery:
        """Keeps the attempt for ``webhook(id) { deliveries }``."""
        attempt = WebhookDelivery(
            id=self.store.new_id(),
            webhook_id=webhook.id,
            org_id=webhook.org_id,
            message_id=sent_id or message_id(webhook.id, event_id or 0),
            event_id=event_id,
            at=now,
            succeeded=answer.succeeded,
            latency_ms=answer.latency_ms,
            status_code=answer.status_code,
            response=answer.response,
            error=answer.error,
            next_retry_at=retry_at,
        )
        await self.store.add_delivery(attempt)
        metrics = self.services.metrics
        (metrics.webhooks_delivered if answer.succeeded else metrics.webhooks_failed).inc()
        return attempt

    async def ping(self, webhook: Webhook, sealed: tuple[SealedSecret, ...]) -> WebhookDelivery:
        """Sends a test request now (not an event of the log) and logs it; when it gets through
        while an event waits for its retry, that retry happens at once."""
        now = self.services.clock()
        ping_id = _ping_id(webhook.id)
        body = json.dumps(
            {"extensions": {"ping": {"webhookId": webhook.id, "at": now.isoformat().replace("+00:00", "Z")}}}
        ).encode()
        keys = self.secrets.keys(webhook.id, sealed, now)
        settings = self.services.settings
        async with Sender(settings.webhook_allow_private, settings.webhook_timeout_s) as sender:
            answer = await sender.post(webhook.url, body, headers(keys, ping_id, int(self.wall_clock()), body))
        now = self.services.clock()
        attempt = await self._log(webhook, None, answer, now, None, ping_id)
        if answer.succeeded and webhook.enabled:
            await self.store.retry_now(webhook.org_id, webhook.id, now)
            self.wake()
        return attempt


def _may_concern(team_ids: tuple[str, ...], doc: dict) -> bool:
    """Whether the webhook's subscription could deliver anything for ``doc``: a conversation's
    event, not a live-only one, and (for a webhook limited to teams) of one of its teams, as the
    hub routes it to live subscribers. The others are skipped without running the subscription,
    which costs CPU for every event of the organization and every webhook."""
    if not is_conversation_event(doc) or doc.get("kind") in EPHEMERAL_KINDS:
        return False
    return not team_ids or any(t in team_ids for t in teams_concerned(doc))


def _ping_id(webhook_id: str) -> str:
    return f"ping_{secrets.token_hex(8)}_{webhook_id}"


def _what(answer: Answer) -> str:
    return f"HTTP {answer.status_code}" if answer.status_code is not None else answer.error or "no answer"
