"""Calling a provider over HTTP, and reading its answer as an outcome every channel agrees on.

Connection errors and timeouts are :class:`~domain.delivery.Retry` (the request may or
may not have arrived: the pipeline's per-provider rule decides whether a retry is
safe); 429 and 5xx are ``Retry`` with the provider's ``Retry-After``; any other 4xx is
:class:`~domain.delivery.Failed`. Provider modules only say which of *their* codes mean
"later" (``retry_codes``).

No reason or log line here ever contains a URL: Messenger's page token travels in the
query string, and httpx's own request log is silenced for that reason (see
:func:`quiet_http_logs`).
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from domain.delivery import Failed, Retry


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's HTTP answer: status, parsed JSON body (None if not JSON), ``Retry-After`` in
    seconds, and the response headers (case-insensitive; LINE names the accepted request in one)."""

    status: int
    body: Any
    retry_after_s: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def request_json(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer | Retry:
    """One request; a transport failure comes back as ``Retry`` whose reason names no URL."""
    try:
        response = await http.request(method, url, json=json, params=params, headers=headers)
    except httpx.TimeoutException as error:
        return Retry(f"Timed out waiting for the provider ({type(error).__name__}).")
    except httpx.HTTPError as error:
        return Retry(f"Could not reach the provider ({type(error).__name__}).")
    try:
        body = response.json()
    except ValueError:
        body = None
    return Answer(response.status_code, body, retry_after(response.headers.get("retry-after")), response.headers)


def outcome_of(answer: Answer, code: str | None, message: str, retry_codes: Collection[str] = ()) -> Retry | Failed:
    """A refusal as the pipeline's outcome: 429, 5xx and the provider's "later" codes are retried."""
    if answer.status == 429 or answer.status >= 500 or (code is not None and code in retry_codes):
        return Retry(message, code, answer.retry_after_s)
    return Failed(message, code)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


def quiet_http_logs() -> None:
    """httpx logs every request's full URL at INFO, query string included: with Messenger's
    ``access_token`` in it, that would write a page token into the logs. Only warnings pass."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
