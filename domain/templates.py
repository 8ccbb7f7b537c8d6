"""Message templates: ``{{variable}}`` placeholders filled from the agent's variables."""

from __future__ import annotations

import re
from typing import Any

from domain.errors import invalid

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(body: str) -> list[str]:
    return list(dict.fromkeys(_PLACEHOLDER.findall(body)))


def render(body: str, variables: dict[str, Any] | None) -> str:
    """Fill every placeholder; a missing variable is the caller's mistake, not a blank."""
    variables = variables or {}
    missing = [name for name in placeholders(body) if name not in variables]
    if missing:
        raise invalid(f"Missing template variables: {', '.join(missing)}.", "variables")
    return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), body)
