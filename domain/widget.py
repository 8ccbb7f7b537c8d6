"""The web widget's rules: keys and visitor ids, allowed origins, identity verification,
what a page may report about its visitor, and the visitor side's rate limits.

A widget key (``wk_…``) is public: it sits in every page's script tag and only names
the channel. What protects a visitor's conversation is the session token the server
issues, bound to one channel, one customer and the origin the session started from.
Anonymous visitors are known by a ``visitorId`` the server draws (128 random bits), so
a visitor can't pick, or guess, another visitor's. A site that knows its user proves it
with ``identifierHash`` = hex HMAC-SHA256(identitySecret, identifier), which binds the
session to that user whatever the device.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from domain.entities import Location, WidgetSettings
from domain.enums import ErrorCode
from domain.errors import Refused, invalid
from domain.validation import check_string, clean_line

WIDGET_KEY_PREFIX = "wk_"
VISITOR_ID_PREFIX = "v_"
IDENTIFIED_PREFIX = "id:"  # external ids of verified customers; a visitor id never starts so
MAX_ALLOWED_ORIGINS = 20
MAX_IDENTIFIER_LENGTH = 200
MAX_PAGE_URL_LENGTH = 2048

_WIDGET_KEY = re.compile(r"^wk_[A-Za-z0-9_-]{32}$")
_VISITOR_ID = re.compile(r"^v_[A-Za-z0-9_-]{22}$")
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# IANA names such as Europe/Berlin, America/Argentina/Buenos_Aires, Etc/GMT+5, UTC
_TIME_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]{0,30}(/[A-Za-z0-9_+\-]{1,30}){0,2}$")
# BCP 47 tags as browsers report them (navigator.language): de-DE, zh-Hant-TW, en
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,4}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def new_widget_key() -> str:
    """A public key for a page's script tag: 192 random bits (only its uniqueness matters)."""
    return WIDGET_KEY_PREFIX + secrets.token_urlsafe(24)


def new_visitor_id() -> str:
    """An anonymous visitor's id: 128 random bits, so nobody can guess another visitor's."""
    return VISITOR_ID_PREFIX + secrets.token_urlsafe(16)


def new_identity_secret() -> str:
    """The HMAC key a site signs its users' ids with: 256 random bits, as 64 hex characters."""
    return secrets.token_hex(32)


def is_widget_key(value: object) -> bool:
    return isinstance(value, str) and bool(_WIDGET_KEY.match(value))


def is_visitor_id(value: object) -> bool:
    return isinstance(value, str) and bool(_VISITOR_ID.match(value))


# Origins


def normalized_origin(value: str) -> str | None:
    """``value`` as browsers send it in ``Origin``: lowercase scheme and host, no default port;
    None when it is not an http(s) origin (``null``, a path, credentials, a query…)."""
    if not isinstance(value, str) or len(value) > 300:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def clean_origins(values: list[str] | tuple[str, ...] | None, field: str = "allowedOrigins") -> tuple[str, ...]:
    """Exact origins (scheme, host and optional port, no path), at most ``MAX_ALLOWED_ORIGINS``,
    normalized and without repeats."""
    if values is None:
        return ()
    if len(values) > MAX_ALLOWED_ORIGINS:
        raise invalid(f"At most {MAX_ALLOWED_ORIGINS} allowed origins.", field)
    found: list[str] = []
    for value in values:
        origin = normalized_origin(value) if isinstance(value, str) else None
        if origin is None:
            raise invalid(
                f"{str(value)[:80]!r} is not an origin: write the scheme, host and optional port only, "
                "like https://shop.example.com or http://localhost:3000.",
                field,
            )
        if origin not in found:
            found.append(origin)
    return tuple(found)


# Identity verification


def identity_hash(secret: str, identifier: str) -> str:
    """What a site's server computes for its user: hex HMAC-SHA256(identitySecret, identifier)."""
    return hmac.new(secret.encode(), identifier.encode(), hashlib.sha256).hexdigest()


def identity_matches(secret: str, identifier: str, given: str) -> bool:
    """Compared in constant time; the hex may be written in either case."""
    if not _HEX_SHA256.match(given):
        return False
    return hmac.compare_digest(identity_hash(secret, identifier), given.lower())


def identified_external_id(identifier: str) -> str:
    """A verified customer's external id on the channel; visitor ids never take this form."""
    return IDENTIFIED_PREFIX + identifier


def clean_identifier(value: str | None) -> str | None:
    return clean_line(value, "identifier", max_length=MAX_IDENTIFIER_LENGTH)


def clean_identifier_hash(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX_SHA256.match(value):
        raise invalid("`identifierHash` is the hex HMAC-SHA256 of the identifier (64 hex digits).", "identifierHash")
    return value


# What the page reports


def clean_page_url(value: str | None, field: str = "pageUrl") -> str | None:
    if value is None:
        return None
    check_string(value, field, max_length=MAX_PAGE_URL_LENGTH)
    value = value.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise invalid(f"`{field}` must not contain control characters.", field)
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise invalid(f"`{field}` must be an http(s) URL.", field)
    return value or None


def clean_time_zone(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TIME_ZONE.match(value.strip()):
        raise invalid("`timeZone` is an IANA time zone name, like Europe/Berlin.", "timeZone")
    return value.strip()


def clean_language(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _LANGUAGE.match(value.strip()):
        raise invalid("`language` is a BCP 47 language tag, like de-DE.", "language")
    return value.strip()


# Rate limits


@dataclass(frozen=True, slots=True)
class WidgetLimits:
    """The visitor side's budgets, each a counter over a fixed window starting at its first
    use: new sessions per client address per hour; messages (and profile updates) per
    visitor and per client address per minute."""

    sessions_per_address_per_hour: int = 120
    messages_per_visitor_per_minute: int = 20
    messages_per_address_per_minute: int = 60


SESSION_WINDOW_S = 3600.0
MESSAGE_WINDOW_S = 60.0


def limit_key(kind: str, value: str) -> str:
    """A counter's key; hashed, so the counters don't list who did what."""
    return "widget:" + kind + ":" + hashlib.sha256(f"{kind}\n{value}".encode()).hexdigest()[:40]


class RateLimited(Refused):
    """A budget is spent: try again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, message)
        self.retry_after_s = retry_after_s


def retry_after_s(window_started: datetime, window_s: float, now: datetime) -> int:
    """Whole seconds until the window that refused ends (at least 1)."""
    left = (window_started - now).total_seconds() + window_s
    return max(1, math.ceil(left))


# What is stored


@dataclass(frozen=True, slots=True)
class ChannelChanges:
    """What ``updateChannel`` writes: fields left None are kept. ``identity_secret`` is the new
    secret already sealed; ``clear_identity_secret`` turns identity verification off.
    ``outbound_url`` / ``outbound_secret`` (sealed) set a custom adapter's endpoint and signing
    secret; ``clear_outbound`` removes both (:mod:`domain.adapters`)."""

    name: str | None = None
    widget: WidgetSettings | None = None
    identity_secret: str | None = None
    clear_identity_secret: bool = False
    team_id: str | None = None  # the team its new conversations go to
    outbound_url: str | None = None
    outbound_secret: str | None = None
    clear_outbound: bool = False


@dataclass(frozen=True, slots=True)
class VisitorDetails:
    """What the page reports about its visitor (fields left None are kept)."""

    page_url: str | None = None
    time_zone: str | None = None
    language: str | None = None
    location: Location | None = None


# Sessions


@dataclass(frozen=True, slots=True)
class VisitorSession:
    """What a widget session token carries: the one channel and the one customer it may act
    as, the visitor's id, and the origin it was started from (later requests from a browser
    must come from there)."""

    org_id: str
    channel_id: str
    customer_id: str
    visitor_id: str
    origin: str
    expires_at: float = 0.0  # unix time

    @property
    def conversation_id(self) -> str:
        """A customer's conversation on a channel has the customer's id."""
        return self.customer_id
