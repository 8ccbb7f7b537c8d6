"""The long-lived parts one server process shares: database, store, tokens, bus."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pymongo import AsyncMongoClient

from api.auth import Passwords, Tokens
from api.channels.credentials import ChannelCredentials
from api.metrics import Metrics
from api.settings import Settings
from api.signing import FileLinks
from api.store.files import GridFiles
from api.store.listing import ConversationLister
from api.store.mongo import MongoStore
from api.store.search import MessageSearcher

if TYPE_CHECKING:  # both import the store and settings this module is imported with
    from api.api_keys import ApiKeyRegistry
    from api.delivery.worker import DeliveryWorker
    from api.events import EventLog
    from api.hub import EventHub
    from api.sessions import MemberSessions
    from api.webhooks import WebhookService
    from api.widget.ephemeral import TypingGate
    from api.widget.geo import Geo
    from api.widget.presence import VisitorPresence
    from api.widget.secrets import IdentitySecretBox
    from api.widget.tokens import WidgetTokens


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    client: AsyncMongoClient
    store: MongoStore
    lister: ConversationLister
    searcher: MessageSearcher
    files: GridFiles
    tokens: Tokens
    passwords: Passwords
    credentials: ChannelCredentials
    links: FileLinks | None = None
    events: EventLog | None = None
    hub: EventHub | None = None
    delivery: DeliveryWorker | None = None
    api_keys: ApiKeyRegistry | None = None
    sessions: MemberSessions | None = None  # members' revoked tokens (api/sessions.py)
    webhooks: WebhookService | None = None  # integrators' webhooks (api/webhooks/)
    clock: Callable[[], datetime] = field(default=utc_now)
    metrics: Metrics = field(default_factory=Metrics)
    # the web widget's visitor side (api/widget)
    widget_tokens: WidgetTokens | None = None
    identity_secrets: IdentitySecretBox | None = None
    geo: Geo | None = None
    presence: VisitorPresence | None = None
    typing: TypingGate | None = None
