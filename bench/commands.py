"""MongoDB commands per request, counted in-process.

The app is built with ``api.app.create_app(settings, listeners=[...])`` against
the benchmark's database and driven through httpx's ASGI transport (its
lifespan runs, so the hub, sweeper and outbox run too). Each request carries a
tag in a context variable; only commands started while serving it count, so
the background workers' commands stay out.
"""

from __future__ import annotations

import contextvars
from collections import defaultdict
from pathlib import Path

import httpx
from pymongo import monitoring

from api.app import create_app
from api.settings import Settings
from bench.common import JWT_SECRET, THRESHOLD_ENV
from domain.status import Thresholds

_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_request_tag", default=None)
IGNORED = {"ping", "endSessions", "hello", "isMaster", "ismaster", "getMore", "killCursors"}


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.by_tag: dict[str, list[str]] = defaultdict(list)
        self.get_more: dict[str, int] = defaultdict(int)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        tag = _TAG.get()
        if tag is None:
            return
        if event.command_name == "getMore":
            self.get_more[tag] += 1
        if event.command_name not in IGNORED:
            self.by_tag[tag].append(f"{event.command_name} {event.command.get(event.command_name)}")

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def _tagged(app):
    async def tagged(scope, receive, send):
        tag = dict(scope.get("headers") or []).get(b"x-bench-tag") if scope["type"] == "http" else None
        token = _TAG.set(tag.decode() if tag else None)
        try:
            await app(scope, receive, send)
        finally:
            _TAG.reset(token)

    return tagged


def bench_settings(mongodb_uri: str, workdir: Path) -> Settings:
    return Settings(
        mongodb_uri=mongodb_uri,
        database="imbrace",
        data_dir=workdir,
        jwt_secret=JWT_SECRET,
        thresholds=Thresholds(
            soon_after_s=float(THRESHOLD_ENV["IMBRACE_SOON_AFTER_S"]),
            overdue_after_s=float(THRESHOLD_ENV["IMBRACE_OVERDUE_AFTER_S"]),
            auto_close_after_s=float(THRESHOLD_ENV["IMBRACE_AUTO_CLOSE_AFTER_S"]),
        ),
    )


class InProcess:
    """``async with InProcess(uri, workdir) as app: await app.request(tag, method, url, ...)``.

    ``factory(settings, listeners)`` builds the app: ``api.app.create_app`` or the floor's.
    """

    def __init__(self, mongodb_uri: str, workdir: Path, factory=create_app) -> None:
        self.commands = Commands()
        self.app = factory(bench_settings(mongodb_uri, workdir), [self.commands])
        self._lifespan = None
        self.http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> InProcess:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_tagged(self.app)), base_url="http://bench.local", timeout=60
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.aclose()
        await self._lifespan.__aexit__(*exc)

    async def request(self, tag: str, method: str, url: str, **kwargs) -> tuple[httpx.Response, list[str]]:
        headers = dict(kwargs.pop("headers", {}) or {})
        headers["X-Bench-Tag"] = tag
        response = await self.http.request(method, url, headers=headers, **kwargs)
        return response, list(self.commands.by_tag[tag])
