"""Message search on the messages collection's text index (``message_text``).

One query shape on MongoDB and nx-27017: ``$text`` with the words, beside flat
conditions only. MongoDB ORs the words, nx-27017's FTS5 table ANDs them; either
way the index only narrows the candidates, and :func:`domain.search.holds_all`
decides (phrases would AND on both, but MongoDB matches a phrase against the raw
text, accents included, where the index ignores them). nx-27017 runs ``$text`` plus a flat filter
in SQL (its FTS5 match AND-ed with the rest) but any ``$or`` beside ``$text``
in Python over the whole collection (2.1 s at 20,000 messages against 25 ms),
so the newest-first cursor is not the usual ``$or`` of "older, or as old with
a smaller id": it is ``created_at <= k`` plus ``skip`` of the messages at ``k``
already examined (:class:`domain.search.Position`). Same meaning on MongoDB.

The words are letters and digits only (:func:`domain.search.words`): a quote,
a minus sign or any other text-search syntax never reaches the index.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from api.store import codec
from api.store.codec import ms
from domain.entities import Conversation, Message
from domain.errors import invalid
from domain.search import MAX_CONVERSATION_MATCHES, UNSEARCHABLE_KINDS, Position, holds_all

NEWEST_FIRST = [("created_at", -1), ("_id", -1)]


def text_filter(org_id: str, terms: tuple[str, ...]) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "$text": {"$search": " ".join(terms)},
        "kind": {"$nin": [kind.value for kind in UNSEARCHABLE_KINDS]},
    }


class MessageSearcher:
    def __init__(self, db) -> None:
        self.db = db

    async def matching_messages(
        self, org_id: str, terms: tuple[str, ...], after: Position | None, limit: int
    ) -> list[Message]:
        query = text_filter(org_id, terms)
        skip = 0
        if after is not None:
            query["created_at"] = {"$lte": ms(after.created_at)}
            skip = after.ties
        # batch_size: one command, not a find of 101 and a getMore for the rest
        cursor = self.db.messages.find(query).sort(NEWEST_FIRST).skip(skip).limit(limit).batch_size(limit)
        return [codec.message(doc) async for doc in cursor]

    async def conversations_by_ids(self, org_id: str, ids: list[str]) -> list[Conversation]:
        cursor = self.db.conversations.find({"_id": {"$in": ids}, "org_id": org_id}).batch_size(len(ids) or 1)
        return [codec.conversation(d) async for d in cursor]

    async def conversations_mentioning(self, org_id: str, terms: tuple[str, ...]) -> tuple[str, ...]:
        """Conversations among the newest :data:`MAX_CONVERSATION_MATCHES` messages holding a
        term, of those holding every term (the list's ``search``); one command, its visibility
        left to the list's own filter."""
        cursor = (
            self.db.messages.find(text_filter(org_id, terms), {"conversation_id": 1, "text": 1})
            .sort(NEWEST_FIRST)
            .limit(MAX_CONVERSATION_MATCHES)
            .batch_size(MAX_CONVERSATION_MATCHES)
        )
        found = [doc["conversation_id"] async for doc in cursor if holds_all(doc.get("text"), terms)]
        return tuple(dict.fromkeys(found))


def encode_cursor(position: Position) -> str:
    data = {"s": "m", "k": ms(position.created_at), "id": position.message_id, "n": position.ties}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str) -> Position:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        valid = isinstance(data, dict) and data.get("s") == "m" and isinstance(data.get("id"), str)
        valid = valid and _is_int64(data.get("k")) and _is_int64(data.get("n")) and 0 < data["n"] <= 2**31
        position = Position(codec.stored_dt(data["k"]), data["id"], data["n"]) if valid else None
    except (ValueError, TypeError, UnicodeError, RecursionError, OverflowError):
        position = None
    if position is None:
        raise invalid("Not a valid cursor for `searchMessages`.", "after")
    return position


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
