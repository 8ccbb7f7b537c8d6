"""Email fallback: compose a member's reply as an email and hand it to SMTP.

Composition is pure (:func:`compose`); :class:`Mailer` only talks SMTP.
Messages are built with :class:`email.message.EmailMessage` under the strict
SMTP policy, which refuses CR/LF in header values, and every name that ends
up in a header (agent, organization, customer) is first reduced to one line
of printable text (:func:`one_line`); names in address headers also lose the
RFC 5322 specials and are kept short (:func:`display_name`), because Python's
email package may drop the quotes around a long display name when it folds
the header, which would let a name such as ``x: evil@example.com`` become
an address. So no input can add a header or a recipient.

Threading: each email's ``Message-ID`` is derived from the stored message id
(``<msg-{id}@imbrace>``); ``In-Reply-To``/``References`` point at the
conversation's previously emailed messages and at a per-conversation root id
(``<conv-{id}@imbrace>``) that every email of the conversation references, so
mail clients keep the replies in one thread even if an earlier one is lost.
"""

from __future__ import annotations

import email.policy
import email.utils
import html
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiosmtplib

from api.settings import Settings
from domain.entities import Attachment
from domain.enums import MessageKind
from domain.validation import is_id

MESSAGE_ID_DOMAIN = "imbrace"
MAX_REFERENCES = 20
MAX_NAME_LENGTH = 100
MAX_ERROR_LENGTH = 300
_ASCII_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}$")


class DeliveryError(Exception):
    """An attempt that did not deliver.

    ``permanent``: retrying can't help (the server refused the recipient, no
    address on record). ``uncertain``: the message body reached the server but
    its verdict was lost (timeout, disconnect), so it may have been delivered.
    """

    def __init__(self, reason: str, *, permanent: bool = False, uncertain: bool = False) -> None:
        super().__init__(reason)
        self.reason = one_line(reason, MAX_ERROR_LENGTH) or "error"
        self.permanent = permanent
        self.uncertain = uncertain


@dataclass(frozen=True, slots=True)
class Letter:
    """Everything one fallback email says; built by the email transport from stored facts."""

    message_id: str
    conversation_id: str
    kind: MessageKind
    text: str | None
    attachments: tuple[Attachment, ...]
    created_at: datetime
    agent_name: str | None
    org_name: str | None
    to_email: str
    to_name: str | None
    previous: tuple[str, ...] = ()  # Message-IDs of earlier emails of the conversation, oldest first


def header_message_id(message_id: str) -> str:
    if not is_id(message_id):
        raise ValueError("not a message id")
    return f"<msg-{message_id}@{MESSAGE_ID_DOMAIN}>"


def conversation_root_id(conversation_id: str) -> str:
    if not is_id(conversation_id):
        raise ValueError("not a conversation id")
    return f"<conv-{conversation_id}@{MESSAGE_ID_DOMAIN}>"


def one_line(value: str | None, max_length: int = MAX_NAME_LENGTH) -> str:
    """Printable single-line text: control, format and line/paragraph separator
    characters become spaces, runs of whitespace collapse, the result is bounded."""
    if not value:
        return ""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") else ch for ch in value)
    cleaned = " ".join(cleaned.split())
    return cleaned[:max_length].strip()


_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"]')


def display_name(value: str | None, max_length: int = 40) -> str:
    """A name for an address header: one line, without RFC 5322 specials, short.

    The specials are what gives a header structure (``:`` ``<`` ``@`` ``,``...);
    without them a display name can't be read as an address or a new header even
    where a mail library folds it without quoting, and short names are never folded.
    """
    return " ".join(_SPECIALS.sub(" ", one_line(value, MAX_NAME_LENGTH)).split())[:max_length].strip()


def absolute_url(url: str, public_url: str) -> str | None:
    """Relative links (``/files/{id}``) are made absolute; only http(s) links are kept."""
    url = (url or "").strip()
    if url.startswith("/") and not url.startswith("//"):
        url = public_url.rstrip("/") + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(ord(c) < 33 for c in url):
        return None
    return url


def envelope_address(address: str, *, with_name: bool = False) -> str:
    """The bare address for SMTP commands and headers; refuses anything a command
    line or header could misread. ``with_name`` accepts ``Name <address>`` (IMBRACE_SMTP_FROM)."""
    value = (address or "").strip(" ")
    if with_name and value.endswith(">") and "<" in value:
        value = value[value.rindex("<") + 1 : -1]
    if not _ASCII_EMAIL.fullmatch(value):
        raise DeliveryError(f"Not a deliverable email address: {address!r}", permanent=True)
    return value


def compose(letter: Letter, settings: Settings) -> EmailMessage:
    """The email for one reply: plain text and HTML, threaded, headers safe."""
    org = one_line(letter.org_name) or "Support"
    agent = one_line(letter.agent_name) or org
    from_name = f"{display_name(agent, 30)} from {display_name(org, 30)}".strip()
    sender = envelope_address(settings.smtp_from, with_name=True)
    recipient = envelope_address(letter.to_email)
    root = conversation_root_id(letter.conversation_id)
    previous = [p for p in letter.previous if re.fullmatch(r"<[A-Za-z0-9.@-]{1,200}>", p)][-MAX_REFERENCES:]

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = Address(display_name=from_name, addr_spec=sender)
    msg["To"] = Address(display_name=display_name(letter.to_name), addr_spec=recipient)
    subject = f"Your conversation with {org}"
    msg["Subject"] = f"Re: {subject}" if previous else subject
    msg["Date"] = email.utils.format_datetime(letter.created_at)
    msg["Message-ID"] = header_message_id(letter.message_id)
    msg["In-Reply-To"] = previous[-1] if previous else root
    msg["References"] = " ".join([root, *previous])

    links = _links(letter, settings.public_url)
    msg.set_content(_plain(letter, agent, org, links), cte="quoted-printable")
    msg.add_alternative(_html(letter, agent, org, links), subtype="html", cte="quoted-printable")
    return msg


def _links(letter: Letter, public_url: str) -> list[tuple[str, str]]:
    """(label, absolute url) for each attachment or conference link."""
    found = []
    for attachment in letter.attachments:
        url = absolute_url(attachment.url, public_url)
        if url is None:
            continue
        if letter.kind is MessageKind.CONFERENCE_LINK:
            label = "Join the video call"
        else:
            label = one_line(attachment.name, 200) or "Attachment"
        found.append((label, url))
    return found


def _plain(letter: Letter, agent: str, org: str, links: list[tuple[str, str]]) -> str:
    lines = [f"{agent} from {org} wrote:", ""]
    if letter.text:
        lines += [letter.text, ""]
    for label, url in links:
        lines.append(f"{label}: {url}")
    if links:
        lines.append("")
    lines += ["--", f"You receive this email because you were away from the chat when {org} replied."]
    return "\n".join(lines) + "\n"


def _html(letter: Letter, agent: str, org: str, links: list[tuple[str, str]]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"></head>',
        '<body style="font-family: sans-serif; line-height: 1.4">',
        f"<p><strong>{e(agent)}</strong> from {e(org)} wrote:</p>",
    ]
    if letter.text:
        parts.append(f"<p>{e(letter.text).replace(chr(10), '<br>')}</p>")
    if links:
        items = "".join(f'<li><a href="{e(url)}">{e(label)}</a></li>' for label, url in links)
        parts.append(f"<ul>{items}</ul>")
    parts.append(
        f'<p style="color: #777; font-size: small">You receive this email because you were away '
        f"from the chat when {e(org)} replied.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


BeforeData = Callable[[], Awaitable[None]]


class Mailer:
    """Sends one composed email through the configured SMTP server.

    ``before_data`` runs after the envelope is accepted and right before the
    message body is transmitted: the delivery worker records there that this attempt
    may deliver, which narrows the window in which a crash leaves the outcome
    unknown to the DATA exchange itself.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        host = urlsplit(settings.public_url).hostname or "localhost"
        self.local_hostname = host if re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host) else "localhost"

    async def send(self, msg: EmailMessage, before_data: BeforeData | None = None) -> None:
        s = self.settings
        sender = envelope_address(s.smtp_from, with_name=True)
        recipient = envelope_address(str(msg["To"].addresses[0].addr_spec) if msg["To"] else "")
        body = msg.as_bytes(policy=email.policy.SMTP)
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=bool(s.smtp_starttls),
            timeout=s.smtp_timeout_s,
            local_hostname=self.local_hostname,
        )
        try:
            await smtp.connect()
            try:
                await smtp.mail(sender)
                await smtp.rcpt(recipient)
                if before_data is not None:
                    await before_data()
                try:
                    await smtp.data(body)
                except aiosmtplib.SMTPResponseException as refused:
                    raise _refusal(refused) from refused
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as lost:
                    raise DeliveryError(
                        f"Connection lost during DATA, delivery unknown: {_describe(lost)}", uncertain=True
                    ) from lost
            except BaseException:
                smtp.close()
                raise
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()  # the server already took the message; a failed QUIT changes nothing
        except DeliveryError:
            raise
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPSenderRefused) as refused:
            raise _refusal(refused) from refused
        except aiosmtplib.SMTPResponseException as refused:
            # Greeting, EHLO, STARTTLS or AUTH turned down: a server or configuration
            # problem that may be fixed, so retried whatever the code.
            raise DeliveryError(_describe(refused)) from refused
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as error:
            raise DeliveryError(_describe(error)) from error


def _refusal(refused: aiosmtplib.SMTPResponseException) -> DeliveryError:
    """4xx: try again later; 5xx to MAIL/RCPT/DATA: the server won't take this email."""
    return DeliveryError(_describe(refused), permanent=500 <= refused.code < 600)


def _describe(error: BaseException) -> str:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"SMTP {error.code}: {error.message}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
