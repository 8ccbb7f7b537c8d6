"""The login throttle's rules: which counters an attempt touches, and when it is refused.

Three counters, each over a window that starts at its first attempt:

* **(email, client address)**: the guesser's own budget, a hard limit. A
  stranger who exhausts it locks only themselves out, not the account.
* **client address**, across emails: stops one client spraying many accounts.
* **email**, over all addresses: a distributed guesser's budget. Past a
  higher threshold each further failure doubles a short delay (capped) during
  which that email can't be tried, so the account is slowed down, never
  locked for the whole window.

The first two are reserved atomically *before* the password is checked (an
attempt that would exceed them is refused without verifying anything) and
given back on success, so parallel attempts can't slip past them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window_s: float = 900
    max_per_pair: int = 5
    max_per_address: int = 20
    email_delay_after: int = 20
    email_base_delay_s: float = 1.0
    email_max_delay_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    """Counter keys; hashed so the throttle's records don't list who tried which account."""

    pair: str
    address: str
    email: str


def keys_for(email: str, address: str) -> ThrottleKeys:
    def h(kind: str, value: str) -> str:
        return kind + ":" + hashlib.sha256(value.encode()).hexdigest()[:40]

    return ThrottleKeys(pair=h("pair", f"{email}\n{address}"), address=h("addr", address), email=h("email", email))


def email_delay_s(failures: int, policy: ThrottlePolicy) -> float:
    """Seconds an email can't be tried after its latest failure, given its failures in the window."""
    if failures < policy.email_delay_after:
        return 0.0
    doublings = min(failures - policy.email_delay_after, 32)
    factor: int = 2**doublings  # doublings >= 0, so an int (typeshed types int ** int as Any)
    return min(policy.email_base_delay_s * factor, policy.email_max_delay_s)


def email_open_at(failures: int, last_failure: datetime | None, policy: ThrottlePolicy) -> datetime | None:
    """When the email may be tried again, or None if it may be tried now (callers compare with ``now``)."""
    delay = email_delay_s(failures, policy)
    if not delay or last_failure is None:
        return None
    return last_failure + timedelta(seconds=delay)
