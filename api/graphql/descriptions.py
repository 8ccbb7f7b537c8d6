"""Descriptions shared by several parts of the schema.

A mutation's description ends with the error codes it can return, each with
why, as GitHub's and Saleor's schemas document theirs. The codes are passed as
:class:`domain.enums.ErrorCode` members, so a renamed or removed code breaks
the import rather than leaving the documentation wrong.
"""

from __future__ import annotations

from domain.enums import ErrorCode

AUTHENTICATION = (
    "Needs `Authorization: Bearer <token>`; without a valid token the whole request fails with "
    "the top-level error `UNAUTHENTICATED`."
)
ERRORS_HEADING = "Error codes in `errors`:"


def mutation_description(summary: str, errors: dict[ErrorCode, str], *, public: bool = False) -> str:
    """``summary``, then each code in ``errors`` with its reason, then whether a token is needed."""
    if not errors:
        raise ValueError("a mutation documents the error codes it can return")
    lines = [summary, "", ERRORS_HEADING]
    lines += [f"- `{code.value}`: {reason}" for code, reason in errors.items()]
    lines += ["", "Needs no token." if public else AUTHENTICATION]
    return "\n".join(lines)
