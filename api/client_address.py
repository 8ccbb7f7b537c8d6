"""Who is calling: the socket peer, or what a trusted reverse proxy says in X-Forwarded-For.

X-Forwarded-For is anyone's to write, so it is believed only when the direct
peer is one of ``IMBRACE_TRUSTED_PROXIES``; then the rightmost address that is
not itself a trusted proxy is the client (entries further left were written by
the client and may be invented).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in trusted)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(scope: Mapping[str, Any], trusted_proxies: tuple[str, ...]) -> str:
    peer = (scope.get("client") or ("-", 0))[0] or "-"
    trusted = networks(trusted_proxies)
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = [v for k, v in scope.get("headers") or () if k == b"x-forwarded-for"]
    hops = [h.strip() for value in forwarded for h in value.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a proxy we trust wrote garbage: count it against the proxy itself
    return peer
