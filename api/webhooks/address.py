"""Where a webhook may be delivered: its host resolved at send time, every address checked,
and the request sent to the address that was checked.

An integrator's URL is someone else's input; without these checks it would let them make
this server call its own network (the database, a cloud metadata service). A name is
resolved right before each attempt (not only when the webhook is created: DNS can change,
or answer differently on purpose) and refused when *any* of its addresses is not public
(:func:`api.addresses.is_public`). The request then goes to that checked address, not to
the name, so a second lookup can't swap in another one (DNS rebinding): the URL's host is
replaced by the address, the ``Host`` header keeps the name, and for HTTPS the TLS
handshake sends the name as SNI and verifies the certificate against it (httpcore's
``sni_hostname`` request extension).

``IMBRACE_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address rule (a receiver on the same
machine, the tests); names are still resolved once and pinned.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from api.addresses import IPAddress, is_local_name, is_public, kind_of


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request target: the URL with each checked address as its host (tried in the resolver's
    order while connecting fails), and the name to present."""

    urls: tuple[httpx.URL, ...]
    host_header: str
    sni_hostname: str | None


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order; [] when it doesn't resolve.

    A module-level function so tests can stand in for DNS."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        try:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        except ValueError:
            continue
        if address not in found:
            found.append(address)
    return found


async def pinned(url: str, allow_private: bool) -> Pinned | str:
    """The target to send to, or why not (a sentence that names the host, never an address)."""
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        return "The URL is not valid."
    if not host:
        return "The URL has no host."
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not allow_private and is_local_name(host):
        return f"{host} names this server, which webhooks may not call."
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        literal = True
    except ValueError:
        addresses = await resolve_host(host, port)
        literal = False
    if not addresses:
        return f"{host} does not resolve."
    if not allow_private:
        refused = next((a for a in addresses if not is_public(a)), None)
        if refused is not None:
            what = "is" if literal else "resolves to"
            return f"{host} {what} {kind_of(refused)}, which webhooks may not call."
    return Pinned(
        urls=tuple(parsed.copy_with(host=str(a)) for a in addresses),
        host_header=parsed.netloc.decode("ascii"),
        sni_hostname=host if parsed.scheme == "https" and not literal else None,
    )


async def refusal_at_creation(url: str, allow_private: bool) -> str | None:
    """Why a new URL can't be taken: a forbidden address. A name that doesn't resolve (yet) is
    accepted; it is checked again at every attempt."""
    target = await pinned(url, allow_private)
    if isinstance(target, str) and not target.endswith("does not resolve."):
        return target
    return None
