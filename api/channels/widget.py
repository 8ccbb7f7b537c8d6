"""The web widget as a provider: this server is the widget's back end, so there is nothing to call.

A reply in a widget conversation is in the visitor's history (``messages``) and stream
(``widgetEvents``) as soon as it is stored; "sending" it only marks it SENT. The
visitor's browser then reports DELIVERED (its stream carried the reply, or it fetched it)
and READ (``markRead``), through :mod:`domain.usecases.widget`. The email fallback, for
a visitor who is offline, is a separate delivery (EMAIL) of the same reply.
"""

from __future__ import annotations

from typing import Any

from domain.delivery import Outcome, Outgoing, Sent


class WidgetTransport:
    needs_credentials = False

    async def send(self, credentials: Any, outgoing: Outgoing) -> Outcome:
        return Sent()
