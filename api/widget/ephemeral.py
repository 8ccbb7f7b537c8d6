"""Typing indicators are told, never stored: this keeps a chatty client from telling too often.

A TYPING event goes through the event log (so every instance's subscribers hear it) but
is never replayed. A client repeats ``typing: true`` every few seconds while its user
types; this instance passes on a repeat of the same state for the same conversation and
actor at most once per ``REPEAT_S``, and a change of state at once.
"""

from __future__ import annotations

import time

REPEAT_S = 2.0
KEPT = 50_000


class TypingGate:
    def __init__(self, repeat_s: float = REPEAT_S) -> None:
        self.repeat_s = repeat_s
        self._last: dict[tuple[str, str | None], tuple[bool, float]] = {}

    def should_tell(self, conversation_id: str, actor_id: str | None, typing: bool) -> bool:
        key = (conversation_id, actor_id)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and last[0] == typing and now - last[1] < self.repeat_s:
            return False
        if len(self._last) >= KEPT:
            self._last.clear()
        self._last[key] = (typing, now)
        return True

    def forget(self, conversation_id: str, actor_id: str | None) -> None:
        """Nothing was told after all (nobody to tell yet): the next one is told at once."""
        self._last.pop((conversation_id, actor_id), None)
