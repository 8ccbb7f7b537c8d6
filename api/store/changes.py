"""Compiles :mod:`domain.changes` into conditional MongoDB updates of a conversation.

The condition becomes the filter beside ``_id`` (through :func:`api.store.query.to_mongo`),
the rest one update document: ``set`` → ``$set``, ``clear`` → ``$unset``,
``add`` → ``$addToSet`` (nx-27017 stores a ``$push``ed sub-document as a JSON
string; these are scalars either way), ``remove`` → ``$pull``, ``inc`` → ``$inc``,
``lower`` → ``$min``, ``mark`` → ``$max`` of each part of ``reads.<member>``.
Values are stored as the codec stores them: moments as int ms, enums as their
value, tuples as arrays.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from api.store import codec
from api.store.query import conjunction, to_mongo
from domain.changes import Change
from domain.entities import Conversation


def filter_of(conversation_id: str, change: Change) -> dict[str, Any]:
    """The conversation, provided the change's condition holds.

    No ``$or`` may sit beside ``_id``: nx-27017 drops its parentheses when it
    translates an update's filter to SQL, and the update could land on another
    conversation.
    """
    query = conjunction({"_id": conversation_id}, to_mongo(change.when))
    if "$or" in query or "$nor" in query:
        raise ValueError("a conversation update's condition must be a plain conjunction")
    return query


def update_of(change: Change) -> dict[str, Any]:
    update: dict[str, Any] = {}
    for operator, values in (
        ("$set", change.set),
        ("$addToSet", change.add),
        ("$pull", change.remove),
        ("$inc", change.inc),
        ("$min", change.lower),
    ):
        if values:
            update[operator] = {name: _stored(value) for name, value in values.items()}
    if change.clear:
        update["$unset"] = {name: "" for name in change.clear}
    if change.mark is not None:
        # each part raised on its own path: a whole sub-document can't be $max-ed on nx-27017,
        # and concurrent marks of other members (other paths) are left alone
        path = f"reads.{change.mark.member_id}"
        update["$max"] = {f"{path}.{part}": value for part, value in codec.read_mark_doc(change.mark).items()}
    return update


async def apply(
    db: AsyncDatabase, conversation_id: str, change: Change, *, returning: bool = ReturnDocument.AFTER
) -> Conversation | None:
    """The change made in one command; the conversation after it (or before, with
    ``returning=BEFORE``), or None when the condition held for no conversation."""
    doc = await db.conversations.find_one_and_update(
        filter_of(conversation_id, change), update_of(change), return_document=returning
    )
    return codec.conversation(doc) if doc else None


async def apply_quietly(db: AsyncDatabase, conversation_id: str, change: Change) -> bool:
    """The change made without reading the document back; whether the condition held."""
    result = await db.conversations.update_one(filter_of(conversation_id, change), update_of(change))
    return result.matched_count > 0


def _stored(value: Any) -> Any:
    if isinstance(value, datetime):
        return codec.ms(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_stored(v) for v in value]
    return value
