"""Per-request state: the caller, the moment the request is judged at, and batch loaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from api.services import Services
from domain.entities import ApiKey, Conversation, Customer, Member
from domain.visibility import Viewer, Visibility, visibility_of

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


def now_or_later(loader: DataLoader[K, V], key: K, shape: Callable[[V], R]) -> R | Awaitable[R]:
    """``shape`` of the loader's value for ``key``: at once when it is already loaded
    (:func:`api.graphql.prefetch.prefetch_page`), else once its batch has run.

    A resolver answering at once keeps its object's completion synchronous in
    graphql-core, which is much cheaper than awaiting a finished future.
    """
    future = loader.cache_map.get(key) if loader.cache else None
    if future is not None and future.done() and not future.cancelled() and future.exception() is None:
        return shape(future.result())
    return _later(loader.load(key), shape)


def many_now_or_later(loader: DataLoader[K, V], keys: list[K], shape: Callable[[list[V]], R]) -> R | Awaitable[R]:
    """:func:`now_or_later` for several keys."""
    futures = [loader.cache_map.get(key) for key in keys] if loader.cache else [None]
    if all(f is not None and f.done() and not f.cancelled() and f.exception() is None for f in futures):
        return shape([f.result() for f in futures])  # type: ignore[union-attr]  # all checked above
    return _later(loader.load_many(keys), shape)


async def _later(awaitable: Awaitable[Any], shape: Callable[[Any], R]) -> R:
    return shape(await awaitable)


@dataclass
class Context:
    services: Services
    viewer: Viewer | None
    now: datetime
    request: Any = None
    response: Any = None
    request_id: str = "-"
    connection_params: dict | None = None
    database_unavailable: bool = False
    client_address: str = "-"
    token_expires_at: float | None = None  # unix time; a WebSocket is closed then
    token_claims: Any = None  # a member's WebSocket: its token's api.auth.Claims, closed when they are cut
    deadline: Any = None  # the HTTP request's asyncio.Timeout (api.graphql.view.GraphQLView.execute_single)
    member_online: bool = False  # this WebSocket keeps its member online until it closes
    loaders: Loaders = field(init=False)
    _visibility: tuple[Viewer, Visibility] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self)

    def visibility(self) -> Visibility:
        """What the caller may see, worked out once per viewer (realtime judges every event by it)."""
        viewer = self.viewer
        assert viewer is not None, "asked only for signed-in callers (subscriptions, shared operations)"
        if self._visibility is None or self._visibility[0] is not viewer:
            self._visibility = (viewer, visibility_of(viewer))
        return self._visibility[1]

    def refresh(self, viewer: Viewer | None, now: datetime) -> None:
        """Subscriptions re-judge each event at its own moment with fresh loaders."""
        self.viewer = viewer
        self.now = now
        self.loaders = Loaders(self)


class Loaders:
    """One MongoDB command per kind of related object, whatever the page size."""

    def __init__(self, context: Context) -> None:
        store = context.services.store

        def org() -> str:
            return context.viewer.org_id if context.viewer else ""

        async def customers(ids: list[str]) -> list[Customer | None]:
            found = {c.id: c for c in await store.customers_by_ids(org(), list(set(ids)))}
            return [found.get(i) for i in ids]

        async def members(ids: list[str]) -> list[Member | None]:
            found = {m.id: m for m in await store.members_by_ids(org(), list(set(ids)))}
            return [found.get(i) for i in ids]

        async def conversations(ids: list[str]) -> list[Conversation | None]:
            found = {c.id: c for c in await store.conversations_by_ids(org(), list(set(ids)))}
            return [found.get(i) for i in ids]

        async def apps(ids: list[str]) -> list[ApiKey | None]:
            found = {k.id: k for k in await store.api_keys.by_ids(org(), list(set(ids)))}
            return [found.get(i) for i in ids]

        self.customer = DataLoader(load_fn=customers)
        self.app = DataLoader(load_fn=apps)
        self.conversation = DataLoader(load_fn=conversations)
        self.member = DataLoader(load_fn=members)
