"""Connecting to MongoDB and creating the indexes every query relies on."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, TEXT, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandListener

INDEXES: dict[str, list[tuple[list[tuple[str, int | str]], dict]]] = {
    "members": [
        ([("email", ASCENDING)], {"unique": True}),
        ([("org_id", ASCENDING)], {}),
        # a pending password reset, found by its link token's hash
        ([("reset_hash", ASCENDING)], {"unique": True, "partialFilterExpression": {"reset_hash": {"$type": "string"}}}),
    ],
    "revoked_tokens": [([("expires_at", ASCENDING)], {})],  # instances load the live ones; retention
    "teams": [([("org_id", ASCENDING), ("name", ASCENDING)], {"unique": True})],
    "channels": [
        ([("org_id", ASCENDING)], {}),
        ([("widget_key", ASCENDING)], {"unique": True, "partialFilterExpression": {"widget_key": {"$type": "string"}}}),
        ([("widget_origins", ASCENDING)], {}),  # the widget CORS preflight: does any widget allow this origin?
    ],
    "customers": [([("channel_id", ASCENDING), ("external_id", ASCENDING)], {"unique": True})],
    "conversations": [
        ([("org_id", ASCENDING), ("last_message_at", DESCENDING)], {}),
        ([("org_id", ASCENDING), ("team_id", ASCENDING), ("last_message_at", DESCENDING)], {}),
        ([("org_id", ASCENDING), ("waiting_since", ASCENDING)], {}),
        ([("org_id", ASCENDING), ("channel_type", ASCENDING), ("last_message_at", DESCENDING)], {}),
        ([("org_id", ASCENDING), ("customer_online_until", DESCENDING)], {}),
        ([("participants", ASCENDING), ("last_message_at", DESCENDING)], {}),
        ([("org_id", ASCENDING), ("last_customer_message_at", ASCENDING)], {}),
        ([("org_id", ASCENDING), ("closed_at", ASCENDING)], {}),
        ([("customer_name", ASCENDING)], {}),
        ([("next_due_at", ASCENDING)], {}),  # the sweeper's range scan
    ],
    "messages": [
        ([("conversation_id", ASCENDING), ("seq", DESCENDING)], {"unique": True}),
        ([("conversation_id", ASCENDING), ("created_at", DESCENDING)], {}),
        (
            [("provider_key", ASCENDING)],
            {"unique": True, "partialFilterExpression": {"provider_key": {"$type": "string"}}},
        ),
        ([("outbox_due", ASCENDING)], {"partialFilterExpression": {"outbox_due": {"$exists": True}}}),
        # A conversation's replies still to send (the delivery worker's ordering check) and
        # those still awaiting a provider's receipt (Messenger watermarks). Single fields:
        # nx-27017 uses no compound index for these (see api/store/deliveries.py).
        ([("outbox_order", ASCENDING)], {"partialFilterExpression": {"outbox_order": {"$type": "string"}}}),
        ([("receipt_pending", ASCENDING)], {"partialFilterExpression": {"receipt_pending": {"$type": "string"}}}),
        # Message search (api/store/search.py): words, no stemming or stop words, so MongoDB
        # matches what nx-27017's FTS5 table matches. Not `{org_id: 1, text: "text"}`, which would
        # scope the index walk to one organization on MongoDB: nx-27017 builds its FTS5 table for
        # a compound key but then fails phrase queries on it.
        ([("text", TEXT)], {"name": "message_text", "default_language": "none"}),
    ],
    "templates": [([("org_id", ASCENDING), ("name", ASCENDING)], {})],
    "notifications": [
        ([("member_id", ASCENDING), ("created_at", DESCENDING)], {}),
        ([("conversation_id", ASCENDING), ("kind", ASCENDING)], {}),
    ],
    "events": [
        ([("seq", ASCENDING)], {"unique": True}),
        ([("at", ASCENDING)], {}),
        ([("conversation_id", ASCENDING), ("seq", ASCENDING)], {}),  # a widget visitor resuming its stream
    ],
    "login_attempts": [([("at", ASCENDING)], {})],  # retention; counters are read by _id
    "rate_limits": [([("at", ASCENDING)], {})],  # retention; counters are read by _id
    "api_keys": [([("key_hash", ASCENDING)], {"unique": True}), ([("org_id", ASCENDING)], {})],
    "webhooks": [([("org_id", ASCENDING)], {}), ([("enabled", ASCENDING)], {})],
    "webhook_deliveries": [([("webhook_id", ASCENDING)], {}), ([("at", ASCENDING)], {})],  # the page; retention
}


def connect(
    uri: str, listeners: list[CommandListener] | None = None, server_selection_timeout_ms: int = 2000
) -> AsyncMongoClient:
    """A client that fails fast when the database is down, so callers get a typed error, not a hang.

    A refused connection fails at once; the 5 s connect timeout only bounds a
    database that is up but slow, whose heartbeat must not be mistaken for an
    outage under load.
    """
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        connectTimeoutMS=5000,
        socketTimeoutMS=20000,
        event_listeners=listeners or [],
    )


async def create_indexes(db: AsyncDatabase) -> None:
    """Idempotent: creating an existing index is a no-op on MongoDB and nx-27017."""
    for collection, indexes in INDEXES.items():
        for keys, options in indexes:
            # No compound key includes `_id`: nx-27017 can't index one ("JSON path
            # error near '_id'") and a failed attempt breaks later inserts.
            await db[collection].create_index(keys, **options)
