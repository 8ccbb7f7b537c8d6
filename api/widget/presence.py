"""Presence from the widget's own connections.

A visitor is online while one of their widget sockets is open, and for
``IMBRACE_PRESENCE_TIMEOUT_S`` after the last one closes. Each process counts the
sockets it holds per visitor:

- the first socket (on this process) marks the visitor online for the timeout and
  active now, and agents hear it (PRESENCE);
- while sockets stay open, every tick pushes ``online_until`` forward again once a
  third of the timeout has passed, one write for all the visitors due (``$max``, so
  one instance never shortens what another's open socket keeps);
- when the last socket closes, the visitor stays online for the timeout; when that
  has passed with no socket opened since (on any instance: the stored
  ``online_until`` says), agents hear they went offline (PRESENCE).

Tests drive :meth:`VisitorPresence.tick` with a fake clock, as they drive the sweeper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.heartbeat import Heartbeat
from domain.usecases import widget
from domain.widget import VisitorDetails, VisitorSession

log = logging.getLogger("imbrace.widget.presence")


@dataclass
class _Visit:
    org_id: str
    sockets: int
    until: datetime  # the online_until this process last wrote


class VisitorPresence(Heartbeat):
    def __init__(self, services: Any) -> None:
        super().__init__(services, "widget-presence")
        self._open: dict[str, _Visit] = {}
        self._leaving: dict[str, tuple[datetime, str]] = {}  # customer id -> (when to look, org id)

    def online_here(self, customer_id: str) -> bool:
        return customer_id in self._open

    async def connect(self, session: VisitorSession, page_url: str | None) -> None:
        """A widget socket of this visitor opened (its ``connection_init`` was accepted)."""
        services = self.services
        now = services.clock()
        visit = self._open.get(session.customer_id)
        first = visit is None
        if visit is None:
            visit = self._open[session.customer_id] = _Visit(session.org_id, 0, now + self.timeout)
        visit.sockets += 1
        self._leaving.pop(session.customer_id, None)
        if first:
            await widget.visitor_connected(
                services.store, services.events, session, page_url, now, services.settings.thresholds
            )
        elif page_url is not None:
            await services.store.set_visitor_details(session.customer_id, VisitorDetails(page_url=page_url), now)

    async def disconnect(self, session: VisitorSession) -> None:
        """One of the visitor's sockets closed; the last one leaves them online for the timeout."""
        visit = self._open.get(session.customer_id)
        if visit is None:
            return
        visit.sockets -= 1
        if visit.sockets > 0:
            return
        del self._open[session.customer_id]
        now = self.services.clock()
        until = now + self.timeout
        self._leaving[session.customer_id] = (until, session.org_id)
        await self.services.store.visitors_online([session.customer_id], until)

    async def tick(self, now: datetime) -> None:
        """Keep open sockets' visitors online; announce those whose timeout passed since their last socket closed."""
        refresh_before = now + self.timeout * 2 / 3
        due = [customer_id for customer_id, visit in self._open.items() if visit.until <= refresh_before]
        if due:
            until = now + self.timeout
            await self.services.store.visitors_online(due, until)
            for customer_id in due:
                if customer_id in self._open:
                    self._open[customer_id].until = until
        for customer_id, (at, org_id) in list(self._leaving.items()):
            if at > now or customer_id in self._open:
                continue
            del self._leaving[customer_id]
            try:
                services = self.services
                await widget.visitor_left(
                    services.store, services.events, org_id, customer_id, now, services.settings.thresholds
                )
            except Exception:  # noqa: BLE001 - one visitor's announcement must not stop the others'
                log.warning("could not announce visitor %s offline", customer_id, exc_info=True)
