"""The ``webhooks`` collection (integrators' endpoints, each with its cursor over the event log
and its lease) and ``webhook_deliveries`` (every attempt, kept for a week).

A webhook document carries what a follower needs to resume anywhere: ``cursor`` (the last
event id handled), the failure state of the event after it (``attempts``,
``failing_since``, ``next_attempt_at``, and the ``pending`` body first sent for it), and
its secrets sealed with :class:`api.secrets.SecretBox` (newest first; a rotated one with
its ``expires_at``). A follower takes a webhook with a conditional update that sets
``lease_until`` and a fresh ``lease_token``; each of its later writes names the token,
so once the lease is taken over, or broken by a change of settings, they change nothing.

``lease_until`` and ``next_attempt_at`` are always present (0 when free, when not
waiting), so the claim is a conjunction of ranges without ``$or`` (nx-27017 mismatches
missing fields and nulls inside ``$or``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store.codec import compact, dt, ms, stored_dt
from domain.webhooks import Webhook, WebhookDelivery

AFTER = ReturnDocument.AFTER
FREE = {"lease_until": 0}  # with ``lease_token`` unset, ends a lease: its holder stops at its next write


@dataclass(frozen=True, slots=True)
class SealedSecret:
    token: str
    expires_at: datetime | None  # None: the current secret


@dataclass(frozen=True, slots=True)
class Claim:
    """A webhook taken by one follower: its state as claimed, its secrets, and the lease token."""

    webhook: Webhook
    secrets: tuple[SealedSecret, ...]
    pending: tuple[int, str] | None  # (event id, body first sent) of the event being retried
    token: str


class Webhooks:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db.webhooks
        self.attempts = db.webhook_deliveries

    @staticmethod
    def new_id() -> str:
        return str(ObjectId())

    # management (domain.usecases.webhooks.WebhookStore)

    async def count(self, org_id: str) -> int:
        return await self.collection.count_documents({"org_id": org_id})

    async def add(self, webhook: Webhook, sealed_secret: str) -> None:
        doc = {
            **_settings_doc(webhook),
            "_id": webhook.id,
            "updated_at": ms(webhook.updated_at),
            "org_id": webhook.org_id,
            "created_at": ms(webhook.created_at),
            "cursor": webhook.cursor,
            "attempts": 0,
            "next_attempt_at": 0,
            "lease_until": 0,
            "secrets": [{"token": sealed_secret}],
        }
        await self.collection.insert_one(compact(doc))

    async def get(self, org_id: str, webhook_id: str) -> Webhook | None:
        doc = await self.collection.find_one({"_id": webhook_id, "org_id": org_id}, {"pending": 0})
        return webhook(doc) if doc else None

    async def of_org(self, org_id: str) -> list[Webhook]:
        docs = await self.collection.find({"org_id": org_id}, {"pending": 0}).sort("created_at", 1).to_list()
        return [webhook(d) for d in docs]

    async def save_settings(self, webhook: Webhook, reenabled: bool, now: datetime) -> Webhook | None:
        settings = _settings_doc(webhook)
        update: dict[str, Any] = {
            "$set": {k: v for k, v in settings.items() if v is not None} | {"updated_at": ms(now)} | FREE,
            # the body kept for a retry is made again, with the new settings
            "$unset": {k: "" for k, v in settings.items() if v is None} | {"lease_token": "", "pending": ""},
        }
        if reenabled:
            update["$set"] |= {"attempts": 0, "next_attempt_at": 0}
            update["$unset"] |= {"failing_since": "", "disabled_reason": ""}
        elif not webhook.enabled:
            update["$unset"] |= {"disabled_reason": ""}  # turned off by hand: no reason of the server's
        doc = await self.collection.find_one_and_update(
            {"_id": webhook.id, "org_id": webhook.org_id}, update, projection={"pending": 0}, return_document=AFTER
        )
        return _webhook_or_none(doc)

    async def rotate_secret(
        self, org_id: str, webhook_id: str, sealed_secret: str, previous_expires_at: datetime, now: datetime
    ) -> Webhook | None:
        doc = await self.collection.find_one({"_id": webhook_id, "org_id": org_id}, {"secrets": 1})
        if doc is None:
            return None
        current = next((s for s in doc.get("secrets", ()) if "expires_at" not in s), None)
        secrets: list[dict[str, Any]] = [{"token": sealed_secret}]
        if current is not None:
            secrets.append({"token": current["token"], "expires_at": ms(previous_expires_at)})
        doc = await self.collection.find_one_and_update(
            {"_id": webhook_id, "org_id": org_id},
            {"$set": {"secrets": secrets, "updated_at": ms(now)} | FREE, "$unset": {"lease_token": ""}},
            projection={"pending": 0},
            return_document=AFTER,
        )
        return _webhook_or_none(doc)

    async def rewind(self, org_id: str, webhook_id: str, cursor: int, now: datetime) -> Webhook | None:
        doc = await self.collection.find_one_and_update(
            {"_id": webhook_id, "org_id": org_id},
            {
                "$set": {"cursor": cursor, "attempts": 0, "next_attempt_at": 0, "updated_at": ms(now)} | FREE,
                "$unset": {"lease_token": "", "failing_since": "", "pending": ""},
            },
            projection={"pending": 0},
            return_document=AFTER,
        )
        return _webhook_or_none(doc)

    async def remove(self, org_id: str, webhook_id: str) -> bool:
        deleted = await self.collection.delete_one({"_id": webhook_id, "org_id": org_id})
        if deleted.deleted_count:
            await self.attempts.delete_many({"webhook_id": webhook_id})
        return deleted.deleted_count > 0

    async def deliveries(
        self, org_id: str, webhook_id: str, limit: int, older_than: str | None
    ) -> list[WebhookDelivery]:
        query: dict[str, Any] = {"webhook_id": webhook_id, "org_id": org_id}
        if older_than is not None:
            query["_id"] = {"$lt": older_than}
        docs = await self.attempts.find(query).sort("_id", -1).limit(limit).to_list()
        return [delivery(d) for d in docs]

    # the follower (api.webhooks.follower)

    async def claimable(self, now: datetime, frontier: int, limit: int) -> list[tuple[str, str, int, tuple[str, ...]]]:
        """(id, organization, cursor, teams) of enabled webhooks behind ``frontier``, free, and
        not waiting for a retry, the furthest behind first: in a busy organization every webhook
        is behind again at each look, and the same few must not be the only ones looked at."""
        projection = {"org_id": 1, "cursor": 1, "team_ids": 1}
        found = self.collection.find(_claimable(now, frontier), projection).sort("cursor", 1).limit(limit)
        return [(d["_id"], d["org_id"], d["cursor"], tuple(d.get("team_ids") or ())) for d in await found.to_list()]

    async def skip_idle(self, idle: list[tuple[str, int]], frontier: int, now: datetime) -> None:
        """Moves idle webhooks (id, cursor as read) past events they would not send (other
        organizations', other teams'), in one update and without a lease: each only if nobody
        moved it (a redelivery may have moved it back) or took it since its cursor was read."""
        await self.collection.update_many(
            {
                "$or": [{"_id": webhook_id, "cursor": cursor} for webhook_id, cursor in idle],
                "lease_until": {"$lte": ms(now)},
            },
            {"$set": {"cursor": frontier}},
        )

    async def claim(self, webhook_id: str, now: datetime, frontier: int, lease_s: float, token: str) -> Claim | None:
        doc = await self.collection.find_one_and_update(
            {"_id": webhook_id, **_claimable(now, frontier)},
            {"$set": {"lease_until": ms(now) + int(lease_s * 1000), "lease_token": token}},
            return_document=AFTER,
        )
        if doc is None:
            return None
        pending = doc.get("pending")
        return Claim(
            webhook=webhook(doc),
            secrets=_secrets(doc),
            pending=(pending["event_id"], pending["body"]) if pending else None,
            token=token,
        )

    async def advance(self, claim: Claim, cursor: int, now: datetime, lease_s: float) -> bool:
        """Events up to ``cursor`` are handled (the last one delivered, if it was retried); the
        lease is extended. False when the lease is no longer this follower's."""
        result = await self.collection.update_one(
            {"_id": claim.webhook.id, "lease_token": claim.token},
            {
                "$set": {
                    "cursor": cursor,
                    "attempts": 0,
                    "next_attempt_at": 0,
                    "lease_until": ms(now) + int(lease_s * 1000),
                },
                "$unset": {"failing_since": "", "pending": ""},
            },
        )
        return result.matched_count > 0

    async def release(self, claim: Claim, cursor: int) -> bool:
        """Caught up to ``cursor`` (or stopping): free for any follower."""
        result = await self.collection.update_one(
            {"_id": claim.webhook.id, "lease_token": claim.token},
            {"$set": {"cursor": cursor, "lease_until": 0}, "$unset": {"lease_token": ""}},
        )
        return result.matched_count > 0

    async def failed(
        self,
        claim: Claim,
        cursor: int,
        pending: tuple[int, str],
        attempts: int,
        failing_since: datetime,
        next_attempt_at: datetime,
    ) -> bool:
        """The event after ``cursor`` was not delivered: tried again at ``next_attempt_at``, with
        the same body."""
        result = await self.collection.update_one(
            {"_id": claim.webhook.id, "lease_token": claim.token},
            {
                "$set": {
                    "cursor": cursor,
                    "attempts": attempts,
                    "failing_since": ms(failing_since),
                    "next_attempt_at": ms(next_attempt_at),
                    "pending": {"event_id": pending[0], "body": pending[1]},
                    "lease_until": 0,
                },
                "$unset": {"lease_token": ""},
            },
        )
        return result.matched_count > 0

    async def disable(self, claim: Claim, cursor: int, reason: str, now: datetime) -> bool:
        """Given up on: kept where it stopped (``cursor``) until an admin enables it again."""
        result = await self.collection.update_one(
            {"_id": claim.webhook.id, "lease_token": claim.token},
            {
                "$set": {"cursor": cursor, "enabled": False, "disabled_reason": reason, "updated_at": ms(now)} | FREE,
                "$unset": {"lease_token": "", "pending": ""},
            },
        )
        return result.matched_count > 0

    async def secrets_of(self, org_id: str, webhook_id: str) -> tuple[SealedSecret, ...]:
        doc = await self.collection.find_one({"_id": webhook_id, "org_id": org_id}, {"secrets": 1})
        return _secrets(doc) if doc else ()

    async def retry_now(self, org_id: str, webhook_id: str, now: datetime) -> None:
        """A ping got through: the event waiting for its retry is tried at once."""
        await self.collection.update_one(
            {"_id": webhook_id, "org_id": org_id, "next_attempt_at": {"$gt": ms(now)}},
            {"$set": {"next_attempt_at": ms(now)}},
        )

    async def holds(self) -> dict[str, int]:
        """For each organization with enabled webhooks, the lowest cursor among them: events
        after it are kept past the retention until every webhook has handled them."""
        held: dict[str, int] = {}
        async for doc in self.collection.find({"enabled": True}, {"org_id": 1, "cursor": 1}):
            held[doc["org_id"]] = min(held.get(doc["org_id"], doc["cursor"]), doc["cursor"])
        return held

    # attempts

    async def add_delivery(self, attempt: WebhookDelivery) -> None:
        await self.attempts.insert_one(
            compact(
                {
                    "_id": attempt.id,
                    "webhook_id": attempt.webhook_id,
                    "org_id": attempt.org_id,
                    "message_id": attempt.message_id,
                    "event_id": attempt.event_id,
                    "at": ms(attempt.at),
                    "succeeded": attempt.succeeded,
                    "latency_ms": attempt.latency_ms,
                    "status_code": attempt.status_code,
                    "response": attempt.response,
                    "error": attempt.error,
                    "next_retry_at": ms(attempt.next_retry_at),
                }
            )
        )

    async def forget_deliveries_before(self, moment: datetime) -> int:
        return (await self.attempts.delete_many({"at": {"$lt": ms(moment)}})).deleted_count


def _claimable(now: datetime, frontier: int) -> dict[str, Any]:
    at = ms(now)
    return {
        "enabled": True,
        "cursor": {"$lt": frontier},
        "lease_until": {"$lte": at},
        "next_attempt_at": {"$lte": at},
    }


def _settings_doc(w: Webhook) -> dict[str, Any]:
    return {
        "url": w.url,
        "query": w.query,
        "team_ids": list(w.team_ids),
        "description": w.description,
        "enabled": w.enabled,
    }


def _secrets(doc: dict) -> tuple[SealedSecret, ...]:
    return tuple(SealedSecret(s["token"], dt(s.get("expires_at"))) for s in doc.get("secrets", ()))


def _webhook_or_none(doc: dict | None) -> Webhook | None:
    return webhook(doc) if doc else None


def webhook(doc: dict) -> Webhook:
    previous = [s for s in doc.get("secrets", ()) if s.get("expires_at") is not None]
    return Webhook(
        id=doc["_id"],
        org_id=doc["org_id"],
        url=doc["url"],
        query=doc.get("query"),
        team_ids=tuple(doc.get("team_ids", ())),
        description=doc.get("description"),
        enabled=bool(doc.get("enabled")),
        created_at=stored_dt(doc["created_at"]),
        updated_at=dt(doc.get("updated_at")),
        cursor=doc.get("cursor", 0),
        attempts=doc.get("attempts", 0),
        failing_since=dt(doc.get("failing_since")),
        next_attempt_at=dt(doc.get("next_attempt_at") or None),
        disabled_reason=doc.get("disabled_reason"),
        previous_secret_expires_at=stored_dt(previous[0]["expires_at"]) if previous else None,
    )


def delivery(doc: dict) -> WebhookDelivery:
    return WebhookDelivery(
        id=doc["_id"],
        webhook_id=doc["webhook_id"],
        org_id=doc["org_id"],
        message_id=doc["message_id"],
        event_id=doc.get("event_id"),
        at=stored_dt(doc["at"]),
        succeeded=bool(doc.get("succeeded")),
        latency_ms=doc.get("latency_ms", 0),
        status_code=doc.get("status_code"),
        response=doc.get("response"),
        error=doc.get("error"),
        next_retry_at=dt(doc.get("next_retry_at")),
    )
