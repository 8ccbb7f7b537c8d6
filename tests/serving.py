"""Running a uvicorn server inside the test's own event loop."""

from __future__ import annotations

import asyncio

import uvicorn


async def start_serving(server: uvicorn.Server) -> asyncio.Task:
    """Start ``server`` and return its task once it accepts connections (or raise why it couldn't)."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return task
