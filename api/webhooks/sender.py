"""One POST to an integrator's endpoint, within the limits every delivery keeps.

The whole attempt (resolving the host, connecting, sending, reading the answer) lasts at
most ``IMBRACE_WEBHOOK_TIMEOUT_S``. Redirects are never followed (a 3xx is a failure like
any other non-2xx: a redirect could lead to an address the checks refused). At most
:data:`MAX_ANSWER_BYTES` of the answer are read, and :data:`KEPT_ANSWER_BYTES` of them kept
for the delivery log. No proxy from the environment is used.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from dataclasses import dataclass
from types import TracebackType

import certifi
import httpx

from api.webhooks.address import pinned

MAX_ANSWER_BYTES = 64 * 1024
KEPT_ANSWER_BYTES = 1024
USER_AGENT = "imbrace-webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What came of an attempt: ``status_code`` None when no answer came (``error`` says why)."""

    succeeded: bool
    latency_ms: int
    status_code: int | None = None
    response: str | None = None
    error: str | None = None
    retry_after: str | None = None  # the header, for a caller that honours it (custom adapters)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate-verifying TLS context every sender shares (certifi's roots, as httpx's
    default): building one loads the roots, about 40 ms of CPU, and a client per claimed webhook
    built its own, most of the follower's CPU. Sharing it shares no connection: each
    connection still checks its own host name (SNI)."""
    return ssl.create_default_context(cafile=certifi.where())


class Sender:
    """Sends to one webhook's URL; one per claimed webhook, so its connections are never
    shared with another host name (they are pooled by the address they were made to)."""

    def __init__(self, allow_private: bool, timeout_s: float) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            verify=tls_context(),
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_s),
            headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
        )

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(self.timeout_s):
                target = await pinned(url, self.allow_private)
                if isinstance(target, str):
                    return Answer(False, elapsed(), error=f"Not sent: {target}")
                for position, address in enumerate(target.urls):
                    request = self._client.build_request(
                        "POST",
                        address,
                        content=body,
                        headers={**headers, "host": target.host_header},
                        extensions={"sni_hostname": target.sni_hostname} if target.sni_hostname else None,
                    )
                    try:
                        response = await self._client.send(request, stream=True, follow_redirects=False)
                    except httpx.ConnectError:
                        if position + 1 == len(target.urls):
                            raise
                        continue  # nothing was sent: the next address (IPv4 after an unreachable IPv6)
                    try:
                        kept = await _read_some(response)
                    finally:
                        await response.aclose()
                    break
        except TimeoutError:
            return Answer(False, elapsed(), error=f"No answer within {self.timeout_s:g} s.")
        except httpx.HTTPError as error:
            return Answer(False, elapsed(), error=f"Could not deliver ({type(error).__name__}).")
        status = response.status_code
        return Answer(
            200 <= status < 300,
            elapsed(),
            status_code=status,
            response=kept,
            retry_after=response.headers.get("retry-after"),
        )


async def _read_some(response: httpx.Response) -> str:
    """Reads at most :data:`MAX_ANSWER_BYTES`; returns the first :data:`KEPT_ANSWER_BYTES` as text."""
    head = bytearray()
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if len(head) < KEPT_ANSWER_BYTES:
            head += chunk[: KEPT_ANSWER_BYTES - len(head)]
        if size >= MAX_ANSWER_BYTES:
            break
    return head.decode("utf-8", "replace").replace("\x00", "\ufffd")
