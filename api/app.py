"""The Starlette application: routes, lifespan (database, background workers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from typing import Any

from pymongo.errors import ConnectionFailure
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute, request_response
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from api.api_keys import ApiKeyRegistry
from api.auth import Passwords, Tokens, load_jwt_secret
from api.channels.credentials import ChannelCredentials
from api.cors import cross_origin
from api.delivery.setup import build_worker, provider_client
from api.embedded import EmbeddedMongo
from api.events import EventLog
from api.graphiql import graphiql_page
from api.graphql.schema import build_schema
from api.graphql.view import GraphQLView, authenticate_uploads, refuse_form_posts
from api.hub import EventHub
from api.metrics import Metrics, TimeHttp, metrics_endpoint
from api.middleware import BodyLimit, RequestId
from api.retention import Retention
from api.routes import line_webhooks, webhooks, wechat_webhooks
from api.routes.files import download
from api.routes.health import healthz
from api.routes.inbound import inbound_message, presence
from api.secrets import SecretBox, load_secret_key
from api.services import Services, utc_now
from api.sessions import MemberSessions
from api.settings import Settings
from api.signing import FileLinks
from api.store.database import connect, create_indexes
from api.store.files import GridFiles
from api.store.listing import ConversationLister
from api.store.mongo import MongoStore
from api.store.search import MessageSearcher
from api.sweeper import Sweeper
from api.webhooks import WebhookService
from api.widget import assets as widget_assets
from api.widget.ephemeral import TypingGate
from api.widget.geo import Geo
from api.widget.presence import VisitorPresence
from api.widget.secrets import IdentitySecretBox
from api.widget.sessions import sessions as widget_sessions
from api.widget.tokens import WidgetTokens
from api.widget.view import widget_http, widget_view

log = logging.getLogger("imbrace")
STOP_TIMEOUT_S = 5


class Runtime:
    """Starts what the app needs, in order, and stops it in reverse."""

    def __init__(
        self,
        settings: Settings,
        listeners=None,
        embedded: EmbeddedMongo | None = None,
        setup_hint: bool = False,
        metrics: Metrics | None = None,
        clock=utc_now,
    ) -> None:
        """``embedded``: a database already started for this runtime, which it stops with itself.
        ``setup_hint``: log how to create the first organization when there is none (``imbrace serve``).
        ``clock``: the time every request and worker reads (tests move it forward instead of waiting)."""
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.listeners = listeners
        self.embedded = embedded
        self.setup_hint = setup_hint
        self.services: Services | None = None
        # the application's GraphQL schema (create_app sets it); webhooks execute with it
        self.schema: Any = None

    async def start(self, workers: bool = True, share_embedded: bool = False) -> Services:
        """Connects and prepares the database; ``workers`` also starts the background jobs
        (event hub, sweeper, retention, delivery worker) that a serving process runs.
        ``share_embedded`` uses the embedded database a live server already runs on the
        data directory, instead of refusing to start a second one there."""
        # First: a missing or malformed key stops the start before anything runs.
        box = SecretBox(load_secret_key(self.settings.secret_key, self.settings.data_dir, self.settings.production))
        uri = self.settings.mongodb_uri
        if uri is None:
            if self.embedded is None:
                self.embedded = EmbeddedMongo(self.settings.data_dir).start(share=share_embedded)
            uri = self.embedded.uri
            shared = self.embedded.shared_with
            log.info(
                "embedded MongoDB (nx-27017) on %s, data in %s%s",
                uri,
                self.embedded.data_dir,
                f" (shared with the running server, pid {shared.server_pid})" if shared else "",
            )
        client = connect(uri, self.listeners)
        db = client[self.settings.database]
        await create_indexes(db)
        store = MongoStore(db)
        secret = load_jwt_secret(self.settings.jwt_secret, self.settings.data_dir)
        sessions = MemberSessions()
        self.services = Services(
            settings=self.settings,
            client=client,
            store=store,
            lister=ConversationLister(db),
            searcher=MessageSearcher(db),
            files=GridFiles(db),
            tokens=Tokens(secret, self.settings.jwt_ttl_s, sessions),
            passwords=Passwords(self.settings.argon2_time_cost, self.settings.argon2_memory_kib),
            credentials=ChannelCredentials(store, box),
            events=EventLog(store, self.settings.thresholds, self.metrics),
            metrics=self.metrics,
            links=FileLinks(secret, self.settings.public_file_ttl_s),
            clock=self.clock,
            widget_tokens=WidgetTokens(secret, self.settings.widget_session_ttl_s),
            identity_secrets=IdentitySecretBox(box),
            geo=Geo(self.settings.geoip_data_file),
            typing=TypingGate(),
            api_keys=ApiKeyRegistry(store, self.clock),
            sessions=sessions,
        )
        self.services.presence = VisitorPresence(self.services)
        self.services.webhooks = WebhookService(self.services, self._schema, box)
        if workers:
            await self._start_workers()
        else:
            await sessions.load(store)
        if self.setup_hint and not await self.services.store.any_organization():
            log.warning(
                "The database has no organization yet. Create the first one with:\n  %s",
                init_command_line(self.settings),
            )
        return self.services

    def _schema(self):
        if self.schema is None:
            self.schema = build_schema(self.settings)
        return self.schema

    async def _start_workers(self) -> None:
        services = self.services
        assert services is not None and services.events is not None  # start() made them just before
        self.hub = EventHub(services.store.events, self.metrics)
        assert services.sessions is not None  # start() made it
        services.sessions.follow(self.hub)  # before the frontier is taken, loaded after: nothing missed
        await self.hub.start()
        await services.sessions.load(services.store)
        services.hub = self.hub
        assert services.api_keys is not None  # start() made it
        services.api_keys.follow(self.hub)
        services.events.on_publish = self.hub.wake
        self.sweeper = Sweeper(
            services.store,
            services.events,
            self.settings.thresholds,
            self.settings.sweep_interval_s,
            services.clock,
            self.metrics,
        )
        self.sweeper.start()
        self.retention = Retention(
            services.store, self.settings.event_retention_s, self.settings.login_window_s, services.clock
        )
        self.retention.start()
        self.provider_http = provider_client(self.settings.provider_timeout_s)
        self.delivery = build_worker(services, self.provider_http)
        services.delivery = self.delivery
        self.delivery.start()
        self.widget_presence = services.presence
        if self.widget_presence is not None:
            self.widget_presence.start()
        assert services.webhooks is not None  # start() made it just before
        self.webhooks = services.webhooks.start_follower()

    async def stop(self) -> None:
        for worker in ("webhooks", "widget_presence", "delivery", "retention", "sweeper", "hub"):
            if getattr(self, worker, None) is not None:
                try:  # a worker stuck on a dead database must not hold shutdown forever
                    await asyncio.wait_for(getattr(self, worker).stop(), timeout=STOP_TIMEOUT_S)
                except (TimeoutError, Exception):
                    log.warning("%s did not stop cleanly", worker, exc_info=True)
        if getattr(self, "provider_http", None) is not None:
            await self.provider_http.aclose()
        if self.services is not None:
            await self.services.client.close()
        if self.embedded is not None:
            self.embedded.stop()


def init_command_line(settings: Settings) -> str:
    """The ``imbrace init`` that reaches this server's database, from any directory."""
    command = "imbrace init --org NAME --email EMAIL --password PASSWORD"
    if settings.mongodb_uri is None:
        return f"IMBRACE_DATA_DIR={shlex.quote(str(settings.data_dir.absolute()))} {command}"
    database = "" if settings.database == "imbrace" else f"IMBRACE_DATABASE={shlex.quote(settings.database)} "
    return f"MONGODB_URI=<this server's MONGODB_URI> {database}{command}"


async def database_unavailable(request, exc) -> JSONResponse:
    """Webhooks and file downloads answer 503 (retry later), never a 500 trace, while MongoDB is down."""
    log.warning("database unavailable: %s", exc)
    return JSONResponse(
        {"error": "The database is unavailable. Retry later."}, status_code=503, headers={"Retry-After": "2"}
    )


def create_app(
    settings: Settings | None = None,
    listeners=None,
    embedded: EmbeddedMongo | None = None,
    setup_hint: bool = False,
    clock=utc_now,
) -> Starlette:
    settings = settings or Settings.from_env()
    metrics = Metrics()
    runtime = Runtime(settings, listeners, embedded, setup_hint, metrics, clock)
    holder: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        services = await runtime.start()
        app.state.services = services
        holder["view"].services = services
        holder["widget"].services = services
        try:
            yield
        finally:
            await runtime.stop()

    graphiql = graphiql_page() if settings.graphiql_enabled else None
    protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL] + ([GRAPHQL_WS_PROTOCOL] if settings.legacy_ws else [])
    runtime.schema = schema = build_schema(settings)
    view = GraphQLView(
        services=None,  # type: ignore[arg-type]  # the lifespan sets it before the first request
        schema=schema,
        multiplex=settings.shared_execution,
        graphql_ide="graphiql" if graphiql else None,
        graphiql_html=graphiql.html if graphiql else None,
        request_timeout_s=settings.request_timeout_s,
        allow_queries_via_get=True,
        keep_alive=True,
        keep_alive_interval=settings.ws_keepalive_s,
        subscription_protocols=protocols,
        multipart_uploads_enabled=True,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allowed_origins=settings.allowed_origins,
        metrics=metrics,
    )
    holder["view"] = view
    holder["widget"] = widget = widget_view(settings, metrics)
    multipart_limit = 2 * (settings.messaging.max_upload_bytes + 1) + settings.max_body_bytes
    graphql_http = BodyLimit(refuse_form_posts(authenticate_uploads(view)), settings.max_body_bytes, multipart_limit)
    widget_graphql_http = BodyLimit(widget_http(widget), settings.max_body_bytes, multipart_limit)
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/channels/{channel_id}/inbound", inbound_message, methods=["POST"]),
        Route("/channels/{channel_id}/presence", presence, methods=["POST"]),
        Route("/webhooks/whatsapp/{channel_id}", webhooks.handshake(webhooks.WHATSAPP), methods=["GET"]),
        Route("/webhooks/whatsapp/{channel_id}", webhooks.events(webhooks.WHATSAPP), methods=["POST"]),
        Route("/webhooks/messenger/{channel_id}", webhooks.handshake(webhooks.MESSENGER), methods=["GET"]),
        Route("/webhooks/messenger/{channel_id}", webhooks.events(webhooks.MESSENGER), methods=["POST"]),
        Route("/webhooks/line/{channel_id}", line_webhooks.events, methods=["POST"]),
        Route("/webhooks/wechat/{channel_id}", wechat_webhooks.handshake, methods=["GET"]),
        Route("/webhooks/wechat/{channel_id}", wechat_webhooks.events, methods=["POST"]),
        Route(
            "/files/{file_id}",
            cross_origin(request_response(download), settings.allowed_origins),
            methods=["GET", "OPTIONS"],
        ),
        WebSocketRoute("/graphql", view),
        # every method reaches the view, which answers the ones it refuses (405) in JSON
        Route("/graphql", cross_origin(graphql_http, settings.allowed_origins)),
        # the web widget's visitor side (CORS per channel: api/widget/cors.py)
        Route("/widget/v1/sessions", widget_sessions, methods=["POST", "OPTIONS"]),
        WebSocketRoute("/widget/graphql", widget),
        Route("/widget/graphql", widget_graphql_http),
    ]
    routes.extend(widget_assets.routes())  # /widget.js and its demo page
    if graphiql:
        routes.extend(graphiql.routes())
    if settings.metrics:
        routes.append(
            Route("/metrics", metrics_endpoint(metrics, settings.metrics_token, settings.production), methods=["GET"])
        )
    middleware = [Middleware(RequestId), Middleware(TimeHttp, metrics=metrics)]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={ConnectionFailure: database_unavailable},
    )
    app.state.runtime = runtime
    return app
