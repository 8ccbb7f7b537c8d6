"""An in-process SMTP server (aiosmtpd) on a free loopback port, for email tests.

It runs in the test's own event loop, records what it accepts, and can be told
to refuse: ``fail_next`` answers the next N messages with a 4xx, ``fail_all``
refuses every message with the given reply, ``reject`` refuses recipients.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP

from api.embedded import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


@dataclass
class Handler:
    messages: list[Received] = field(default_factory=list)
    data_attempts: int = 0
    fail_next: int = 0
    fail_reply: str = "451 4.3.0 Try again later"
    fail_all: str | None = None
    reject: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_attempts += 1
        if self.fail_all:
            return self.fail_all
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_reply
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, parsed))
        return "250 2.0.0 Queued"


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = Handler()
        self._server: asyncio.AbstractServer | None = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    async def start(self) -> SmtpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.handler, hostname="smtp.test", loop=loop), "127.0.0.1", self.port
        )
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            if hasattr(self._server, "close_clients"):  # Python 3.13+: don't wait for idle sessions
                self._server.close_clients()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        """Until ``count`` messages arrived (or fail); returns them all."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self.messages) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} emails, got {len(self.messages)}")
            await asyncio.sleep(0.02)
        return self.messages
