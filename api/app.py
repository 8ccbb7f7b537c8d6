"""The Starlette application: routes, lifespan (database, background workers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pymongo.errors import ConnectionFailure
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute, request_response
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from api.auth import Passwords, Tokens, load_jwt_secret
from api.cors import cross_origin
from api.embedded import EmbeddedMongo
from api.events import EventLog
from api.graphql.schema import build_schema
from api.hub import EventHub
from api.retention import Retention
from api.sweeper import Sweeper
from api.graphql.view import GraphQLView, refuse_form_posts
from api.metrics import Metrics, TimeHttp, metrics_endpoint
from api.middleware import BodyLimit, RequestId
from api.outbox import Outbox
from api.routes.files import download
from api.routes.health import healthz
from api.routes.inbound import inbound_message, presence
from api.services import Services
from api.settings import Settings
from api.store.database import connect, create_indexes
from api.store.files import GridFiles
from api.store.listing import ConversationLister
from api.store.mongo import MongoStore

log = logging.getLogger("imbrace")
STOP_TIMEOUT_S = 5


class Runtime:
    """Starts what the app needs, in order, and stops it in reverse."""

    def __init__(self, settings: Settings, listeners=None, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.listeners = listeners
        self.embedded: EmbeddedMongo | None = None
        self.services: Services | None = None

    async def start(self, workers: bool = True) -> Services:
        """Connects and prepares the database; ``workers`` also starts the background jobs
        (event hub, sweeper, retention, email outbox) that a serving process runs."""
        uri = self.settings.mongodb_uri
        if uri is None:
            self.embedded = EmbeddedMongo(self.settings.data_dir).start()
            uri = self.embedded.uri
            log.info("embedded MongoDB (nx-27017) on %s, data in %s", uri, self.settings.data_dir)
        client = connect(uri, self.listeners)
        db = client[self.settings.database]
        await create_indexes(db)
        secret = load_jwt_secret(self.settings.jwt_secret, self.settings.data_dir)
        self.services = Services(
            settings=self.settings, client=client, store=MongoStore(db), lister=ConversationLister(db),
            files=GridFiles(db), tokens=Tokens(secret, self.settings.jwt_ttl_s), passwords=Passwords(self.settings.argon2_time_cost, self.settings.argon2_memory_kib),
            events=EventLog(db, self.settings.thresholds, self.metrics), metrics=self.metrics,
        )
        if workers:
            await self._start_workers(db)
        return self.services

    async def _start_workers(self, db) -> None:
        self.hub = EventHub(db, self.metrics)
        await self.hub.start()
        self.services.hub = self.hub
        self.services.events.on_publish = self.hub.wake
        self.sweeper = Sweeper(db, self.services.events, self.settings.thresholds, self.settings.sweep_interval_s,
                               self.services.clock, self.metrics)
        self.sweeper.start()
        self.retention = Retention(db, self.settings.event_retention_s, self.settings.login_window_s,
                                   self.services.clock)
        self.retention.start()
        self.outbox = Outbox(self.services)
        self.outbox.start()

    async def stop(self) -> None:
        for worker in ("outbox", "retention", "sweeper", "hub"):
            if getattr(self, worker, None) is not None:
                try:  # a worker stuck on a dead database must not hold shutdown forever
                    await asyncio.wait_for(getattr(self, worker).stop(), timeout=STOP_TIMEOUT_S)
                except (asyncio.TimeoutError, Exception):
                    log.warning("%s did not stop cleanly", worker, exc_info=True)
        if self.services is not None:
            await self.services.client.close()
        if self.embedded is not None:
            self.embedded.stop()


async def database_unavailable(request, exc) -> JSONResponse:
    """Webhooks and file downloads answer 503 (retry later), never a 500 trace, while MongoDB is down."""
    log.warning("database unavailable: %s", exc)
    return JSONResponse({"error": "The database is unavailable. Retry later."}, status_code=503,
                        headers={"Retry-After": "2"})


def create_app(settings: Settings | None = None, listeners=None) -> Starlette:
    settings = settings or Settings.from_env()
    metrics = Metrics()
    runtime = Runtime(settings, listeners, metrics)
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        services = await runtime.start()
        app.state.services = services
        holder["view"].services = services
        try:
            yield
        finally:
            await runtime.stop()

    protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL] + ([GRAPHQL_WS_PROTOCOL] if settings.legacy_ws else [])
    view = GraphQLView(
        services=None, schema=build_schema(settings), multiplex=settings.shared_execution, graphql_ide="graphiql",
        allow_queries_via_get=True,
        keep_alive=True, keep_alive_interval=settings.ws_keepalive_s, subscription_protocols=protocols,
        multipart_uploads_enabled=True, max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allowed_origins=settings.allowed_origins, metrics=metrics,
    )
    holder["view"] = view
    multipart_limit = 2 * (settings.messaging.max_upload_bytes + 1) + settings.max_body_bytes
    graphql_http = BodyLimit(refuse_form_posts(view), settings.max_body_bytes, multipart_limit)
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/channels/{channel_id}/inbound", inbound_message, methods=["POST"]),
        Route("/channels/{channel_id}/presence", presence, methods=["POST"]),
        Route("/files/{file_id}", cross_origin(request_response(download), settings.allowed_origins),
              methods=["GET", "OPTIONS"]),
        WebSocketRoute("/graphql", view),
        Route("/graphql", cross_origin(graphql_http, settings.allowed_origins), methods=["GET", "POST", "OPTIONS"]),
    ]
    if settings.metrics:
        routes.append(Route("/metrics", metrics_endpoint(metrics, settings.metrics_token, settings.production),
                            methods=["GET"]))
    middleware = [Middleware(RequestId), Middleware(TimeHttp, metrics=metrics)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={ConnectionFailure: database_unavailable})
    app.state.runtime = runtime
    return app
