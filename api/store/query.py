"""Compiles :mod:`domain.criteria` trees into MongoDB filters.

Every value is placed as a literal operand, never as a key, so user input
can't become an operator. Two nx-27017 differences are handled here: ``$ne``
matches missing fields and ``$not`` is not implemented, so "present" is
``$exists`` plus ``$ne`` and "non-empty" is ``$nor`` of ``$size: 0``.

Filters come out as flat as MongoDB allows: conjunctions become one document
(implicit AND), one-branch ``$or``/``$and`` disappear, and an ``$or`` of
equalities on one field becomes ``$in``. The meaning is the same on MongoDB;
on nx-27017 it decides the speed: it runs a flat filter in SQL on its indexes
but evaluates any ``$and``/``$or`` in Python over every document of the
collection (a conversations page took 0.8-1.2 s instead of ~45 ms at 50,000
conversations).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any

from api.store.codec import ms
from domain.criteria import (
    Absent,
    All,
    AnyOf,
    Contains,
    Criteria,
    Empty,
    Eq,
    Gt,
    Gte,
    In,
    Lt,
    Lte,
    NonEmpty,
    Nothing,
    NotIn,
    Present,
    TextContains,
)


def to_mongo(criteria: Criteria) -> dict[str, Any]:
    match criteria:
        case All(parts):
            return conjunction(*(to_mongo(p) for p in parts))
        case AnyOf(parts):
            if not parts:
                return _NOTHING
            if len(parts) == 1:
                return to_mongo(parts[0])
            return _same_field_in(parts) or {"$or": [to_mongo(p) for p in parts]}
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
        case Lte(field, value):
            return {field: {"$lte": _value(value)}}
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


def conjunction(*filters: dict[str, Any]) -> dict[str, Any]:
    """All the filters at once, as one flat document where keys don't collide."""
    merged: dict[str, Any] = {}
    rest: list[dict[str, Any]] = []
    for key, condition in _clauses(filters):
        if key not in merged:
            merged[key] = condition
        elif merged[key] == condition or {key: condition} in rest:
            continue
        elif _operators(merged[key]) and _operators(condition) and not merged[key].keys() & condition.keys():
            merged[key] = {**merged[key], **condition}
        else:
            rest.append({key: condition})
    if rest:
        merged["$and"] = rest
    return merged


def _clauses(filters):
    for flt in filters:
        for key, condition in flt.items():
            if key == "$and":
                yield from _clauses(condition)
            else:
                yield key, condition


def _operators(condition: Any) -> bool:
    return isinstance(condition, dict) and bool(condition) and all(k.startswith("$") for k in condition)


def _same_field_in(parts) -> dict[str, Any] | None:
    """``a == x or a == y or a is absent`` as ``{a: {$in: [x, y, null]}}``, where that is what the parts say."""
    fields = set()
    values: list[Any] = []
    for part in parts:
        match part:
            case Eq(field, value):
                fields.add(field)
                values.append(_value(value))
            case In(field, vals):
                fields.add(field)
                values.extend(_value(v) for v in vals)
            case Absent(field):
                fields.add(field)
                values.append(None)
            case _:
                return None
    if len(fields) != 1:
        return None
    return {fields.pop(): {"$in": values}}


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
    if isinstance(value, tuple):  # a whole array, as stored (``as_read`` of the room)
        return [_value(v) for v in value]
    return value
