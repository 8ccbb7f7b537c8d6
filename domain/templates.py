"""Message templates: ``{{variable}}`` placeholders filled from the agent's variables."""

from __future__ import annotations

import re
from typing import Any

from domain.errors import invalid
from domain.validation import MAX_TEXT_LENGTH

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(body: str) -> list[str]:
    return list(dict.fromkeys(_PLACEHOLDER.findall(body)))


def render(body: str, variables: dict[str, Any] | None, *, max_length: int = MAX_TEXT_LENGTH) -> str:
    """Fill every placeholder; a missing variable is the caller's mistake, not a blank.

    Built piece by piece and refused as soon as the output passes ``max_length``
    (the message limit): a body repeating one placeholder hundreds of times with
    a large variable would otherwise build hundreds of megabytes before the
    length check could refuse it.
    """
    variables = variables or {}
    missing = [name for name in placeholders(body) if name not in variables]
    if missing:
        raise invalid(f"Missing template variables: {', '.join(missing)}.", "variables")
    values = {name: str(variables[name]) for name in placeholders(body)}
    parts: list[str] = []
    size = 0
    position = 0
    for match in _PLACEHOLDER.finditer(body):
        for piece in (body[position : match.start()], values[match.group(1)]):
            size += len(piece)
            if size > max_length:
                raise invalid(f"Message text is limited to {max_length} characters.", "text")
            parts.append(piece)
        position = match.end()
    tail = body[position:]
    if size + len(tail) > max_length:
        raise invalid(f"Message text is limited to {max_length} characters.", "text")
    parts.append(tail)
    return "".join(parts)
