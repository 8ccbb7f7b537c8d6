"""Each change of a conversation, described once as data.

A :class:`Change` says which fields are set, cleared, added to or removed from
a set, incremented or lowered, and under which condition (a
:mod:`domain.criteria` tree). :func:`apply` makes it on a conversation in
memory (what a use case expects to come out); the store compiles the very same
value into one conditional MongoDB update (``api/store/changes.py``). One
description, two interpreters, as for criteria: the conversation a use case
computes and the document the database keeps can't drift apart.

Semantics follow MongoDB's update operators: ``add`` appends only what is not
there yet (``$addToSet``), ``remove`` takes out every equal element
(``$pull``), ``inc`` counts a missing number as 0, ``lower`` sets a missing
field or a larger one (``$min``), ``mark`` raises one member's read mark in
``reads`` (a ``$max`` of each of its parts). Nothing is set to ``None``: a field is
cleared (``$unset``), because explicit nulls match differently on nx-27017.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from domain.criteria import Absent, All, Contains, Criteria, Eq, Lte, all_of, matches
from domain.entities import Conversation, ReadMark
from domain.enums import ClosedReason

ALWAYS: Criteria = All(())
_FIELDS = frozenset(f.name for f in fields(Conversation))


@dataclass(frozen=True, slots=True)
class Change:
    """What one update does to a conversation; nothing happens unless ``when`` holds.

    Treat the mappings as read-only: a change is a value, shared freely.
    """

    when: Criteria = ALWAYS
    set: dict[str, Any] = field(default_factory=dict)
    clear: tuple[str, ...] = ()
    add: dict[str, Any] = field(default_factory=dict)
    remove: dict[str, Any] = field(default_factory=dict)
    inc: dict[str, int] = field(default_factory=dict)
    lower: dict[str, Any] = field(default_factory=dict)
    mark: ReadMark | None = None

    def __post_init__(self) -> None:
        # MongoDB refuses an update naming one path twice, and the entity has only its fields.
        named = [*self.set, *self.clear, *self.add, *self.remove, *self.inc, *self.lower]
        if self.mark is not None:
            named.append("reads")
        if len(named) != len(set(named)):
            raise ValueError(f"a field is changed twice: {named}")
        if unknown := set(named) - _FIELDS:
            raise ValueError(f"not conversation fields: {sorted(unknown)}")
        if any(value is None for part in (self.set, self.add, self.remove, self.lower) for value in part.values()):
            raise ValueError("None is never stored: clear the field instead")

    def provided(self, condition: Criteria) -> Change:
        """The same change, made only if ``condition`` also holds."""
        return replace(self, when=all_of(self.when, condition))


def assign(**values: Any) -> Change:
    """Set the fields given a value, clear those given ``None``."""
    return Change(
        set={k: v for k, v in values.items() if v is not None}, clear=tuple(k for k, v in values.items() if v is None)
    )


def merge(*changes: Change) -> Change:
    """All the changes in one update, under all their conditions."""
    marks = [c.mark for c in changes if c.mark is not None]
    if len(marks) > 1:
        raise ValueError("one read mark per update")
    return Change(
        mark=marks[0] if marks else None,
        when=all_of(*(c.when for c in changes if c.when != ALWAYS)),
        set={k: v for c in changes for k, v in c.set.items()},
        clear=tuple(k for c in changes for k in c.clear),
        add={k: v for c in changes for k, v in c.add.items()},
        remove={k: v for c in changes for k, v in c.remove.items()},
        inc={k: v for c in changes for k, v in c.inc.items()},
        lower={k: v for c in changes for k, v in c.lower.items()},
    )


def apply(change: Change, conversation: Conversation) -> Conversation | None:
    """The conversation after ``change``, or None when its condition doesn't hold
    (the store's update would match no document)."""
    return effect(change, conversation) if matches(change.when, conversation) else None


def effect(change: Change, conversation: Conversation) -> Conversation:
    """The conversation as ``change`` leaves it, its condition taken as holding: what a
    use case expects from a change it asks for on the conversation it has just read."""
    values: dict[str, Any] = dict(change.set)
    values.update({name: None for name in change.clear})
    for name, value in change.add.items():
        current = getattr(conversation, name)
        values[name] = current if value in current else (*current, value)
    for name, value in change.remove.items():
        values[name] = tuple(v for v in getattr(conversation, name) if v != value)
    for name, by in change.inc.items():
        values[name] = (getattr(conversation, name) or 0) + by
    for name, value in change.lower.items():
        current = getattr(conversation, name)
        values[name] = value if current is None else min(current, value)
    if change.mark is not None:
        values["reads"] = raised(conversation.reads, change.mark)
    return replace(conversation, **values)


def raised(reads: tuple[ReadMark, ...], mark: ReadMark) -> tuple[ReadMark, ...]:
    """The marks with ``mark`` taken in: each of its parts only ever goes up; ordered by member."""
    current = next((r for r in reads if r.member_id == mark.member_id), None)
    if current is not None:
        mark = ReadMark(
            member_id=mark.member_id,
            seq=max(current.seq, mark.seq),
            customer_messages=max(current.customer_messages, mark.customer_messages),
            at=max(current.at, mark.at),
        )
    return tuple(sorted((*(r for r in reads if r.member_id != mark.member_id), mark), key=lambda r: r.member_id))


def as_read(conversation: Conversation, *names: str) -> Criteria:
    """The named fields still hold what ``conversation`` was read with (a write in
    between makes a decision taken on that read fail, instead of landing stale)."""
    return all_of(*(Absent(n) if (v := getattr(conversation, n)) is None else Eq(n, v) for n in names))


OPEN: Criteria = Absent("closed_at")


# The changes the use cases and the sweeper make.


def join(member_id: str, now: datetime, *, team_id: str | None = None) -> Change:
    """Into the room; given ``team_id``, only while the conversation is still that team's
    (a transfer in between may have taken it out of the joiner's sight)."""
    when = OPEN if team_id is None else all_of(OPEN, Eq("team_id", team_id))
    return Change(when=when, add={"participants": member_id}, set={"updated_at": now})


def grab(member_id: str, now: datetime, *, team_id: str) -> Change:
    """The whole race in one condition: only a still-unowned open conversation of the
    grabber's team is taken (not one transferred away in between)."""
    return Change(
        when=all_of(Absent("owner_id"), OPEN, Eq("team_id", team_id)),
        set={"owner_id": member_id, "updated_at": now},
        add={"participants": member_id},
    )


def transfer(
    before: Conversation, team_id: str, participants: tuple[str, ...], owner_id: str | None, now: datetime
) -> Change:
    """To ``team_id`` (possibly its own, for a new owner): the room becomes ``participants``
    (those who may still see it, and the new owner), owned by ``owner_id`` or by nobody.
    The customer's wait and everything it derives from stay as they are.

    Only if team, owner and room are still as ``before`` was read: a grab, join, leave,
    release, transfer or close in between makes it fail instead of landing stale (the room
    is set whole, so a join it didn't see would otherwise be undone, or kept unchecked).
    """
    return merge(
        Change(
            when=all_of(OPEN, as_read(before, "team_id", "owner_id", "participants")),
            set={"team_id": team_id, "participants": participants, "updated_at": now},
        ),
        assign(owner_id=owner_id),
    )


def release(before: Conversation, now: datetime) -> Change:
    """A grabbed conversation back to its team's queue: no owner, the owner out of the room
    (admins in it stay). Only if it is still the same team's and still that member's."""
    owner = before.owner_id
    if owner is None:
        raise ValueError("only an owned conversation is released")
    return Change(
        when=all_of(OPEN, as_read(before, "team_id", "owner_id")),
        clear=("owner_id",),
        remove={"participants": owner},
        set={"updated_at": now},
    )


def leave(member_id: str, now: datetime, *, release: bool) -> Change:
    """Out of the room; ``release`` also gives up ownership (only if the member still owns it)."""
    change = Change(
        when=Contains("participants", member_id), remove={"participants": member_id}, set={"updated_at": now}
    )
    if release:
        change = merge(change, Change(when=Eq("owner_id", member_id), clear=("owner_id",)))
    return change


def close(reason: ClosedReason, at: datetime, now: datetime) -> Change:
    """Everyone leaves the room; a grabbed conversation keeps its owner, so its
    history stays private to the owner and admins until the customer writes again."""
    return Change(
        when=OPEN,
        set={
            "closed_at": at,
            "closed_reason": reason,
            "participants": (),
            "updated_at": now,
            "announced_status": "CLOSED",
        },
        clear=("waiting_since", "next_due_at"),
    )


def take_number(member_id: str | None = None) -> Change:
    """Reserve the next message number; a member's only while they are in the open room.
    Without a member it is a customer message's, also counted in ``customer_messages``
    (in the same update, so the message knows how many customer messages it closes)."""
    if member_id is None:
        return Change(inc={"message_seq": 1, "customer_messages": 1})
    return Change(when=all_of(Contains("participants", member_id), OPEN), inc={"message_seq": 1})


def number_line() -> Change:
    """Reserve the next message number for an internal note or a system line: at any time,
    and nothing else moves (no waiting, no answer, no last message)."""
    return Change(inc={"message_seq": 1})


def numbered(change: Change) -> Change:
    """``change`` also reserving the number of the system line that records it: the line
    costs no extra update, and the conversation the change returns carries its number."""
    return merge(change, number_line())


def mark_read(mark: ReadMark) -> Change:
    """Raise the member's read mark (never lowered)."""
    return Change(mark=mark)


def read_to_the_end(member_id: str, condition: Criteria) -> Change:
    """The member has read everything the customer wrote, if ``condition`` still holds."""
    return Change(when=condition, add={"read_by": member_id})


def take_open_number() -> Change:
    """Reserve the next message number while the conversation is open: an app's reply
    (apps are never in a room)."""
    return Change(when=OPEN, inc={"message_seq": 1})


def wake(now: datetime, due_by: datetime) -> Change:
    """A customer message on an open conversation: it waits from its first unanswered
    message (``lower`` sets it only if unset), and is due no later than ``due_by``; nobody
    has read it yet (``read_by`` emptied)."""
    return Change(
        when=OPEN,
        set={"last_customer_message_at": now, "last_message_at": now, "updated_at": now, "read_by": ()},
        lower={"waiting_since": now, "next_due_at": due_by},
        clear=("customer_wrote_at",),  # they wrote: silence and windows count from now again
    )


def reopen(before: Conversation, now: datetime, next_due_at: datetime | None) -> Change:
    """A customer message on a closed conversation (closed, or silent too long) opens
    it afresh: empty room, no owner, waiting from now. Only if it is still as
    ``before`` was read, which every reopen changes, so concurrent messages reopen once."""
    return merge(
        Change(
            when=as_read(before, "closed_at", "last_customer_message_at"),
            set={
                "last_customer_message_at": now,
                "last_message_at": now,
                "updated_at": now,
                "participants": (),
                "waiting_since": now,
                "reopened_at": now,
                "read_by": (),
            },
            clear=("closed_at", "closed_reason", "owner_id", "announced_status", "customer_wrote_at"),
        ),
        assign(next_due_at=next_due_at),
    )


def reengage(
    before: Conversation, member_id: str, owner_id: str | None, now: datetime, next_due_at: datetime | None
) -> Change:
    """A member re-engages the customer of a closed WhatsApp conversation (with a template):
    it opens again with the member alone in the room, owned by ``owner_id`` (a GRAB team's
    representative who re-engages owns it) or by nobody, and nobody waiting.

    Customer silence (the inactivity close) counts afresh from now, so the conversation is
    not closed again at once: ``last_customer_message_at`` moves to now, and when the
    customer really last wrote is kept in ``customer_wrote_at`` (the WhatsApp window still
    counts from it: free text stays refused) until they write again (:func:`wake`).
    Only if it is still as ``before`` was read: a customer message reopening it in between,
    or another re-engagement, makes it fail.
    """
    wrote = before.customer_last_wrote_at
    assert wrote is not None  # every conversation starts with a customer message
    return merge(
        Change(
            when=as_read(before, "closed_at", "last_customer_message_at"),
            set={
                "last_customer_message_at": now,
                "customer_wrote_at": wrote,
                "updated_at": now,
                "participants": (member_id,),
                "reopened_at": now,
            },
            clear=("closed_at", "closed_reason", "announced_status", "waiting_since"),
        ),
        assign(owner_id=owner_id, next_due_at=next_due_at),
    )


def answer(now: datetime, next_due_at: datetime | None) -> Change:
    """A member's reply stamped ``now``: the customer no longer waits, unless they wrote
    after it or it was closed in between."""
    return merge(
        Change(
            when=all_of(OPEN, Lte("last_customer_message_at", now)),
            set={"last_message_at": now, "updated_at": now},
            clear=("waiting_since", "announced_status"),
        ),
        assign(next_due_at=next_due_at),
    )


def announce(status: str, next_due_at: datetime | None) -> Change:
    """The sweeper has told everyone of ``status``; the next moment to look again."""
    return merge(Change(set={"announced_status": status}), assign(next_due_at=next_due_at))


def reschedule(next_due_at: datetime | None) -> Change:
    return assign(next_due_at=next_due_at)


__all__ = [
    "ALWAYS",
    "Change",
    "OPEN",
    "announce",
    "answer",
    "apply",
    "as_read",
    "assign",
    "close",
    "effect",
    "grab",
    "join",
    "leave",
    "mark_read",
    "merge",
    "number_line",
    "numbered",
    "raised",
    "read_to_the_end",
    "release",
    "reengage",
    "reopen",
    "reschedule",
    "take_number",
    "take_open_number",
    "transfer",
    "wake",
]
