"""GraphQL answers as JSON bytes.

A conversations page is about 30 KB of JSON; the standard library's encoder spent
8% of the page's CPU on it, orjson (C) a small fraction of that. Its output is the
same JSON, except that text outside ASCII is written as UTF-8 rather than ``\\u``
escapes (the body is ``application/json``, UTF-8 by definition).

orjson refuses what the standard library writes anyway: a string holding a lone
surrogate (a damaged stored document can, see tests/test_hostile_input.py) or an
integer beyond 64 bits. Those answers take the standard library's path, so a
damaged document still answers as it did.
"""

from __future__ import annotations

import json

import orjson


def encode(data: object) -> bytes:
    """``data`` as compact JSON (no spaces)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode()
