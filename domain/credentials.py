"""A channel's provider credentials: what each provider needs, and what may be shown of them.

Credentials are write-only: the API shows at most the last four characters of each
secret (:func:`hints`), and the store keeps them encrypted (``api/secrets.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from domain.enums import ChannelType
from domain.errors import invalid
from domain.validation import clean_line

MAX_CREDENTIAL_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class WhatsAppCredentials:
    """WhatsApp Cloud API: the business phone number's id, a (system user) access token, the
    Meta app's secret (webhook signatures) and the verify token chosen for the handshake."""

    phone_number_id: str
    access_token: str
    app_secret: str
    verify_token: str


@dataclass(frozen=True, slots=True)
class MessengerCredentials:
    """Messenger Platform: the Facebook page's id and access token, the app secret and verify token."""

    page_id: str
    page_access_token: str
    app_secret: str
    verify_token: str


@dataclass(frozen=True, slots=True)
class LineCredentials:
    """LINE Messaging API: the channel secret (webhook signatures) and a channel access token
    (push messages, content and profiles), both from the LINE Developers Console."""

    channel_secret: str
    channel_access_token: str


@dataclass(frozen=True, slots=True)
class WeChatCredentials:
    """WeChat Official Account: its AppID and AppSecret (access tokens) and the Token entered in
    its server configuration (the webhook's signature)."""

    app_id: str
    app_secret: str
    token: str


Credentials = WhatsAppCredentials | MessengerCredentials | LineCredentials | WeChatCredentials

CREDENTIALS_OF: dict[ChannelType, type[Credentials]] = {
    ChannelType.WHATSAPP: WhatsAppCredentials,
    ChannelType.FACEBOOK: MessengerCredentials,
    ChannelType.LINE: LineCredentials,
    ChannelType.WECHAT: WeChatCredentials,
}

# Identifiers a dashboard may show in full; everything else is a secret.
_PUBLIC_FIELDS = frozenset({"phone_number_id", "page_id", "app_id"})
# Public ids made of digits only (Meta's); a WeChat AppID is letters and digits (``wx…``).
_DIGIT_FIELDS = frozenset({"phone_number_id", "page_id"})
_ALPHANUMERIC_FIELDS = frozenset({"app_id"})


def check_credentials(type_: ChannelType, credentials: Credentials) -> Credentials:
    """The credentials fit the channel and every field is a clean, non-empty line (named
    ``credentials.<field>`` in the error), before anything is stored."""
    expected = CREDENTIALS_OF.get(type_)
    if expected is None:
        raise invalid(f"{type_.value} channels take no provider credentials here.", "credentials")
    if not isinstance(credentials, expected):
        provider = expected.__name__.removesuffix("Credentials")
        raise invalid(f"A {type_.value} channel needs {provider} credentials.", "credentials")
    cleaned: dict[str, str] = {}
    for f in fields(credentials):
        value = getattr(credentials, f.name)
        path = f"credentials.{_camel(f.name)}"
        cleaned[f.name] = clean_line(value, path, required=True, max_length=MAX_CREDENTIAL_LENGTH)
        if f.name in _DIGIT_FIELDS and not cleaned[f.name].isdigit():
            raise invalid("Meta ids are numbers.", path)
        if f.name in _ALPHANUMERIC_FIELDS and not (cleaned[f.name].isascii() and cleaned[f.name].isalnum()):
            raise invalid("A WeChat AppID is made of letters and digits.", path)
    return expected(**cleaned)


# A secret shows its last four characters only when it is at least this long, so a
# hint never gives away more than a quarter of one (a short verify token shows none).
HINT_MIN_LENGTH = 16
HINT_CHARACTERS = 4


def hints(credentials: Credentials) -> dict[str, str]:
    """What may be shown: public ids in full, secrets as "…" and their last four characters
    (just "…" for a secret shorter than ``HINT_MIN_LENGTH``)."""
    return {f.name: _hint(f.name, getattr(credentials, f.name)) for f in fields(credentials)}


def _hint(name: str, value: str) -> str:
    if name in _PUBLIC_FIELDS:
        return value
    return "…" + (value[-HINT_CHARACTERS:] if len(value) >= HINT_MIN_LENGTH else "")


def to_dict(credentials: Credentials) -> dict[str, str]:
    return asdict(credentials)


def from_dict(type_: ChannelType, data: dict[str, Any]) -> Credentials:
    return CREDENTIALS_OF[type_](**data)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
