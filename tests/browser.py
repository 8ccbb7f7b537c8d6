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
    """Serves fixed HTML pages from its own origin (http://127.0.0.1:<port>).

    ``pages`` (path -> HTML) may be added to after the start: a page that must name
    this origin's own address, or a key made for it, is written once ``origin`` is known.
    ``headers`` go with every page (a Content-Security-Policy, say).
    """

    def __init__(self, pages: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.pages = dict(pages or {})
        self.headers = dict(headers or {})
        routes = [Route("/{path:path}", self._serve)]
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

    async def _serve(self, request) -> HTMLResponse:
        html = self.pages.get(request.url.path)
        if html is None:
            return HTMLResponse("Not found", status_code=404)
        return HTMLResponse(html, headers=self.headers)


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
