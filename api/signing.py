"""Signed, expiring links to stored files, for people and providers who have no token.

A customer reading a fallback email (and, later, WhatsApp/Messenger fetching
an attachment) can't send a member's bearer token. Such a link names one file
and an expiry, with an HMAC-SHA256 over both under a key derived from the JWT
secret (its own label, so a link signature can never pass as a token's, or the
reverse): ``/files/{id}?expires=<unix seconds>&signature=<hex>``. It opens only
that file, only until it expires; checking compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

_LABEL = b"imbrace public file link v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UNIX = re.compile(r"^[0-9]{1,12}$")


class FileLinks:
    def __init__(self, secret: str, ttl_s: float) -> None:
        self._key = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _signature(self, file_id: str, expires: int) -> str:
        return hmac.new(self._key, f"file\n{file_id}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def path(self, file_id: str, now: datetime) -> str:
        """The relative link, valid for ``ttl_s`` from ``now``."""
        expires = int((now + timedelta(seconds=self.ttl_s)).timestamp())
        return f"/files/{file_id}?" + urlencode({"expires": expires, "signature": self._signature(file_id, expires)})

    def valid(self, file_id: str, expires: str | None, signature: str | None, now: datetime) -> bool:
        if not expires or not signature or not _UNIX.match(expires) or not _HEX64.match(signature):
            return False
        if int(expires) <= now.timestamp():
            return False
        return hmac.compare_digest(self._signature(file_id, int(expires)), signature)
