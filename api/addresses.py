"""Which network addresses this server may call on behalf of someone else's URL.

Provider media links (:mod:`api.channels.meta`) and integrators' webhook URLs
(:mod:`api.webhooks.address`) both come from outside; neither may make the server reach
its own network. An address qualifies only when it is globally routable: loopback,
private (RFC 1918, IPv6 unique local), link-local (where cloud metadata services answer,
169.254.169.254), shared (100.64.0.0/10), multicast, reserved, unspecified and
documentation ranges are all refused, and so is an IPv4 address dressed as IPv6
(``::ffff:127.0.0.1``, 6to4, Teredo) when the address inside is.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Named for the message only: every one of them is link-local or private, so refused anyway.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address (see the module's description)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if inner is not None and not is_public(inner):
            return False
    return address.is_global and not address.is_multicast and address not in METADATA_ADDRESSES


def kind_of(address: IPAddress) -> str:
    """What a refused address is, in a few words (for an error message that needn't name it)."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    return "a reserved address"


def is_local_name(host: str) -> bool:
    """``localhost`` and its subdomains, which resolve to this machine by convention (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def special_host(host: str) -> bool:
    """A URL's host that is this machine's name or a literal non-public address (no lookup)."""
    if is_local_name(host):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not is_public(address)
