"""Prometheus metrics: what an operator watches to know the server is healthy.

Each app instance owns its own registry (several servers share one test
process, and a global registry would mix their numbers). Counters and gauges
are bumped where things happen; the two figures that live in the database
(the email queue and the sweeper's backlog) are read when ``/metrics`` is
scraped, so an idle server sends no extra commands.

Labels are bounded: a client chooses its operation names, so only names of
operations that parsed, validated and ran for an authenticated caller are
kept, up to :data:`MAX_OPERATION_NAMES`; the rest fall into fixed labels.
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import Response

from api.store.mongo import MongoStore
from domain.enums import ErrorCode, EventKind

log = logging.getLogger("imbrace.metrics")

MAX_OPERATION_NAMES = 100
MAX_OPERATION_NAME_LENGTH = 64
ANONYMOUS = "anonymous"  # valid, but without a name
INVALID = "invalid"  # did not parse or validate: its name is the client's word only
UNAUTHENTICATED = "unauthenticated"  # no valid token (login included): anyone could mint names here
OTHER = "other"  # past MAX_OPERATION_NAMES

OUTCOMES = ("ok", "user_errors", "error")
TRANSPORTS = ("email", "channel")  # the delivery pipeline's transports (api/delivery)
LOGIN_REFUSALS = (ErrorCode.INVALID_CREDENTIALS, ErrorCode.TOO_MANY_ATTEMPTS)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.graphql_requests = Counter(
            "imbrace_graphql_requests",
            "GraphQL queries and mutations, by operation name and outcome "
            "(ok; user_errors: a payload's `errors` is not empty; error: the response has GraphQL errors).",
            ("operation", "outcome"),
            registry=registry,
        )
        self.graphql_duration = Histogram(
            "imbrace_graphql_request_duration_seconds",
            "Time to parse, validate and execute a GraphQL query or mutation, by operation name.",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.http_duration = Histogram(
            "imbrace_http_request_duration_seconds",
            "Time to answer an HTTP request, by route and status (webhooks, file downloads, /graphql, /healthz).",
            ("route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.websocket_connections = Gauge(
            "imbrace_websocket_connections", "Open GraphQL WebSocket connections.", registry=registry
        )
        self.active_subscriptions = Gauge(
            "imbrace_active_subscriptions",
            "Operations running on GraphQL WebSockets (subscriptions).",
            registry=registry,
        )
        self.events_published = Counter(
            "imbrace_events_published",
            "Events this process wrote to the event log, by kind.",
            ("kind",),
            registry=registry,
        )
        self.events_delivered = Counter(
            "imbrace_events_delivered",
            "Events handed to this process's subscription streams (a stream "
            "shared by a group of identical subscriptions counts once).",
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "imbrace_outbox_queue_depth",
            "Deliveries queued or in progress, by transport.",
            ("transport",),
            registry=registry,
        )
        self.delivery_failures = Counter(
            "imbrace_delivery_failures",
            "Deliveries given up on (marked FAILED), by transport.",
            ("transport",),
            registry=registry,
        )
        self.sweeper_lag = Gauge(
            "imbrace_sweeper_lag_seconds",
            "How late the oldest due time-driven transition is (0: none due).",
            registry=registry,
        )
        self.sweeper_last_success = Gauge(
            "imbrace_sweeper_last_success_timestamp_seconds",
            "When this process last completed a sweep (Unix time).",
            registry=registry,
        )
        self.login_refusals = Counter(
            "imbrace_login_refusals", "Refused logins, by reason.", ("reason",), registry=registry
        )
        self.webhook_attempts = Counter(
            "imbrace_webhook_deliveries",
            "Attempts to deliver an event (or a ping) to an integrator's webhook, by outcome "
            "(delivered: a 2xx answer; failed: anything else, tried again later).",
            ("outcome",),
            registry=registry,
        )

        # Children that are known up front are bound once: hot paths only increment,
        # and the series exist at 0 before the first occurrence, so rates and alerts work.
        self.published_by_kind = {kind.value: self.events_published.labels(kind.value) for kind in EventKind}
        self.published_teams_changed = self.events_published.labels("TEAMS_CHANGED")
        for notice in ("API_KEY_REVOKED", "MEMBER_TOKENS_REVOKED", "TOKEN_REVOKED"):
            self.published_by_kind[notice] = self.events_published.labels(notice)
        for transport in TRANSPORTS:  # both series exist at 0 from the start
            self.delivery_failures.labels(transport)
        self.depth_by_transport = {t: self.outbox_depth.labels(t) for t in TRANSPORTS}
        self.refusals_by_code = {code: self.login_refusals.labels(code.value.lower()) for code in LOGIN_REFUSALS}
        self.webhooks_delivered = self.webhook_attempts.labels("delivered")
        self.webhooks_failed = self.webhook_attempts.labels("failed")
        self._operation_names: set[str] = set()

    def operation_label(self, name: str | None) -> str:
        """The label for a trusted operation name, admitting new names up to the cap."""
        if not name:
            return ANONYMOUS
        name = name[:MAX_OPERATION_NAME_LENGTH]
        if name in self._operation_names:
            return name
        if len(self._operation_names) >= MAX_OPERATION_NAMES:
            return OTHER
        self._operation_names.add(name)
        return name

    def published(self, kind: str) -> None:
        child = self.published_by_kind.get(kind)
        (child or self.published_teams_changed).inc()

    def login_refused(self, code: ErrorCode) -> None:
        child = self.refusals_by_code.get(code)
        if child is not None:
            child.inc()

    async def refresh_from_database(self, store: MongoStore, now: datetime) -> None:
        """The figures kept in the database: two index range reads, at scrape time only."""
        try:
            for transport, gauge in self.depth_by_transport.items():
                gauge.set(await store.deliveries.queued(transport.upper()))
            oldest = await store.sweeps.oldest_due(now)
            self.sweeper_lag.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0)
        except PyMongoError as error:  # the scrape still answers; these two keep their last values
            log.warning("metrics: could not read the database: %s", error)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class TimeHttp:
    """ASGI middleware: a latency histogram of HTTP requests by route template (bounded) and status."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.http_duration.labels(path, str(status)).observe(time.perf_counter() - started)


def metrics_endpoint(metrics: Metrics, token: str | None, production: bool):
    """``/metrics``: open in development; in production only with the configured bearer token
    (compared in constant time), and absent (404) when no token is configured."""
    expected = f"Bearer {token}".encode() if token else None

    async def endpoint(request: Request) -> Response:
        if production:
            if expected is None:
                return Response("Not Found", status_code=404, media_type="text/plain")
            given = request.headers.get("authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(given, expected):
                return Response(
                    "Unauthorized",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        services = getattr(request.app.state, "services", None)
        if services is not None:
            await metrics.refresh_from_database(services.store, services.clock())
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint
