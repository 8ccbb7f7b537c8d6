"""Logging in, with a throttle against password guessing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from domain.entities import Member
from domain.enums import ErrorCode
from domain.errors import Refused
from domain.ports import AccountStore, PasswordHasher
from domain.validation import is_well_formed


class LoginAttempts(Protocol):
    async def failures_since(self, email: str, since: datetime) -> int: ...
    async def record_failure(self, email: str, at: datetime) -> None: ...


async def login(store: AccountStore, hasher: PasswordHasher, attempts: LoginAttempts, email: str,
                password: str, now: datetime, max_failures: int, window_s: float) -> Member:
    """The same answer for an unknown email and a wrong password, and the same
    throttle for both, so neither reveals whether an account exists."""
    email = (email or "").strip().lower()[:254]
    if not (is_well_formed(email) and is_well_formed(password or "")):
        # refused before the throttle: text no database can store is no account's
        # email, and recording it as a failure would fail half-way
        raise Refused(ErrorCode.INVALID_INPUT, "Email and password must be well-formed text.")
    if await attempts.failures_since(email, now - timedelta(seconds=window_s)) >= max_failures:
        raise Refused(ErrorCode.TOO_MANY_ATTEMPTS, "Too many failed logins. Try again later.")
    found = await store.member_by_email(email) if email else None
    if not await hasher.verify(found[1] if found else None, password or ""):
        await attempts.record_failure(email, now)
        raise Refused(ErrorCode.INVALID_CREDENTIALS, "Wrong email or password.")
    return found[0]
