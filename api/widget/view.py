"""``/widget/graphql``: the visitor's schema over HTTP and WebSocket, with the session token.

HTTP: ``POST`` only, JSON or a multipart upload, ``Authorization: Bearer <session token>``.
The token is checked before anything is read (a missing, expired or agent token: ``401``
``UNAUTHENTICATED``), and a browser's ``Origin`` must be the one the session started from,
still allowed by the channel (else ``403`` ``ORIGIN_NOT_ALLOWED``, without CORS headers).

WebSocket (``graphql-transport-ws``): the handshake is accepted from any origin, because
it carries no token; ``connection_init`` then brings ``{"token": "…"}`` (or
``{"authorization": "Bearer …"}``), and the socket is closed with ``4403`` when the token
is not a valid session's or the handshake's ``Origin`` is not the session's. An accepted
socket counts for the visitor's presence until it closes (:mod:`api.widget.presence`),
and is closed with ``4401`` when its token expires.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql.validation import NoSchemaIntrospectionCustomRule
from pymongo.errors import ConnectionFailure
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.auth import bearer_token
from api.client_address import client_address
from api.graphql.extensions import (
    DocumentValidationCache,
    KeepMutationsWhole,
    PresentErrors,
    QueryCostLimit,
    SafeParserCache,
)
from api.graphql.multiplex import TransportHandler
from api.graphql.schema import Schema
from api.graphql.view import GraphQLView
from api.settings import Settings
from api.widget.context import WidgetContext
from api.widget.cors import allow, preflight, refusal, request_origin
from api.widget.schema import Mutation, Query, Subscription
from domain.widget import VisitorSession, clean_page_url

log = logging.getLogger("imbrace.widget")

METHODS = ("POST",)
CONTENT_TYPES = (b"application/json", b"multipart/form-data", b"application/graphql-response+json")


def build_widget_schema(settings: Settings | None = None) -> Schema:
    """The visitor's schema with the agent schema's protections (depth, tokens, aliases, cost)."""
    settings = settings or Settings()
    rules = (
        QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules
        + MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules
    )
    if settings.introspection_policy == "off":
        rules.append(NoSchemaIntrospectionCustomRule)
    hide_suggestions = settings.hide_suggestions
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            PresentErrors,
            KeepMutationsWhole,
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            lambda: SafeParserCache(maxsize=64),
            lambda: DocumentValidationCache(hide_suggestions=hide_suggestions),
            lambda: AddValidationRules(rules),
            lambda: QueryCostLimit(max_nodes=settings.max_query_nodes),
        ],
        config=StrawberryConfig(disable_field_suggestions=hide_suggestions),
        hide_suggestions=hide_suggestions,
    )


class WidgetTransportHandler(TransportHandler):
    """graphql-transport-ws for visitors: an accepted socket counts for presence until it closes."""

    async def shutdown(self) -> None:
        await super().shutdown()
        context = self.context
        if getattr(context, "presence_registered", False) and context.session is not None:
            context.presence_registered = False
            presence = context.services.presence
            try:
                if presence is not None:
                    await presence.disconnect(context.session)
            except Exception:  # noqa: BLE001 - the socket is gone either way; presence expires by itself
                log.warning("presence: could not record a closed widget socket", exc_info=True)


class WidgetView(GraphQLView):
    graphql_transport_ws_handler_class = WidgetTransportHandler

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        """Any origin may open the socket: ``connection_init`` brings the token, whose origin is checked then."""
        return True

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> WidgetContext:  # type: ignore[override]
        services = self.services
        state = request.scope.get("state", {})
        return WidgetContext(
            services=services,
            session=state.get("widget_session") if isinstance(request, Request) else None,
            now=services.clock(),
            request=request,
            response=response,
            request_id=state.get("request_id", "-"),
            client_address=client_address(request.scope, services.settings.trusted_proxies),
        )

    async def on_ws_connect(self, context: WidgetContext):  # type: ignore[override]
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        token = params.get("token")
        if not isinstance(token, str):
            header = params.get("authorization") or params.get("Authorization")
            token = bearer_token(header) if isinstance(header, str) else None
        services = self.services
        session = services.widget_tokens.read(token) if services.widget_tokens else None
        if session is None:
            raise ConnectionRejectionError({"message": "A widget session token is required."})
        raw, origin = request_origin(context.request.headers)
        try:
            allowed = await origin_allowed(services, session, origin)
        except ConnectionFailure as error:
            raise ConnectionRejectionError({"message": "Service unavailable, retry shortly."}) from error
        if not allowed:
            raise ConnectionRejectionError({"message": "This origin may not use this session."})
        context.session = session
        context.token_expires_at = session.expires_at
        page = params.get("pageUrl")
        try:
            page_url = clean_page_url(page) if isinstance(page, str) else None
        except Exception:  # noqa: BLE001 - a page URL the widget got wrong is left out, not fatal
            page_url = None
        if services.presence is not None:
            try:
                await services.presence.connect(session, page_url)
            except Exception:  # noqa: BLE001 - chatting matters more than the presence badge
                log.warning("presence: could not record an open widget socket", exc_info=True)
            context.presence_registered = True
        return None


async def origin_allowed(services: Any, session: VisitorSession, origin: str | None) -> bool:
    """A browser's request (it sends ``Origin``) comes from the session's origin, and the channel
    still allows that origin; a non-browser client (no ``Origin``) needs only the latter."""
    if origin is not None and origin != session.origin:
        return False
    channel = await services.store.channel(session.channel_id)
    return (
        channel is not None
        and channel.widget is not None
        and channel.org_id == session.org_id
        and session.origin in channel.widget.allowed_origins
    )


def widget_http(view: WidgetView):
    """The HTTP side: preflight, token, origin and content type checked before the view reads the body."""

    async def endpoint(scope, receive, send):
        if scope["type"] != "http":
            return await view(scope, receive, send)
        request = Request(scope, receive)
        services = view.services
        if scope["method"] == "OPTIONS":
            return await (await preflight(services.store, request.headers, METHODS))(scope, receive, send)
        _, origin = request_origin(request.headers)
        readable = origin is not None and origin != "null" and await services.store.widget_origin_known(origin)
        cors = allow(origin) if readable and origin else {}
        if scope["method"] not in METHODS:
            response = _graphql_error(405, "Use POST.", "METHOD_NOT_ALLOWED", {**cors, "Allow": "POST"})
            return await response(scope, receive, send)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower().encode()
        if content_type not in CONTENT_TYPES:
            response = _graphql_error(415, "Use Content-Type: application/json.", "UNSUPPORTED_MEDIA_TYPE", cors)
            return await response(scope, receive, send)
        token = bearer_token(request.headers.get("authorization"))
        session = services.widget_tokens.read(token) if services.widget_tokens else None
        if session is None:
            response = _graphql_error(
                401,
                "A widget session token is required: `Authorization: Bearer <token>` from POST /widget/v1/sessions.",
                "UNAUTHENTICATED",
                cors,
            )
            return await response(scope, receive, send)
        if not await origin_allowed(services, session, origin):
            return await refusal(403, "ORIGIN_NOT_ALLOWED", "This origin may not use this session.")(
                scope, receive, send
            )
        scope.setdefault("state", {})["widget_session"] = session
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in allow(session.origin).items()]

        async def send_with_cors(message):
            if message["type"] == "http.response.start" and origin is not None:
                message["headers"] = list(message.get("headers") or []) + headers
            await send(message)

        await view(scope, receive, send_with_cors)

    return endpoint


def _graphql_error(status: int, message: str, code: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers={"Vary": "Origin", **headers},
    )


def widget_view(settings: Settings, metrics: Any) -> WidgetView:
    return WidgetView(
        services=None,  # type: ignore[arg-type]  # the lifespan sets it before the first request
        schema=build_widget_schema(settings),
        multiplex=False,
        graphql_ide=None,
        request_timeout_s=settings.request_timeout_s,
        allow_queries_via_get=False,
        keep_alive=True,
        keep_alive_interval=settings.ws_keepalive_s,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        multipart_uploads_enabled=True,
        max_subscriptions_per_connection=10,  # in-flight operations, mutations over the socket included
        metrics=metrics,
    )
