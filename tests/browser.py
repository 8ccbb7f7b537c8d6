"""A real browser for the tests: Debian's Chromium driven by Playwright.

Playwright's own browser download can't work on these machines, so the tests
drive the system package (`.ci/run` installs it with apt-get when missing).
Pages are served from a second loopback port, which makes them a different
origin from the API server, exactly as a frontend on its own host would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import uvicorn
from playwright.async_api import async_playwright
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from api.embedded import free_port
from tests.serving import start_serving

CHROMIUM = os.environ.get("IMBRACE_TEST_CHROMIUM", "/usr/bin/chromium")


class PageHost:
    """Serves fixed HTML pages from its own origin (http://127.0.0.1:<port>), each with
    ``headers`` (a Content-Security-Policy, say) when given."""

    def __init__(self, pages: dict[str, str], headers: dict[str, str] | None = None) -> None:
        self.port = free_port()
        routes = [Route(path, _page(html, headers)) for path, html in pages.items()]
        self.server = uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self.task: asyncio.Task | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> PageHost:
        self.task = await start_serving(self.server)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


def _page(html: str, headers: dict[str, str] | None = None):
    async def endpoint(request):
        return HTMLResponse(html, headers=headers)

    return endpoint


@contextlib.asynccontextmanager
async def chromium():
    """A headless Chromium; its console is echoed into the test's output on failure."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()
