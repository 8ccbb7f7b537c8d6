"""Secrets kept at rest: AES-256-GCM under ``IMBRACE_SECRET_KEY``.

A token is ``v1.`` followed by base64url (unpadded) of a fresh 96-bit random nonce
and the ciphertext with its 128-bit tag. The version names the algorithm and key
layout, so a later format (or key rotation, not supported yet) can tell its tokens
apart. Every token is bound to *associated data* naming what it belongs to (a
channel's credentials use the channel id): a token copied onto another record
does not decrypt.

The key is 32 random bytes, written in base64 or base64url (with or without
padding), e.g. ``openssl rand -base64 32``. In development, when it is unset, one
is generated once and kept in the data directory (``secret_key``, mode 0600), as
the JWT secret is; in production the server refuses to start without it, because
a key lost with a data directory, or different on each instance, makes every
stored credential unreadable.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.settings import SettingsError

log = logging.getLogger("imbrace")

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = "v1"
KEY_FILE = "secret_key"
SETTING = "IMBRACE_SECRET_KEY"


class SecretError(ValueError):
    """A token that does not decrypt here: another key, tampered with, bound to other
    associated data, or not a token at all. Never carries the token or the key."""


class SecretBox:
    """Encrypts and decrypts small secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never the key, whatever prints this object
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: bytes, associated: bytes) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, associated)
        return f"{VERSION}." + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def decrypt(self, token: str, associated: bytes) -> bytes:
        version, dot, body = token.partition(".") if isinstance(token, str) else ("", "", "")
        if not dot or version != VERSION:
            raise SecretError(f"not a {VERSION} secret token")
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise SecretError("the secret token is not base64url") from None
        if len(sealed) < NONCE_BYTES + 16:
            raise SecretError("the secret token is too short")
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
        except InvalidTag:
            raise SecretError(
                f"the secret does not decrypt: {SETTING} is not the key it was encrypted with, "
                "or it was altered or copied from another record"
            ) from None


def parse_key(raw: str) -> bytes:
    """The 32 bytes of ``raw`` (base64 or base64url, padding optional); a ``SettingsError``
    naming the setting, never quoting the value, for anything else."""
    text = raw.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(
            f"{SETTING} must be {KEY_BYTES} random bytes in base64 (e.g. `openssl rand -base64 32`); it is not base64."
        ) from None
    if len(key) != KEY_BYTES:
        raise SettingsError(
            f"{SETTING} must be {KEY_BYTES} random bytes in base64 (e.g. `openssl rand -base64 32`); "
            f"it decodes to {len(key)} bytes."
        )
    return key


def configured_key(configured: str | None, production: bool) -> bytes | None:
    """The key ``IMBRACE_SECRET_KEY`` holds, or None when it is unset outside production."""
    if configured:
        return parse_key(configured)
    if production:
        raise SettingsError(
            f"{SETTING} must be set in production (32 random bytes in base64, e.g. `openssl rand -base64 32`): "
            "it encrypts the channels' provider credentials, which a lost or differing key makes unreadable."
        )
    return None


def load_secret_key(configured: str | None, data_dir: Path, production: bool) -> bytes:
    """The configured key; else, in production, a ``SettingsError``; else the key kept in
    ``data_dir``, generated there (mode 0600) on first use."""
    key = configured_key(configured, production)
    if key is not None:
        return key
    path = Path(data_dir) / KEY_FILE
    if path.exists():
        try:
            return parse_key(path.read_text())
        except SettingsError as error:
            raise SettingsError(f"{path}: {error}") from None
    log.warning(
        "%s is not set: using a random key kept in %s. Set it explicitly when running several "
        "instances, and keep it: the channels' credentials can't be read without it.",
        SETTING,
        path,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    # Written whole to a private temporary file, then linked into place: another process
    # starting on the same directory at once either wins (its key is used) or loses.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_FILE}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(base64.urlsafe_b64encode(key).decode("ascii") + "\n")
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return parse_key(path.read_text())
    finally:
        os.unlink(temporary)
    return key
