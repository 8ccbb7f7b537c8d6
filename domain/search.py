"""Message search: which words a query asks for, which messages may match, and the
bounded walk that keeps only messages of conversations the caller may see.

A query is a handful of words; a message matches when its text holds every one
of them as a whole word, case and accents ignored (:func:`holds_all`). The
store's text index only narrows the candidates (MongoDB's ``$text`` ORs the
words, nx-27017's ANDs them); the rule itself is checked here, so both databases
return the same messages. Letters and digits make words; everything else,
quotes and minus signs included, separates them, so nothing a user types
becomes an operator of the text index.

Results come newest first: an agent looking for "the refund message" wants the
recent one, and a date order pages stably where a relevance score would not
(the score of the same message differs between MongoDB and nx-27017).

Visibility is not stored on messages (a transfer or a grab changes it), so the
walk reads candidate messages of the organization in that order, loads their
conversations, and keeps the messages whose conversation the caller may see:
:func:`domain.visibility.visible_criteria` evaluated in memory, the same rule
the conversation list compiles into its query. Each request examines at most
:data:`MAX_EXAMINED` candidates; a page may then hold fewer results than asked
while more may follow, and its cursor resumes after the last candidate examined.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.criteria import Criteria, all_of, matches
from domain.entities import Conversation, Message
from domain.enums import MessageKind
from domain.errors import invalid
from domain.listing import MAX_SEARCH_LENGTH, ConversationFilter, narrowing_criteria, status_selection
from domain.status import Thresholds
from domain.visibility import Viewer

MAX_QUERY_LENGTH = MAX_SEARCH_LENGTH
MAX_TERMS = 8
# Candidates (messages holding the words, in any conversation of the organization) examined per
# request, read in one round trip: each read makes the text index match and sort every message
# holding the words (1-4 s for a word in a third of 500,000 messages on nx-27017), so one
# read of 500 candidates beats five of 100 for a caller who sees a tenth of the organization.
MAX_EXAMINED = 500
BATCH = 500
# The conversation list's `search` also matches conversations among the newest this many
# messages of the organization holding the words.
MAX_CONVERSATION_MATCHES = 500
# SYSTEM lines ("Ana joined") are written by the server and name members: a search for an
# agent's name would return every line they joined or left. Notes are searchable (agents only).
UNSEARCHABLE_KINDS = (MessageKind.SYSTEM,)

_WORD = re.compile(r"[^\W_]+")  # letters and digits, as the text indexes split words


def fold(text: str) -> str:
    """Case and accents ignored: "Parcél" and "PARCEL" fold alike."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> tuple[str, ...]:
    """The distinct words of ``text``, folded, in order."""
    return tuple(dict.fromkeys(_WORD.findall(fold(text))))


def holds_all(text: str | None, terms: tuple[str, ...]) -> bool:
    """Whether ``text`` holds every one of ``terms`` (folded words) as a whole word."""
    return bool(text) and set(terms) <= set(words(text or ""))


def query_terms(query: str) -> tuple[str, ...]:
    """The words a ``searchMessages`` query asks for; refused when empty, too long or too many."""
    if len(query) > MAX_QUERY_LENGTH:
        raise invalid(f"`query` is limited to {MAX_QUERY_LENGTH} characters.", "query")
    terms = words(query)
    if not terms:
        raise invalid("`query` must contain at least one word (letters or digits).", "query")
    if len(terms) > MAX_TERMS:
        raise invalid(f"`query` is limited to {MAX_TERMS} different words.", "query")
    return terms


def list_terms(search: str | None) -> tuple[str, ...]:
    """The words of the conversation list's ``search`` that its message-text match looks for
    (none for a search without a word, such as "+"); the list's own checks bound its length."""
    if not search or len(search) > MAX_SEARCH_LENGTH:
        return ()
    return words(search)[:MAX_TERMS]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a walk stands in newest-first order: the last message examined, and how many
    messages with its ``created_at`` were examined (ties share a millisecond)."""

    created_at: datetime
    message_id: str
    ties: int


@dataclass(frozen=True, slots=True)
class Hit:
    message: Message
    conversation: Conversation
    position: Position


@dataclass(frozen=True, slots=True)
class Found:
    hits: list[Hit]
    has_next: bool
    end: Position | None  # where the next page resumes (after the last candidate examined)
    examined: int


class MessageMatches(Protocol):
    """What the walk needs from the store."""

    async def matching_messages(
        self, org_id: str, terms: tuple[str, ...], after: Position | None, limit: int
    ) -> list[Message]:
        """Candidates: messages of the organization the text index finds for the terms (all of
        them, or any: :func:`holds_all` decides), newest first (then by id, descending),
        strictly after ``after``; never a kind in :data:`UNSEARCHABLE_KINDS`."""
        ...

    async def conversations_by_ids(self, org_id: str, ids: list[str]) -> list[Conversation]: ...


def conversation_criteria(viewer: Viewer, flt: ConversationFilter, now: datetime, t: Thresholds) -> Criteria:
    """Which conversations' messages a search may return: those the caller sees, narrowed by the
    filter. Unlike the list, no status means every status (closed conversations included)."""
    narrowing = narrowing_criteria(viewer, flt)
    return all_of(narrowing, status_selection(flt, now, t)) if flt.statuses else narrowing


async def search_messages(
    store: MessageMatches,
    viewer: Viewer,
    terms: tuple[str, ...],
    allowed: Criteria,
    first: int,
    after: Position | None,
) -> Found:
    """Up to ``first`` messages holding ``terms`` in conversations matching ``allowed``."""
    hits: list[Hit] = []
    examined = 0
    position = after
    exhausted = False
    conversations: dict[str, Conversation] = {}
    while len(hits) <= first and examined < MAX_EXAMINED:
        limit = min(max(BATCH, first + 1), MAX_EXAMINED - examined)
        # one more than examined: whether any candidate follows, so the last page says it is last
        batch = await store.matching_messages(viewer.org_id, terms, position, limit + 1)
        exhausted = len(batch) <= limit
        batch = batch[:limit]
        examined += len(batch)
        if batch:
            ids = list(dict.fromkeys(m.conversation_id for m in batch))
            conversations = {c.id: c for c in await store.conversations_by_ids(viewer.org_id, ids)}
        for message in batch:
            position = _advance(position, message)
            conversation = conversations.get(message.conversation_id)
            if conversation is not None and holds_all(message.text, terms) and matches(allowed, conversation):
                hits.append(Hit(message, conversation, position))
        if exhausted:
            break
    if len(hits) > first:
        return Found(hits[:first], has_next=True, end=hits[first - 1].position if first else after, examined=examined)
    end = hits[-1].position if hits else after
    if not exhausted:
        end = position  # the candidate limit was reached: resume after the last one examined
    return Found(hits, has_next=not exhausted, end=end, examined=examined)


def _advance(position: Position | None, message: Message) -> Position:
    if position is not None and position.created_at == message.created_at:
        return Position(message.created_at, message.id, position.ties + 1)
    return Position(message.created_at, message.id, 1)
