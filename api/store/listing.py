"""The conversations page: keyset pagination with cursors that stay stable while chats move.

Ordered by last activity, a conversation that receives a message while an
agent pages jumps to the top. A naive keyset cursor would then skip it if it
had not been shown yet. Each cursor therefore remembers when paging began
(``t0``): conversations untouched since then are paged by their key, and the
few that moved are placed at their key *as of t0*, recovered from their
messages, so every conversation present at t0 is returned exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.store import codec
from api.store.codec import ms
from api.store.query import conjunction, to_mongo
from domain.criteria import Criteria, all_of
from domain.entities import Conversation
from domain.enums import ConversationOrder, StatusFilter
from domain.errors import invalid
from domain.messages import HISTORY_ONLY


@dataclass(frozen=True, slots=True)
class Page:
    items: list[tuple[Conversation, str]]
    has_next: bool


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, order: ConversationOrder) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        valid = isinstance(data, dict) and data.get("o") == order.value and isinstance(data.get("id"), str)
        valid = valid and all(_is_int64(data.get(k)) for k in ("t0", "k", "g")) and data["g"] in (0, 1)
    except (ValueError, TypeError, UnicodeError, RecursionError):
        valid = False
    if not valid:
        raise invalid("Not a valid cursor for this order.", "after")
    return data


def _is_int64(value: Any) -> bool:
    """An integer MongoDB can store: a forged cursor must be refused, not crash the query."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


class ConversationLister:
    def __init__(self, db) -> None:
        self.db = db

    async def count(self, criteria: Criteria) -> int:
        """How many conversations match, answered from the indexes where possible.

        A flat filter is counted with the ``count`` command: ``count_documents``
        is an aggregation ($match + $group), which nx-27017 evaluates in Python
        over the whole collection (0.9 s at 50,000 conversations against 0.03 s).
        An ``$or`` whose branches can't overlap (see :func:`split_or`) is the sum
        of its branches' counts. Any other filter keeps ``count_documents``:
        nx-27017 scans in Python for it anyway, and its ``count`` command
        miscounts ``$or`` filters that also test a field for null. On MongoDB
        all of these are exact outside sharded clusters, which this
        application doesn't use.
        """
        query = to_mongo(criteria)
        branches = split_or(query, disjoint=True)
        if branches is not None:
            return sum(await asyncio.gather(*(self._count_flat(b) for b in branches)))
        if _is_flat(query):
            return await self._count_flat(query)
        return await self.db.conversations.count_documents(query)

    async def _count_flat(self, query: dict[str, Any]) -> int:
        reply = await self.db.command({"count": "conversations", "query": query})
        return int(reply["n"])

    async def find_sorted(self, query: dict[str, Any], sort: list[tuple[str, int]], limit: int) -> list[dict]:
        """``find(query).sort(sort).limit(limit)``, as one sorted find per ``$or`` branch, merged.

        MongoDB plans an ``$or`` this way itself (one index scan per branch,
        merged in sort order); nx-27017 instead evaluates any ``$or`` in Python
        over the whole collection (1.0 s for a representative's page at 50,000
        conversations), while each flat branch runs in SQL on an index.
        """
        branches = split_or(query)
        if branches is None:
            return await self.db.conversations.find(query).sort(sort).limit(limit).to_list()
        found = await asyncio.gather(
            *(self.db.conversations.find(b).sort(sort).limit(limit).to_list() for b in branches)
        )
        unique = {doc["_id"]: doc for docs in found for doc in docs}
        return sorted(unique.values(), key=_sort_key(sort))[:limit]

    async def counts(self, narrowing: Criteria, per_status: dict[StatusFilter, Criteria]) -> dict[StatusFilter, int]:
        """Every sidebar badge: one indexed count per status, sent together.

        Not one ``$facet``: its sub-pipelines can't use indexes on MongoDB, so
        it reads every conversation of the narrowing, and nx-27017 runs it in
        Python (1.7 s at 50,000 conversations).
        """
        statuses = list(per_status)
        found = await asyncio.gather(*(self.count(all_of(narrowing, per_status[s])) for s in statuses))
        return dict(zip(statuses, found, strict=True))

    async def page(
        self, criteria: Criteria, order: ConversationOrder, first: int, after: str | None, now: datetime
    ) -> Page:
        cursor = decode_cursor(after, order) if after else None
        if order is ConversationOrder.WAITING_LONGEST:
            return await self._waiting_longest(criteria, first, cursor, now)
        return await self._last_activity(criteria, first, cursor, now)

    async def _last_activity(self, criteria: Criteria, first: int, cursor: dict | None, now: datetime) -> Page:
        base = to_mongo(criteria)
        t0 = cursor["t0"] if cursor else ms(now)
        unmoved: dict[str, Any] = {"last_message_at": {"$lte": t0}}
        if cursor:
            unmoved = {
                "$or": [
                    {"last_message_at": {"$lt": cursor["k"], "$lte": t0}},
                    {"last_message_at": cursor["k"], "_id": {"$lt": cursor["id"]}},
                ]
            }
        newest_first = [("last_message_at", -1), ("_id", -1)]
        if cursor is None:
            docs = await self.find_sorted(conjunction(base, unmoved), newest_first, first + 1)
            keyed = [(d["last_message_at"], d["_id"], d) for d in docs]
        else:
            # One command for both parts: the next page of untouched conversations, and those
            # that moved since t0 (a handful while an agent pages).
            cursor_rows = await (
                await self.db.conversations.aggregate(
                    [
                        {"$match": base},
                        {
                            "$facet": {
                                "unmoved": [{"$match": unmoved}, {"$sort": dict(newest_first)}, {"$limit": first + 1}],
                                "moved": [{"$match": {"last_message_at": {"$gt": t0}}}],
                            }
                        },
                    ]
                )
            ).to_list()
            parts = cursor_rows[0] if cursor_rows else {}
            keyed = [(d["last_message_at"], d["_id"], d) for d in parts.get("unmoved", [])]
            keyed += await self._moved_since(parts.get("moved", []), t0, cursor)
            keyed.sort(key=lambda row: (row[0], row[1]), reverse=True)
        keyed = keyed[: first + 1]
        items = [
            (codec.conversation(d), encode_cursor({"o": "LAST_ACTIVITY_DESC", "t0": t0, "k": k, "id": i, "g": 0}))
            for k, i, d in keyed[:first]
        ]
        return Page(items, has_next=len(keyed) > first)

    async def _moved_since(self, moved: list[dict], t0: int, cursor: dict) -> list[tuple[int, str, dict]]:
        """Conversations active after t0, at their position as of t0, if still ahead of the cursor."""
        if not moved:
            return []
        # notes and system lines never move a conversation (its key is its last message's)
        pipeline = [
            {
                "$match": {
                    "conversation_id": {"$in": [d["_id"] for d in moved]},
                    "created_at": {"$lte": t0},
                    "kind": {"$nin": [kind.value for kind in HISTORY_ONLY]},
                }
            },
            {"$sort": {"created_at": -1}},
            {"$group": {"_id": "$conversation_id", "at": {"$first": "$created_at"}}},
        ]
        key_at_t0 = {row["_id"]: row["at"] async for row in await self.db.messages.aggregate(pipeline)}
        rows = []
        for doc in moved:
            key = key_at_t0.get(doc["_id"])
            if key is not None and (key, doc["_id"]) < (cursor["k"], cursor["id"]):
                rows.append((key, doc["_id"], doc))
        return rows

    async def _waiting_longest(self, criteria: Criteria, first: int, cursor: dict | None, now: datetime) -> Page:
        """Longest-waiting first (oldest ``waiting_since``), then the rest by last activity."""
        base = to_mongo(criteria)
        t0 = cursor["t0"] if cursor else ms(now)
        group = cursor["g"] if cursor else 0
        rows: list[tuple[int, int, str, dict]] = []
        if group == 0:
            waiting: dict[str, Any] = {"waiting_since": {"$exists": True, "$ne": None}}
            if cursor:
                waiting = {
                    "$or": [
                        {"waiting_since": {"$gt": cursor["k"]}},
                        {"waiting_since": cursor["k"], "_id": {"$gt": cursor["id"]}},
                    ]
                }
            docs = await self.find_sorted(conjunction(base, waiting), [("waiting_since", 1), ("_id", 1)], first + 1)
            rows += [(0, d["waiting_since"], d["_id"], d) for d in docs]
        if len(rows) <= first:
            rest: dict[str, Any] = {"waiting_since": None}
            if cursor and group == 1:
                rest = {
                    "waiting_since": None,
                    "$or": [
                        {"last_message_at": {"$lt": cursor["k"]}},
                        {"last_message_at": cursor["k"], "_id": {"$lt": cursor["id"]}},
                    ],
                }
            docs = await self.find_sorted(
                conjunction(base, rest), [("last_message_at", -1), ("_id", -1)], first + 1 - len(rows)
            )
            rows += [(1, d["last_message_at"], d["_id"], d) for d in docs]
        items = [
            (codec.conversation(d), encode_cursor({"o": "WAITING_LONGEST", "t0": t0, "g": g, "k": k, "id": i}))
            for g, k, i, d in rows[:first]
        ]
        return Page(items, has_next=len(rows) > first)


MAX_BRANCHES = 4


def split_or(query: dict[str, Any], disjoint: bool = False) -> list[dict[str, Any]] | None:
    """The branches of the query's one top-level ``$or``, each as a flat query; None if it has none,
    more than :data:`MAX_BRANCHES`, or a branch that isn't flat.

    With ``disjoint``, only branches that no document can match twice: each
    pins the same field to its own values (visibility: open teams versus GRAB
    teams), so their counts add up.
    """
    branches = query.get("$or")
    if branches is None or len(branches) > MAX_BRANCHES:
        return None
    rest = {k: v for k, v in query.items() if k != "$or"}
    flat = [conjunction(rest, branch) for branch in branches]
    if not all(_is_flat(b) for b in flat):
        return None
    if disjoint and not _pin_disjoint_values(branches):
        return None
    return flat


def _is_flat(query: dict[str, Any]) -> bool:
    return not any(key.startswith("$") for key in query)


def _pin_disjoint_values(branches: list[dict[str, Any]]) -> bool:
    for field in set.intersection(*(set(b) for b in branches)):
        pinned = [v for v in (_values(b[field]) for b in branches) if v is not None]
        if len(pinned) == len(branches) and sum(len(v) for v in pinned) == len(set().union(*pinned)):
            return True
    return False


def _values(condition: Any) -> set | None:
    if isinstance(condition, dict):
        if set(condition) == {"$in"} and all(isinstance(v, str) for v in condition["$in"]):
            return set(condition["$in"])
        if set(condition) == {"$eq"} and isinstance(condition["$eq"], str):
            return {condition["$eq"]}
        return None
    return {condition} if isinstance(condition, str) else None


def _sort_key(sort: list[tuple[str, int]]):
    """A Python key for a MongoDB sort on fields that are always present (numbers, ids)."""

    def key(doc: dict):
        return tuple(_Reversed(doc[field]) if direction < 0 else doc[field] for field, direction in sort)

    return key


class _Reversed:
    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value

    def __eq__(self, other) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value
