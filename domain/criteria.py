"""A tiny predicate language for rules that must hold both in memory and in a query.

Status, visibility and list filters are written once as :class:`Criteria`.
:func:`matches` evaluates them against an entity (the status of one
conversation, the right of one subscriber to see an event); the store compiles
the very same tree into a MongoDB filter (the list, the counts). One rule, two
interpreters, so the list can never disagree with the chat pane.

Semantics follow MongoDB's: a missing or ``None`` field never satisfies a
comparison, ``Present(f)`` means "set and not None".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any


@dataclass(frozen=True, slots=True)
class Eq:
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class In:
    field: str
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class NotIn:
    """The field holds none of ``values`` (a missing field qualifies)."""

    field: str
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Lt:
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class Lte:
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class Gt:
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class Gte:
    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class Present:
    """The field holds a value (not missing, not None)."""

    field: str


@dataclass(frozen=True, slots=True)
class Absent:
    """The field is missing or None."""

    field: str


@dataclass(frozen=True, slots=True)
class Contains:
    """The array field contains ``value``."""

    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class Lacks:
    """The array field does not contain ``value`` (a missing field qualifies)."""

    field: str
    value: Any


@dataclass(frozen=True, slots=True)
class Empty:
    """The array field is empty."""

    field: str


@dataclass(frozen=True, slots=True)
class NonEmpty:
    """The array field has at least one element."""

    field: str


@dataclass(frozen=True, slots=True)
class TextContains:
    """Case-insensitive substring match, the text taken literally."""

    fields: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Criteria, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Criteria, ...]


@dataclass(frozen=True, slots=True)
class Nothing:
    """Matches no record (a filter naming only teams the caller can't see)."""


Criteria = (
    Eq
    | In
    | NotIn
    | Lt
    | Lte
    | Gt
    | Gte
    | Present
    | Absent
    | Contains
    | Lacks
    | Empty
    | NonEmpty
    | TextContains
    | All
    | AnyOf
    | Nothing
)


def all_of(*parts: Criteria) -> Criteria:
    return All(tuple(parts))


def any_of(*parts: Criteria) -> Criteria:
    return AnyOf(tuple(parts))


def matches(criteria: Criteria, record: Any) -> bool:
    """Evaluate ``criteria`` against an object whose attributes are the fields."""
    match criteria:
        case All(parts):
            return all(matches(part, record) for part in parts)
        case AnyOf(parts):
            return any(matches(part, record) for part in parts)
        case Nothing():
            return False
        case Eq(field, value):
            equal: bool = _get(record, field) == value
            return equal
        case In(field, values):
            return _get(record, field) in values
        case NotIn(field, values):
            return _get(record, field) not in values
        case Lt(field, value):
            current = _get(record, field)
            return current is not None and current < value
        case Lte(field, value):
            current = _get(record, field)
            return current is not None and current <= value
        case Gt(field, value):
            current = _get(record, field)
            return current is not None and current > value
        case Gte(field, value):
            current = _get(record, field)
            return current is not None and current >= value
        case Present(field):
            return _get(record, field) is not None
        case Absent(field):
            return _get(record, field) is None
        case Contains(field, value):
            return value in (_get(record, field) or ())
        case Lacks(field, value):
            return value not in (_get(record, field) or ())
        case Empty(field):
            return not _get(record, field)
        case NonEmpty(field):
            return bool(_get(record, field))
        case TextContains(fields, text):
            needle = text.casefold()
            return any(needle in (_get(record, f) or "").casefold() for f in fields)
    raise TypeError(f"unknown criteria {criteria!r}")


Predicate = Callable[[Any], bool]


def predicate(criteria: Criteria) -> Predicate:
    """:func:`matches` for one ``criteria``, worked out once: a function of the record.

    The tree is walked when the predicate is made, not at each record, so a rule
    judged for every row of a page (the status of each conversation) is not
    interpreted fifty times. Same semantics as :func:`matches`, which stays the
    reference (tests compare the two).
    """
    match criteria:
        case All(parts):
            checks = tuple(predicate(part) for part in parts)
            return lambda record: all(check(record) for check in checks)
        case AnyOf(parts):
            checks = tuple(predicate(part) for part in parts)
            return lambda record: any(check(record) for check in checks)
        case Nothing():
            return lambda record: False
        case Eq(field, value):
            get = _getter(field)
            return lambda record: bool(get(record) == value)
        case In(field, values):
            get = _getter(field)
            return lambda record: get(record) in values
        case NotIn(field, values):
            get = _getter(field)
            return lambda record: get(record) not in values
        case Lt(field, value):
            get = _getter(field)
            return lambda record: (current := get(record)) is not None and current < value
        case Lte(field, value):
            get = _getter(field)
            return lambda record: (current := get(record)) is not None and current <= value
        case Gt(field, value):
            get = _getter(field)
            return lambda record: (current := get(record)) is not None and current > value
        case Gte(field, value):
            get = _getter(field)
            return lambda record: (current := get(record)) is not None and current >= value
        case Present(field):
            get = _getter(field)
            return lambda record: get(record) is not None
        case Absent(field):
            get = _getter(field)
            return lambda record: get(record) is None
        case Contains(field, value):
            get = _getter(field)
            return lambda record: value in (get(record) or ())
        case Lacks(field, value):
            get = _getter(field)
            return lambda record: value not in (get(record) or ())
        case Empty(field):
            get = _getter(field)
            return lambda record: not get(record)
        case NonEmpty(field):
            get = _getter(field)
            return lambda record: bool(get(record))
        case TextContains(fields, text):
            needle = text.casefold()
            getters = tuple(_getter(f) for f in fields)
            return lambda record: any(needle in (get(record) or "").casefold() for get in getters)
    raise TypeError(f"unknown criteria {criteria!r}")


def _getter(field: str) -> Callable[[Any], Any]:
    """``_get(record, field)`` as a function of the record (a plain field without the path walk)."""
    if "." in field:
        return lambda record: _get(record, field)

    def get(record: Any) -> Any:
        value = record.get(field) if isinstance(record, dict) else getattr(record, field, None)
        return value.value if isinstance(value, Enum) else value

    return get


def _get(record: Any, field: str) -> Any:
    value = record
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None:
            return None
    return value.value if isinstance(value, Enum) else value
