"""A channel's provider credentials at rest: sealed with :class:`api.secrets.SecretBox`,
bound to the channel, opened only where a provider is called or a webhook checked.

The clear values live only in memory, for the call that needs them: never in a log
line, an error message or a GraphQL answer (which shows ``credential_hints``).
"""

from __future__ import annotations

import json
from typing import Protocol

from api.secrets import SecretBox, SecretError
from domain.credentials import Credentials, from_dict, to_dict
from domain.entities import Channel

# Binds a token to what it seals (a purpose and the channel), so it opens nowhere else.
_ASSOCIATED = b"imbrace:channel-credentials:"
_OUTBOUND = b"imbrace:channel-outbound-secret:"


class CredentialsReader(Protocol):
    async def channel_credentials_token(self, channel_id: str) -> tuple[Channel, str | None] | None: ...
    async def channel_outbound_token(self, channel_id: str) -> tuple[Channel, str | None] | None: ...


class ChannelCredentials:
    """Seals credentials for a channel (the domain's ``CredentialSealer``) and opens them again."""

    def __init__(self, store: CredentialsReader, box: SecretBox) -> None:
        self.store = store
        self.box = box

    def seal(self, channel_id: str, credentials: Credentials) -> str:
        plaintext = json.dumps(to_dict(credentials), separators=(",", ":")).encode()
        return self.box.encrypt(plaintext, associated(channel_id))

    def open(self, channel: Channel, token: str) -> Credentials:
        """The credentials ``token`` seals for ``channel``; :class:`SecretError` naming the
        channel (never a value) when they don't decrypt here or don't fit its type."""
        try:
            data = json.loads(self.box.decrypt(token, associated(channel.id)))
            return from_dict(channel.type, data)
        except SecretError as error:
            raise SecretError(f"channel {channel.id}'s credentials: {error}") from None
        except (ValueError, TypeError, KeyError):
            raise SecretError(f"channel {channel.id}'s credentials are not {channel.type.value} credentials") from None

    async def load(self, channel_id: str) -> tuple[Channel, Credentials | None] | None:
        """The channel (None: no such channel) and its credentials (None: it has none).

        Reads through the store's short channel cache; decrypts on every call."""
        found = await self.store.channel_credentials_token(channel_id)
        if found is None:
            return None
        channel, token = found
        return channel, (self.open(channel, token) if token is not None else None)

    def seal_outbound_secret(self, channel_id: str, secret: str) -> str:
        """Seals a custom adapter's signing secret (``whsec_…``) for the channel (the domain's
        ``OutboundSealer``)."""
        return self.box.encrypt(secret.encode("ascii"), _OUTBOUND + channel_id.encode())

    async def outbound_secret(self, channel_id: str) -> tuple[Channel, str | None] | None:
        """The channel (None: no such channel) and its outbound secret in clear (None: it has no
        adapter URL); :class:`SecretError` naming the channel when it doesn't open here."""
        found = await self.store.channel_outbound_token(channel_id)
        if found is None:
            return None
        channel, token = found
        if token is None:
            return channel, None
        try:
            return channel, self.box.decrypt(token, _OUTBOUND + channel.id.encode()).decode("ascii")
        except (SecretError, UnicodeDecodeError) as error:
            raise SecretError(f"channel {channel.id}'s outbound secret: {error}") from None


def associated(channel_id: str) -> bytes:
    return _ASSOCIATED + channel_id.encode()
