"""Writing a system line into a conversation's history.

A change that deserves a line reserves the line's number in its own update
(:func:`domain.changes.numbered`), so the line costs one insert and no other
command. Write order: the change, the line, then the event; the event names the
line (``line_id``), so ``messageAdded`` pushes it, and a conversation shown as of
the event already pages it. A failure between the change and the line leaves an
unused number, which readers never see.

Any use case that changes a room (joins, grabs, transfers, releases...) calls
:func:`write_line` with the conversation its numbered change returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.entities import Conversation, Message
from domain.enums import SystemAction
from domain.messages import system_line
from domain.visibility import Viewer


class LineStore(Protocol):
    def new_id(self) -> str: ...
    async def insert_message(self, message: Message, *, offer: bool = True) -> Message: ...


async def write_line(
    store: LineStore,
    conversation: Conversation,
    action: SystemAction,
    at: datetime,
    *,
    actor: Viewer | None = None,
    target_id: str | None = None,
    target_name: str | None = None,
    note: str | None = None,
    removed: bool = False,
    deactivated: bool = False,
) -> Message:
    """Store the line recording ``action`` by ``actor`` (None: the customer or the server) on
    ``conversation`` as its numbered change returned it; never the conversation's last message."""
    line = system_line(
        conversation,
        action,
        at,
        message_id=store.new_id(),
        actor_id=actor.member_id if actor else None,
        actor_name=actor.name if actor else None,
        target_id=target_id,
        target_name=target_name,
        note=note,
        removed=removed,
        deactivated=deactivated,
    )
    return await store.insert_message(line, offer=False)


__all__ = ["LineStore", "write_line"]
