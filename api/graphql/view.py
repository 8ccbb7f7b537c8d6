"""The GraphQL endpoint: HTTP (queries, mutations, GraphiQL) and WebSocket (subscriptions)."""

from __future__ import annotations

from typing import Any

from pymongo.errors import ConnectionFailure
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from api.auth import viewer_from_header
from api.graphql.context import Context
from api.graphql.multiplex import Multiplexer, TransportHandler
from api.metrics import Metrics
from api.services import Services


class GraphQLView(GraphQL):
    graphql_transport_ws_handler_class = TransportHandler

    def __init__(self, services: Services, multiplex: bool = True, metrics: Metrics | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.multiplexer = Multiplexer() if multiplex else None
        self.metrics = metrics or Metrics()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        connections = self.metrics.websocket_connections
        connections.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            connections.dec()

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        services = self.services
        viewer, unavailable = None, False
        if isinstance(request, Request):
            try:
                viewer = await viewer_from_header(services.db, services.tokens, request.headers.get("authorization"))
            except ConnectionFailure:
                unavailable = True
        request_id = request.scope.get("state", {}).get("request_id", "-")
        return Context(services=services, viewer=viewer, now=services.clock(), request=request,
                       response=response, request_id=request_id, database_unavailable=unavailable)

    async def on_ws_connect(self, context: Context):
        """Subscriptions authenticate in ``connection_init``: {"authorization": "Bearer <token>"}."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        header = params.get("authorization") or params.get("Authorization")
        viewer = None
        if isinstance(header, str):
            try:
                viewer = await viewer_from_header(self.services.db, self.services.tokens, header)
            except ConnectionFailure:
                raise ConnectionRejectionError({"message": "Service unavailable, retry shortly."})
        if viewer is None:
            raise ConnectionRejectionError({"message": "Authentication required."})
        context.viewer = viewer
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
                    {"errors": [{"message": "Use Content-Type: application/json.",
                                 "extensions": {"code": "UNSUPPORTED_MEDIA_TYPE"}}]}, status_code=415)
                await response(scope, receive, send)
                return
        await view_call(scope, receive, send)
    return endpoint
