"""Logging in, with a throttle against password guessing (rules in ``domain.throttle``)."""

from __future__ import annotations

from datetime import datetime

from domain.entities import Member
from domain.enums import ErrorCode
from domain.errors import Refused
from domain.ports import AccountStore, LoginAttempts, PasswordHasher
from domain.throttle import ThrottleKeys, ThrottlePolicy, email_open_at, keys_for
from domain.validation import is_well_formed


def _too_many() -> Refused:
    return Refused(ErrorCode.TOO_MANY_ATTEMPTS, "Too many failed logins. Try again later.")


async def _throttle(
    attempts: LoginAttempts, email: str, client_address: str, now: datetime, policy: ThrottlePolicy
) -> ThrottleKeys:
    """Counts one password check for ``email`` from ``client_address``; refuses it past the limits."""
    keys = keys_for(email, client_address or "-")
    failures, last = await attempts.recent(keys.email, now, policy.window_s)
    opens = email_open_at(failures, last, policy)
    if opens is not None and now < opens:
        raise _too_many()
    if await attempts.take(keys.pair, now, policy.window_s) > policy.max_per_pair:
        raise _too_many()
    if await attempts.take(keys.address, now, policy.window_s) > policy.max_per_address:
        raise _too_many()
    return keys


async def check_own_password(
    hasher: PasswordHasher,
    attempts: LoginAttempts,
    email: str,
    stored_hash: str | None,
    password: str,
    client_address: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> bool:
    """A signed-in member's password checked again (``changePassword``) under the login throttle:
    a stolen token can't try passwords faster than a login could."""
    keys = await _throttle(attempts, email, client_address, now, policy)
    if not await hasher.verify(stored_hash, password):
        await attempts.take(keys.email, now, policy.window_s)
        return False
    await attempts.give_back([keys.pair, keys.address], now, policy.window_s)
    return True


async def login(
    store: AccountStore,
    hasher: PasswordHasher,
    attempts: LoginAttempts,
    email: str,
    password: str,
    client_address: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> Member:
    """The same answer for an unknown email and a wrong password, and the same
    throttle for both, so neither reveals whether an account exists.

    Refused attempts never reach the password check, and don't count against
    the email: only guesses that were actually checked slow the account down.
    """
    email = (email or "").strip().lower()[:254]
    if not (is_well_formed(email) and is_well_formed(password or "")):
        # refused before the throttle: text no database can store is no account's
        # email, and recording it as a failure would fail half-way
        raise Refused(ErrorCode.INVALID_INPUT, "Email and password must be well-formed text.")
    keys = await _throttle(attempts, email, client_address, now, policy)
    found = await store.member_by_email(email) if email else None
    # verify() runs for an unknown email too (against no hash), so both cases take as long
    if not await hasher.verify(found[1] if found else None, password or "") or found is None:
        await attempts.take(keys.email, now, policy.window_s)
        raise Refused(ErrorCode.INVALID_CREDENTIALS, "Wrong email or password.")
    await attempts.give_back([keys.pair, keys.address], now, policy.window_s)
    if not found[0].active:  # said only to whoever knows the password
        raise Refused(ErrorCode.ACCOUNT_DEACTIVATED, "This account is deactivated. Ask an owner or admin.")
    return found[0]
