"""Signing deliveries as the Standard Webhooks specification says, and keeping the secrets.

Each request carries ``webhook-id`` (stable per event and webhook), ``webhook-timestamp``
(Unix seconds) and ``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 over
``{id}.{timestamp}.{body}``, keyed by the secret's bytes (the base64 after ``whsec_``).
While a rotated secret still counts, the header carries one signature per secret,
separated by a space, and receivers accept a request when any of them matches.

Written with :mod:`hmac` rather than the ``standardwebhooks`` package: it is a dozen lines,
multi-secret signing is not what that package's ``sign`` does, and the test suite's
receiver verifies with the package, which is only an independent check while the server
does not share its code.

Secrets are kept encrypted (:class:`api.secrets.SecretBox`, bound to the webhook): unlike
a password, HMAC needs them in clear at every delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from api.secrets import SecretBox, SecretError
from api.store.webhooks import SealedSecret
from domain.usecases.webhooks import SECRET_PREFIX

_ASSOCIATED = b"imbrace:webhook-secret:"


def signature(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per key, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii") for key in keys
    )


def headers(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(keys, message_id, timestamp, body),
    }


def key_of(secret: str) -> bytes:
    """The HMAC key a ``whsec_…`` secret stands for."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("a webhook secret is not base64") from None


class WebhookSecrets:
    """Seals a webhook's secrets for storage (the domain's ``SecretSealer``) and opens the ones
    that sign now."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def seal(self, webhook_id: str, secret: str) -> str:
        return self.box.encrypt(secret.encode("ascii"), _ASSOCIATED + webhook_id.encode())

    def keys(self, webhook_id: str, sealed: Sequence[SealedSecret], now: datetime) -> list[bytes]:
        """The HMAC keys to sign with at ``now``: the current secret first, then a rotated one
        until it expires. :class:`SecretError` when one doesn't open (another ``IMBRACE_SECRET_KEY``)."""
        keys = []
        for secret in sealed:
            if secret.expires_at is not None and secret.expires_at <= now:
                continue
            try:
                clear = self.box.decrypt(secret.token, _ASSOCIATED + webhook_id.encode()).decode("ascii")
            except (SecretError, UnicodeDecodeError) as error:
                raise SecretError(f"webhook {webhook_id}'s secret: {error}") from None
            keys.append(key_of(clear))
        return keys
