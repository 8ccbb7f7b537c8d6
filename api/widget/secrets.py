"""A web widget's identity secret at rest: sealed with :class:`api.secrets.SecretBox` (AES-GCM,
``IMBRACE_SECRET_KEY``), bound to its channel, opened only to check a visitor's identity hash.

The clear secret is shown once, when it is drawn (``connectChannel``, ``updateChannel``),
and otherwise exists only in memory while a session's hash is checked.
"""

from __future__ import annotations

from api.secrets import SecretBox, SecretError

_ASSOCIATED = b"imbrace:widget-identity-secret:"


class IdentitySecretBox:
    """The domain's ``IdentitySecrets``: seal for the store, open for a check."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def seal(self, channel_id: str, secret: str) -> str:
        return self.box.encrypt(secret.encode(), _ASSOCIATED + channel_id.encode())

    def open(self, channel_id: str, token: str) -> str:
        try:
            return self.box.decrypt(token, _ASSOCIATED + channel_id.encode()).decode()
        except SecretError as error:
            raise SecretError(f"channel {channel_id}'s identity secret: {error}") from None
