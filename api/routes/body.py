"""Reading request bodies safely: bounded size, JSON only."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request


class BodyError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it exceeds ``limit`` bytes (whatever Content-Length says)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, "Request body too large.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, "Request body too large.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BodyError(415, "Send JSON with Content-Type: application/json.")
    return json_of(await read_limited(request, limit))


def json_of(body: bytes) -> Any:
    """The JSON value of a body already read (a signed webhook's raw bytes), or a 422."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(422, [{"field": "body", "message": "Body is not valid UTF-8."}]) from None
    try:
        return json.loads(text)
    except RecursionError:
        # a few kilobytes of ``[[[[...`` exhaust the parser's stack: the client's
        # mistake, answered like any other malformed body, not logged as a crash
        raise BodyError(422, [{"field": "body", "message": "JSON nests too deeply."}]) from None
    except ValueError:  # also numbers too long to convert
        raise BodyError(422, [{"field": "body", "message": "Body is not valid JSON."}]) from None
