"""Compiles :mod:`domain.criteria` trees into MongoDB filters.

Every value is placed as a literal operand, never as a key, so user input
can't become an operator. Two nx-27017 differences are handled here: ``$ne``
matches missing fields and ``$not`` is not implemented, so "present" is
``$exists`` plus ``$ne`` and "non-empty" is ``$nor`` of ``$size: 0``.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any

from api.store.codec import ms
from domain.criteria import (
    Absent, All, AnyOf, Contains, Criteria, Empty, Eq, Gt, Gte, In, Lt, NonEmpty, Nothing, NotIn, Present,
    TextContains,
)


def to_mongo(criteria: Criteria) -> dict[str, Any]:
    match criteria:
        case All(parts):
            return {"$and": [to_mongo(p) for p in parts]} if parts else {}
        case AnyOf(parts):
            return {"$or": [to_mongo(p) for p in parts]} if parts else _NOTHING
        case Nothing():
            return _NOTHING
        case Eq(field, value):
            return {field: {"$eq": _value(value)}}
        case In(field, values):
            return {field: {"$in": [_value(v) for v in values]}}
        case NotIn(field, values):
            return {field: {"$nin": [_value(v) for v in values]}}
        case Lt(field, value):
            return {field: {"$lt": _value(value)}}
        case Gt(field, value):
            return {field: {"$gt": _value(value)}}
        case Gte(field, value):
            return {field: {"$gte": _value(value)}}
        case Present(field):
            return {field: {"$exists": True, "$ne": None}}
        case Absent(field):
            return {field: None}
        case Contains(field, value):
            return {field: _scalar(value)}
        case Empty(field):
            return {field: {"$size": 0}}
        case NonEmpty(field):
            return {"$nor": [{field: {"$size": 0}}]}
        case TextContains(fields, text):
            pattern = re.escape(text)
            return {"$or": [{f: {"$regex": pattern, "$options": "i"}} for f in fields]}
    raise TypeError(f"unknown criteria {criteria!r}")


_NOTHING: dict[str, Any] = {"_id": {"$in": []}}


def _scalar(value: Any) -> Any:
    value = _value(value)
    if isinstance(value, (dict, list)):
        raise TypeError("criteria values must be scalars")
    return value


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return ms(value)
    if isinstance(value, Enum):
        return value.value
    return value
