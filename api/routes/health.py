"""Liveness that means something: 200 only when the database answers."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse


async def healthz(request: Request) -> JSONResponse:
    store = request.app.state.services.store
    try:
        await asyncio.wait_for(store.ping(), timeout=1.5)
    except Exception:  # any failure to answer is "unavailable", whatever its kind
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "up"})
