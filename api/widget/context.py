"""Per-request state of the visitor's schema: the session, the moment, and member names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strawberry.dataloader import DataLoader

from domain.widget import VisitorSession


@dataclass
class WidgetContext:
    services: Any
    session: VisitorSession | None
    now: datetime
    request: Any = None
    response: Any = None
    request_id: str = "-"
    connection_params: dict | None = None
    client_address: str = "-"
    token_expires_at: float | None = None  # unix time; a WebSocket is closed then (4401)
    deadline: Any = None  # the HTTP request's asyncio.Timeout (api.graphql.view.GraphQLView.execute_single)
    presence_registered: bool = False  # this socket counts for the visitor's presence
    member_names: DataLoader = field(init=False)

    def __post_init__(self) -> None:
        self.refresh(self.now)

    def refresh(self, now: datetime) -> None:
        """Subscriptions judge each event at its own moment, with fresh loaders."""
        self.now = now
        store, context = self.services.store, self

        async def names(ids: list[str]) -> list[str | None]:
            org = context.session.org_id if context.session else ""
            found = {m.id: m.name for m in await store.members_by_ids(org, list(set(ids)))}
            return [found.get(i) for i in ids]

        self.member_names = DataLoader(load_fn=names)
