"""The GraphQL endpoint: HTTP (queries, mutations, GraphiQL) and WebSocket (subscriptions)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from pymongo.errors import ConnectionFailure
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from api import json_body
from api.auth import API_KEY_PREFIX, bearer_token, viewer_from_header
from api.client_address import client_address
from api.graphql import media
from api.graphql.context import Context
from api.graphql.multiplex import LegacyHandler, Multiplexer, TransportHandler
from api.graphql.strawberry_adapter import CannotGetOperationTypeError, InvalidOperationTypeError, OperationType
from api.metrics import Metrics
from api.services import Services

log = logging.getLogger("imbrace.graphql")

HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}


class RequestRefused(HTTPException):
    """A request refused before GraphQL runs, with the typed code its JSON answer carries."""

    def __init__(self, status_code: int, reason: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, reason)
        self.code = code
        self.headers = headers or {}


async def member_socket_closed(context: Context) -> None:
    """A member's accepted socket closed: it no longer keeps them online (:mod:`api.presence`)."""
    if not getattr(context, "member_online", False) or context.viewer is None:  # a widget visitor's has neither
        return
    context.member_online = False
    presence = context.services.member_presence
    try:
        if presence is not None:
            await presence.disconnect(context.viewer)
    except Exception:  # noqa: BLE001 - the socket is gone either way; its heartbeat expires by itself
        log.warning("presence: could not record a closed member socket", exc_info=True)


class MemberTransportHandler(TransportHandler):
    """graphql-transport-ws for members: an accepted socket keeps its member online until it closes."""

    async def shutdown(self) -> None:
        await super().shutdown()
        await member_socket_closed(self.context)


class MemberLegacyHandler(LegacyHandler):
    """graphql-ws for members: an accepted socket keeps its member online until it closes."""

    async def cleanup(self) -> None:
        await super().cleanup()
        await member_socket_closed(self.context)


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class: type[TransportHandler] = MemberTransportHandler
    graphql_ws_handler_class = MemberLegacyHandler

    def __init__(
        self,
        services: Services,
        multiplex: bool = True,
        request_timeout_s: float | None = None,
        metrics: Metrics | None = None,
        graphiql_html: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``graphiql_html``: the GraphiQL page to serve instead of strawberry's (:mod:`api.graphiql`)."""
        super().__init__(**kwargs)
        self.graphiql_html = graphiql_html
        self.services = services
        self.multiplexer = Multiplexer() if multiplex else None
        self.request_timeout_s = request_timeout_s
        self.metrics = metrics or Metrics()

    @property
    def graphql_ide_html(self) -> str:
        return self.graphiql_html if self.graphiql_html is not None else super().graphql_ide_html

    def encode_json(self, data: object) -> str:
        # text, not bytes: strawberry sends bytes over WebSockets as binary frames, which
        # graphql-transport-ws clients do not read
        return json_body.encode(data).decode()

    async def __call__(self, scope, receive, send) -> None:
        """Every answer is JSON (strawberry answers a refused request in plain text), in the
        media type the client accepts (:mod:`api.graphql.media`)."""
        if scope["type"] == "websocket":
            connections = self.metrics.websocket_connections
            connections.inc()
            try:
                return await super().__call__(scope, receive, send)
            finally:
                connections.dec()
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope=scope, receive=receive)
        graphql_response = media.accepts_graphql_response(request.headers)
        request.state.graphql_response = graphql_response
        try:
            response = await self.run(request)
        except HTTPException as error:
            code = getattr(error, "code", None) or HTTP_CODES.get(error.status_code, "BAD_REQUEST")
            response = JSONResponse(
                {"errors": [{"message": error.reason, "extensions": {"code": code}}]},
                status_code=error.status_code,
                headers=getattr(error, "headers", None),
            )
        if graphql_response and response.media_type == media.JSON:
            response.headers["content-type"] = media.GRAPHQL_RESPONSE + "; charset=utf-8"
            response.status_code = getattr(request.state, "graphql_status", response.status_code)
        await response(scope, receive, send)

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """A request error answered as ``application/graphql-response+json`` has no ``data`` entry
        and status 400; ``application/json`` answers keep ``"data": null`` and 200."""
        answer = await super().process_result(request, result)
        if getattr(request.state, "graphql_response", False) and media.is_request_error(result):
            answer.pop("data", None)
            request.state.graphql_status = media.REQUEST_ERROR_STATUS
        return answer

    def decode_json(self, data: str | bytes) -> object:
        """Bodies too deeply nested for the parser, or not UTF-8, are bad JSON like any other
        (a 400 over HTTP, a 4400 close over WebSocket), not a crash."""
        try:
            return json.loads(data)
        except (RecursionError, UnicodeDecodeError) as error:
            raise json.JSONDecodeError(f"Unreadable JSON: {type(error).__name__}", "", 0) from None

    async def execute_single(self, request, request_adapter, sub_response, context, root_value, request_data):
        """One HTTP operation: subscriptions are pointed to the WebSocket, and queries are
        stopped after ``request_timeout_s`` with a ``REQUEST_TIMEOUT`` error (mutations are
        let finish, see :class:`api.graphql.extensions.KeepMutationsWhole`)."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            async with asyncio.timeout(self.request_timeout_s) as deadline:
                context.deadline = deadline
                return await self.schema.execute(
                    request_data.query,
                    root_value=root_value,
                    variable_values=request_data.variables,
                    context_value=context,
                    operation_name=request_data.operation_name,
                    allowed_operation_types=allowed,
                    operation_extensions=request_data.extensions,
                )
        except MissingQueryError as error:
            raise RequestRefused(400, "No GraphQL query found in the request.", "BAD_REQUEST") from error
        except CannotGetOperationTypeError as error:
            raise RequestRefused(400, error.as_http_error_reason(), "UNKNOWN_OPERATION") from error
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise RequestRefused(
                    400,
                    "Subscriptions need the WebSocket endpoint: open a WebSocket to "
                    "/graphql with the graphql-transport-ws protocol.",
                    "SUBSCRIPTION_NEEDS_WEBSOCKET",
                ) from error
            if request_adapter.method == "GET" and error.operation_type is OperationType.MUTATION:
                raise RequestRefused(
                    405, "Mutations are sent with POST.", "METHOD_NOT_ALLOWED", headers={"Allow": "POST"}
                ) from error
            raise RequestRefused(
                400, error.as_http_error_reason(request_adapter.method), "OPERATION_NOT_ALLOWED"
            ) from error
        except TimeoutError:
            if not deadline.expired():
                raise
            log.warning("request %s stopped after %s s", context.request_id, self.request_timeout_s)
            return ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        f"The request took longer than {self.request_timeout_s:g} s and was stopped. "
                        "Ask for less (smaller pages, fewer fields) and retry.",
                        extensions={"code": "REQUEST_TIMEOUT", "requestId": context.request_id},
                    )
                ],
            )

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        services = self.services
        viewer, unavailable = None, False
        if isinstance(request, Request):
            try:
                viewer = await viewer_from_header(
                    services.store, services.tokens, request.headers.get("authorization"), services.api_keys
                )
            except ConnectionFailure:
                unavailable = True
        request_id = request.scope.get("state", {}).get("request_id", "-")
        return Context(
            services=services,
            viewer=viewer,
            now=services.clock(),
            request=request,
            response=response,
            request_id=request_id,
            database_unavailable=unavailable,
            client_address=client_address(request.scope, services.settings.trusted_proxies),
        )

    async def on_ws_connect(self, context: Context):
        """Subscriptions authenticate in ``connection_init``: {"authorization": "Bearer <token>"}
        (a member's token, or an API key: ``Bearer imb_…``)."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("authorization") or params.get("Authorization")
        viewer = None
        if isinstance(header, str):
            try:
                viewer = await viewer_from_header(
                    self.services.store, self.services.tokens, header, self.services.api_keys
                )
            except ConnectionFailure as error:
                raise ConnectionRejectionError({"message": "Service unavailable, retry shortly."}) from error
        if viewer is None:
            raise ConnectionRejectionError({"message": "Authentication required."})
        context.viewer = viewer
        context.token_claims = self.services.tokens.claims(bearer_token(header) or "")
        context.token_expires_at = context.token_claims.expires_at if context.token_claims else None
        presence = self.services.member_presence
        if presence is not None and viewer.app is None:  # an app's socket is nobody's presence
            try:
                await presence.connect(viewer)
            except Exception:  # noqa: BLE001 - the member's streams matter more than their presence badge
                log.warning("presence: could not record an open member socket", exc_info=True)
            context.member_online = True
        return None


def refuse_form_posts(view_call):
    """GraphQL over POST takes JSON (or multipart file uploads, authenticated by header).

    A browser form can post urlencoded or text bodies cross-site without a
    preflight; refusing them closes that CSRF door.
    """

    async def endpoint(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope.get("headers") or [])
            content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type not in (b"application/json", b"multipart/form-data", b"application/graphql-response+json"):
                response: Response = JSONResponse(
                    {
                        "errors": [
                            {
                                "message": "Use Content-Type: application/json.",
                                "extensions": {"code": "UNSUPPORTED_MEDIA_TYPE"},
                            }
                        ]
                    },
                    status_code=415,
                )
                await response(scope, receive, send)
                return
        await view_call(scope, receive, send)

    return endpoint


UNAUTHENTICATED = {
    "data": None,
    "errors": [
        {
            "message": "Authentication required: send `Authorization: Bearer <token>`.",
            "extensions": {"code": "UNAUTHENTICATED"},
        }
    ],
}


def authenticate_uploads(view: GraphQLView):
    """Multipart (file upload) posts need a valid token before their body is read.

    Every upload mutation needs a member (or an app), so without a valid bearer
    token there is nothing to receive: the answer (what GraphQL says to any
    unauthenticated operation) goes out at once and tens of megabytes are never
    taken in. Only the token is checked here (no database; for an API key, the
    known keys, read once when new); GraphQL still loads the caller.
    """

    async def valid(token: str | None) -> bool:
        if token is None:
            return False
        if token.startswith(API_KEY_PREFIX):
            keys = view.services.api_keys
            return keys is not None and await keys.key(token) is not None
        return view.services.tokens.read(token) is not None

    async def endpoint(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"multipart/form-data":
                token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
                if not await valid(token):
                    await JSONResponse(UNAUTHENTICATED)(scope, receive, send)
                    return
        await view(scope, receive, send)

    return endpoint
