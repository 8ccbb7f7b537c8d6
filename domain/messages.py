"""What a message is, beyond the customer's and the agents' words: internal notes,
system lines, and who may see which.

Internal notes (kind NOTE) and system lines (kind SYSTEM) live in the history
beside the conversation's messages, numbered by the same counter, so the
``messages`` page stays one order by ``seq``. Neither is ever sent to the
customer, counted as an answer, nor made the conversation's ``last_message``
(the list keeps showing the last thing the customer or an agent wrote).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime

from domain.entities import Conversation, Member, Message, SystemLine
from domain.enums import MessageKind, SenderKind, SystemAction

# Kinds written into the history only: never sent, never an answer, never the conversation's
# last message, so they never move it in the list either.
HISTORY_ONLY = (MessageKind.NOTE, MessageKind.SYSTEM)
# Kinds that stay inside the organization: a customer-facing view (the web widget, an
# email thread) leaves them out.
HIDDEN_FROM_CUSTOMERS = HISTORY_ONLY


def customer_can_see(message: Message) -> bool:
    """Whether the customer may be shown ``message``: never an internal note or a system line.

    Automatic messages *to* the customer (sender SYSTEM, kind TEXT) are theirs to see.
    """
    return message.kind not in HIDDEN_FROM_CUSTOMERS


def system_line(
    conversation: Conversation,
    action: SystemAction,
    at: datetime,
    *,
    message_id: str,
    actor_id: str | None = None,
    actor_name: str | None = None,
    target_id: str | None = None,
    target_name: str | None = None,
    note: str | None = None,
    removed: bool = False,
    deactivated: bool = False,
) -> Message:
    """The SYSTEM line recording ``action`` in the history of ``conversation``, as the change
    that reserved the line's number left it (its ``message_seq`` is the line's number:
    see :func:`domain.changes.numbered`).

    ``actor``: who did it (None: the customer, or the server's timer); ``target``: whom it
    concerns when that is someone else (a transfer's new owner, or its team when
    ``target_id`` is None; the owner an admin released it from; a member taken out of the
    team, ``removed``, or whose account was deactivated, ``deactivated`` too); ``note``: a
    transfer's reason. The text is written once, with the names of the moment.
    """
    return Message(
        id=message_id,
        org_id=conversation.org_id,
        conversation_id=conversation.id,
        seq=conversation.message_seq,
        sender_kind=SenderKind.SYSTEM,
        kind=MessageKind.SYSTEM,
        text=line_text(
            action,
            actor_name,
            target_name,
            conversation.customer_name,
            note=note,
            removed=removed,
            deactivated=deactivated,
            about_someone=target_id is not None and target_id != actor_id,
        ),
        created_at=at,
        customer_messages=conversation.customer_messages,
        system=SystemLine(action=action, actor_id=actor_id, target_id=target_id),
    )


def line_text(
    action: SystemAction,
    actor_name: str | None,
    target_name: str | None,
    customer_name: str | None,
    *,
    note: str | None = None,
    removed: bool = False,
    deactivated: bool = False,
    about_someone: bool = False,
) -> str:
    """The line's words. ``removed``: the target was taken out of the team by the actor
    (``deactivated``: their account was deactivated by the actor);
    ``about_someone``: the action concerned someone other than the actor (an admin
    releasing a conversation from its owner)."""
    actor = actor_name or "Someone"
    target = target_name or "someone"
    why = f"account deactivated by {actor}" if deactivated else f"taken out of the team by {actor}"
    match action:
        case SystemAction.JOINED:
            return f"{actor} joined the conversation."
        case SystemAction.LEFT if removed:
            return f"{target} left the conversation ({why})."
        case SystemAction.LEFT:
            return f"{actor} left the conversation."
        case SystemAction.RELEASED if removed:
            return f"{target} left and released the conversation ({why})."
        case SystemAction.RELEASED if about_someone:
            return f"{actor} released the conversation back to the team."
        case SystemAction.RELEASED:
            return f"{actor} left and released the conversation."
        case SystemAction.GRABBED:
            return f"{actor} grabbed the conversation."
        case SystemAction.TRANSFERRED:
            return f"{actor} transferred the conversation to {target}." + (f" Note: {note}" if note else "")
        case SystemAction.CLOSED if actor_name:
            return f"{actor} closed the conversation."
        case SystemAction.CLOSED:
            return "The conversation closed after a period without customer messages."
        case SystemAction.REOPENED:
            return f"{customer_name or 'The customer'} wrote again: the conversation reopened."
    raise AssertionError(f"no text for {action}")  # pragma: no cover


def mentioned(text: str, members: Iterable[Member]) -> list[Member]:
    """Members whose name follows an ``@`` in ``text`` (case-insensitive), in order of first mention.

    ``@`` counts at the start of the text or after a character that is not a letter or digit
    (an email address mentions nobody), and the name must end there (``@Ann`` is not
    ``@Anne``). At each ``@`` the longest matching name wins (``@Ann Lee`` is Ann Lee, not
    Ann); members sharing that name are all mentioned.
    """
    names: dict[str, list[Member]] = {}
    for member in members:
        name = _fold(member.name.strip())
        if name:
            names.setdefault(name, []).append(member)
    longest_first = sorted(names, key=len, reverse=True)
    folded = _fold(text)
    found: dict[str, Member] = {}
    at = folded.find("@")
    while at != -1:
        if at == 0 or not folded[at - 1].isalnum():
            rest = folded[at + 1 :]
            chosen = next((n for n in longest_first if rest.startswith(n) and _ends_word(rest, len(n))), None)
            for member in names.get(chosen, []) if chosen else []:
                found.setdefault(member.id, member)
        at = folded.find("@", at + 1)
    return list(found.values())


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _ends_word(text: str, end: int) -> bool:
    return end == len(text) or not (text[end].isalnum() or text[end] == "_")


__all__ = ["HIDDEN_FROM_CUSTOMERS", "HISTORY_ONLY", "customer_can_see", "line_text", "mentioned", "system_line"]
