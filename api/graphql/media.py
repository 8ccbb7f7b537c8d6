"""GraphQL over HTTP: which media type an answer uses, and its status code.

The GraphQL-over-HTTP specification adds ``application/graphql-response+json``:
a client that accepts it gets that media type, and a *request error* (the
document doesn't parse or validate, or the variables don't coerce, so
execution never started) is answered with a 4xx status and no ``data`` entry.
Clients that accept only ``application/json`` (every client written before
the specification) keep today's answers: status 200 and ``"data": null``.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from strawberry.types import ExecutionResult

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
REQUEST_ERROR_STATUS = 400


def accepts_graphql_response(headers: Headers) -> bool:
    """Whether the client lists ``application/graphql-response+json`` in ``Accept``
    (with a non-zero quality): the specification's media type is then preferred."""
    for part in headers.get("accept", "").split(","):
        media_type, *params = [piece.strip().lower() for piece in part.split(";")]
        if media_type == GRAPHQL_RESPONSE:
            return _quality(params) > 0
    return False


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def is_request_error(result: ExecutionResult) -> bool:
    """Execution never started: no data, and no error points into a result path."""
    return result.data is None and bool(result.errors) and all(not e.path for e in result.errors or ())
