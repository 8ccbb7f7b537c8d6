"""Unread state: how many of the customer's messages a member has not read yet.

One rule for a row of the list, a conversation inside a realtime event and the
badges' counts. Each member's read mark lives on the conversation
(:attr:`domain.entities.Conversation.reads`): read up to message number ``seq``,
which came after ``customer_messages`` customer messages. The conversation counts
its customer messages (``customer_messages``, taken with each customer message's
number), so a row's unread count is a subtraction on the document the list
already reads: no command per row, none per page.

Only the customer's messages count: a colleague's reply, an internal note or a
system line is never "unread". A mark that reaches the newest message the
conversation shows (``last_message``) reads everything, so a number taken by a
customer message that was never stored (a provider's retry losing a race)
can't leave a row unread for ever.

For counting without reading the rows, the conversation also lists the members
who have read everything the customer wrote (``read_by``), emptied by every
customer message: "unread for me" is then ``customer_messages > 0`` and
``read_by`` lacking me, a filter the badges' indexed counts take as it is.
"""

from __future__ import annotations

from domain.criteria import Criteria, Gt, Lacks, Lte, all_of
from domain.entities import Conversation, ReadMark


def has_read_everything(conversation: Conversation, mark: ReadMark | None) -> bool:
    """Whether ``mark`` covers every customer message ``conversation`` shows."""
    if mark is None:
        return conversation.customer_messages == 0
    newest = conversation.last_message
    return conversation.customer_messages <= mark.customer_messages or (newest is not None and newest.seq <= mark.seq)


def unread_count(conversation: Conversation, member_id: str) -> int:
    """The customer's messages after the member's read mark (all of them without one)."""
    mark = conversation.read_mark(member_id)
    if has_read_everything(conversation, mark):
        return 0
    return max(0, conversation.customer_messages - (mark.customer_messages if mark else 0))


def everything_read_condition(conversation: Conversation, mark: ReadMark) -> Criteria | None:
    """The condition under which ``mark`` still covers every customer message, as judged on
    ``conversation`` just read; None when it doesn't. Part of the update that records the
    mark, so a customer message stored in between keeps the member out of ``read_by``."""
    if conversation.customer_messages <= mark.customer_messages:
        return Lte("customer_messages", mark.customer_messages)
    newest = conversation.last_message
    if newest is not None and newest.seq <= mark.seq:
        return Lte("last_message.seq", mark.seq)
    return None


def unread_criteria(member_id: str) -> Criteria:
    """Conversations with customer messages the member has not read (for the counts)."""
    return all_of(Gt("customer_messages", 0), Lacks("read_by", member_id))


__all__ = ["everything_read_condition", "has_read_everything", "unread_count", "unread_criteria"]
