"""Where a visitor is: the client address looked up in a database bundled with the server.

``geoip2fast`` ships its data (MaxMind GeoLite2, country level, IPv4 and IPv6) inside the
package, so nothing is downloaded or asked of a service. Its project also publishes
city-level files; ``IMBRACE_GEOIP_DATA_FILE`` names one to get cities as well. Private,
loopback and other non-public addresses have no location. The database is loaded once
per process, in a worker thread, on the first look-up (about 0.2 s and 50 MB).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from typing import Any

from domain.entities import Location

log = logging.getLogger("imbrace.geo")

BUNDLED = "geoip2fast-ipv6.dat.gz"  # countries, IPv4 and IPv6
_loaded: dict[str, Any] = {}
_loading = threading.Lock()


def _database(data_file: str) -> Any:
    with _loading:
        if data_file not in _loaded:
            from geoip2fast import GeoIP2Fast

            _loaded[data_file] = GeoIP2Fast(verbose=False, geoip2fast_data_file=data_file)
        return _loaded[data_file]


class Geo:
    def __init__(self, data_file: str | None = None) -> None:
        self.data_file = data_file or BUNDLED
        self._failed = False

    async def locate(self, address: str) -> Location | None:
        """The city (with a city database) and country of a public address; None otherwise."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or self._failed:
            return None
        database = _loaded.get(self.data_file)
        if database is None:
            try:
                database = await asyncio.to_thread(_database, self.data_file)
            except Exception:  # noqa: BLE001 - no location is better than no session
                log.warning(
                    "the GeoIP database %s could not be loaded; visitors get no location", self.data_file, exc_info=True
                )
                self._failed = True
                return None
        found = database.lookup(str(ip)) if database is not None else None
        if found is None:
            return None
        code = getattr(found, "country_code", "") or ""
        if len(code) != 2 or not code.isalpha():
            return None
        city = getattr(found, "city", None)
        city_name = getattr(city, "name", None) if city is not None and not isinstance(city, str) else city
        return Location(city=city_name or None, country=found.country_name or None, country_code=code.upper())
