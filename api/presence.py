"""Members' presence from their own connections, across instances.

A member is online while one of their WebSocket connections (``/graphql``) is
open on any instance: the member's document keeps, per instance, until when
that instance's heartbeat keeps them online (``online.<instance>``), as the web
widget keeps its visitors' ``online_until`` (:mod:`api.widget.presence`). Each
process counts the sockets it holds per member:

- the first socket (on this process) writes the instance's entry, one write; when
  the member was online nowhere before, the organization hears it (AVAILABILITY);
- while sockets stay open, every tick pushes the entries due forward again once a
  third of ``IMBRACE_PRESENCE_TIMEOUT_S`` has passed, one write for all the
  members due (``$max``), so a crashed instance's entries stop counting within
  the timeout;
- the last socket (on this process) removing its entry, one write: when no other
  instance's entry keeps the member online, the organization hears it at once.

Nothing is written per message or per subscription event. Tests drive
:meth:`MemberPresence.tick` with a fake clock.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.heartbeat import Heartbeat
from domain.availability import is_online
from domain.visibility import Viewer

log = logging.getLogger("imbrace.presence")


@dataclass
class _Connected:
    org_id: str
    sockets: int
    until: datetime  # the entry this process last wrote
    expired: list[str] = field(default_factory=list)  # other instances' entries expired at connect


class MemberPresence(Heartbeat):
    def __init__(self, services: Any, instance: str | None = None) -> None:
        super().__init__(services, "member-presence")
        # An instance id names a field of the member's document: letters and digits only.
        self.instance = instance or "i" + uuid.uuid4().hex[:16]
        self._open: dict[str, _Connected] = {}

    async def connect(self, viewer: Viewer) -> None:
        """A member's socket was accepted (its ``connection_init``)."""
        connected = self._open.get(viewer.member_id)
        if connected is not None:
            connected.sockets += 1
            return
        services = self.services
        now = services.clock()
        until = now + self.timeout
        connected = self._open[viewer.member_id] = _Connected(viewer.org_id, 1, until)
        found = await services.store.presence.connected(viewer.org_id, viewer.member_id, self.instance, until)
        if found is None:
            return
        before, entries = found
        connected.expired = [k for k, v in entries.items() if v <= now and k != self.instance]
        if not is_online(before, now):
            await services.events.publish_availability(before, True, now)

    async def disconnect(self, viewer: Viewer) -> None:
        """One of the member's sockets closed; the last one on this process removes its entry."""
        connected = self._open.get(viewer.member_id)
        if connected is None:
            return
        connected.sockets -= 1
        if connected.sockets > 0:
            return
        del self._open[viewer.member_id]
        services = self.services
        after = await services.store.presence.disconnected(
            connected.org_id, viewer.member_id, [self.instance, *connected.expired]
        )
        now = services.clock()
        if after is not None and not is_online(after, now) and viewer.member_id not in self._open:
            await services.events.publish_availability(after, False, now)

    def online_here(self, member_id: str) -> bool:
        return member_id in self._open

    async def tick(self, now: datetime) -> None:
        """Keep the members of open sockets online: one write for all those due."""
        refresh_before = now + self.timeout * 2 / 3
        due = [member_id for member_id, c in self._open.items() if c.until <= refresh_before]
        if not due:
            return
        until = now + self.timeout
        await self.services.store.presence.heartbeat(due, self.instance, until)
        for member_id in due:
            if member_id in self._open:
                self._open[member_id].until = until
