"""Input rules shared by every entry point (GraphQL, inbound webhooks, CLI)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeGuard, overload

from domain.errors import invalid

MAX_TEXT_LENGTH = 4096
MAX_NAME_LENGTH = 200
MAX_ATTRIBUTES_BYTES = 16_384
MAX_ATTRIBUTE_DEPTH = 5
_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PHONE = re.compile(r"^\+?[0-9 ()\-]{5,25}$")
_ID = re.compile(r"^[0-9a-f]{24}$")

# Client-supplied moments (a provider's ``sentAt``) must fall in this window:
# nothing this service stores predates 2000, and a clock a few minutes fast is
# tolerated. Outside it a value is a bug or an attack, and an extreme one (year
# 1 with a +14:00 offset) no longer fits a datetime once converted to UTC.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(minutes=5)


def is_well_formed(value: str) -> bool:
    """Encodable as UTF-8: no lone surrogates (``"\\ud800"`` in JSON), which no
    database, file name or email header can store, so they must be refused
    before the first write rather than fail half-way through."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_string(value: str, field: str, *, max_length: int | None = None) -> str:
    """The checks every stored string passes: well-formed Unicode, no NUL, bounded."""
    if not is_well_formed(value):
        raise invalid(f"`{field}` is not well-formed Unicode (lone surrogate).", field)
    if "\x00" in value:
        raise invalid(f"`{field}` must not contain NUL characters.", field)
    if max_length is not None and len(value) > max_length:
        raise invalid(f"`{field}` is limited to {max_length} characters.", field)
    return value


def check_time(value: datetime, field: str, now: datetime) -> datetime:
    """A client-supplied moment within [2000-01-01, now + a few minutes], in UTC.

    Validated before anything is stored: an out-of-range stored moment would
    make every later read of the document fail.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or utc < EARLIEST_TIME or utc > now + MAX_CLOCK_SKEW:
        raise invalid(
            f"`{field}` must be between {EARLIEST_TIME.date().isoformat()} and a few minutes from now.", field
        )
    return utc


def is_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(_ID.match(value))


def check_id(value: Any, field: str) -> str:
    if not is_id(value):
        raise invalid("Not a valid id.", field)
    return value


@overload
def clean_line(value: str | None, field: str, *, max_length: int = ..., required: Literal[True]) -> str: ...
@overload
def clean_line(value: str | None, field: str, *, max_length: int = ..., required: bool = False) -> str | None: ...
def clean_line(
    value: str | None, field: str, *, max_length: int = MAX_NAME_LENGTH, required: bool = False
) -> str | None:
    """A single-line text: trimmed, bounded, without control characters (no header injection)."""
    if value is None:
        if required:
            raise invalid(f"`{field}` is required.", field)
        return None
    check_string(value, field)
    value = value.strip()
    if required and not value:
        raise invalid(f"`{field}` must not be empty.", field)
    if len(value) > max_length:
        raise invalid(f"`{field}` is limited to {max_length} characters.", field)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise invalid(f"`{field}` must not contain control characters.", field)
    return value or None


@overload
def clean_email(value: str | None, field: str = ..., *, required: Literal[True]) -> str: ...
@overload
def clean_email(value: str | None, field: str = ..., *, required: bool = False) -> str | None: ...
def clean_email(value: str | None, field: str = "email", *, required: bool = False) -> str | None:
    value = clean_line(value, field, max_length=254, required=required)
    if value is None:
        return None
    if not _EMAIL.match(value):
        raise invalid("Not a valid email address.", field)
    return value.lower()


def clean_phone(value: str | None, field: str = "phone") -> str | None:
    value = clean_line(value, field, max_length=25)
    if value is None:
        return None
    if not _PHONE.match(value):
        raise invalid("Not a valid phone number.", field)
    return value


@overload
def clean_text(value: str | None, field: str = ..., *, required: Literal[True] = ...) -> str: ...
@overload
def clean_text(value: str | None, field: str = ..., *, required: bool) -> str | None: ...
def clean_text(value: str | None, field: str = "text", *, required: bool = True) -> str | None:
    if value is not None:
        check_string(value, field)
    if value is None or not value.strip():
        if required:
            raise invalid("Message text must not be empty.", field)
        return None
    if len(value) > MAX_TEXT_LENGTH:
        raise invalid(f"Message text is limited to {MAX_TEXT_LENGTH} characters.", field)
    if "\x00" in value:
        raise invalid("Message text must not contain NUL characters.", field)
    return value


def clean_attributes(value: Any, field: str = "attributes") -> dict[str, Any]:
    """Free-form customer attributes, safe to store as a MongoDB sub-document.

    Keys starting with ``$`` or containing ``.`` would be read as operators or
    paths by MongoDB, so they are refused at any depth.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("`attributes` must be an object.", field)
    _check_attribute_value(value, field, depth=0)
    if len(repr(value)) > MAX_ATTRIBUTES_BYTES:
        raise invalid(f"`attributes` is limited to {MAX_ATTRIBUTES_BYTES} bytes.", field)
    return value


def _check_attribute_value(value: Any, field: str, depth: int) -> None:
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise invalid(f"`attributes` may nest at most {MAX_ATTRIBUTE_DEPTH} levels.", field)
    if isinstance(value, dict):
        for key, item in value.items():
            if (
                not isinstance(key, str)
                or not key
                or key.startswith("$")
                or "." in key
                or "\x00" in key
                or not is_well_formed(key)
                or len(key) > MAX_NAME_LENGTH
            ):
                raise invalid(f"Attribute key {key!r} is not allowed (no `$` prefix, no `.`, well-formed text).", field)
            _check_attribute_value(item, field, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_attribute_value(item, field, depth + 1)
    elif isinstance(value, str):
        if "\x00" in value or not is_well_formed(value):
            raise invalid("Attribute values must be well-formed text without NUL characters.", field)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise invalid("Attribute values must be JSON values.", field)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise invalid("Attribute numbers must fit in 64 bits.", field)
