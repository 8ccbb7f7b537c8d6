"""Widget session tokens: HS256 JWTs that can never pass for an agent's, nor the reverse.

They are signed under a key derived from the JWT secret with their own label (as the
file links are), and carry ``aud: imbrace-widget``, which the agent side's tokens lack
and refuse (PyJWT rejects an audience nobody asked for). Each names the one channel and
the one customer it may act as, the visitor's id and the origin the session started
from. Validity is wall-clock time, like the agent tokens'.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import jwt

from domain.widget import VisitorSession

ALGORITHM = "HS256"
AUDIENCE = "imbrace-widget"
_LABEL = b"imbrace widget session v1"
_CLAIMS = ("sub", "org", "chn", "vid", "orn", "exp", "aud")


class WidgetTokens:
    def __init__(self, secret: str, ttl_s: float) -> None:
        self._key = hmac.new(secret.encode(), _LABEL, hashlib.sha256).hexdigest()
        self.ttl_s = ttl_s

    def issue(self, session: VisitorSession) -> tuple[str, float]:
        """The token and the unix time it expires at."""
        now = time.time()
        expires = now + self.ttl_s
        payload = {
            "aud": AUDIENCE,
            "sub": session.customer_id,
            "org": session.org_id,
            "chn": session.channel_id,
            "vid": session.visitor_id,
            "orn": session.origin,
            "iat": int(now),
            "exp": int(expires),
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM), float(int(expires))

    def read(self, token: str | None) -> VisitorSession | None:
        """The session of a valid widget token; None for anything else (an agent's token,
        an expired, forged or ``alg: none`` one)."""
        if not token:
            return None
        try:
            payload = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": list(_CLAIMS)}
            )
        except jwt.PyJWTError:
            return None
        values = [payload.get(claim) for claim in ("org", "chn", "sub", "vid", "orn")]
        org, channel, customer, visitor, origin = (v if isinstance(v, str) else "" for v in values)
        if not (org and channel and customer and visitor and origin) or not isinstance(payload["exp"], (int, float)):
            return None
        return VisitorSession(
            org_id=org,
            channel_id=channel,
            customer_id=customer,
            visitor_id=visitor,
            origin=origin,
            expires_at=float(payload["exp"]),
        )
