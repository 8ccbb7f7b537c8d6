"""The GraphQL endpoint: HTTP (queries, mutations, GraphiQL) and WebSocket (subscriptions)."""

from __future__ import annotations

from typing import Any

from pymongo.errors import ConnectionFailure
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from api.auth import bearer_token, viewer_from_header
from api.client_address import client_address
from api.graphql.context import Context
from api.graphql.multiplex import LegacyHandler, Multiplexer, TransportHandler
from api.services import Services


class GraphQLView(GraphQL):
    graphql_transport_ws_handler_class = TransportHandler
    graphql_ws_handler_class = LegacyHandler

    def __init__(self, services: Services, multiplex: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.multiplexer = Multiplexer() if multiplex else None

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
                       response=response, request_id=request_id, database_unavailable=unavailable,
                       client_address=client_address(request.scope, services.settings.trusted_proxies))

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
        context.token_expires_at = self.services.tokens.expires_at(bearer_token(header) or "")
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


UNAUTHENTICATED = {"data": None, "errors": [{"message": "Authentication required: send `Authorization: Bearer <token>`.",
                                             "extensions": {"code": "UNAUTHENTICATED"}}]}


def authenticate_uploads(view: GraphQLView):
    """Multipart (file upload) posts need a valid token before their body is read.

    Every upload mutation needs a member, so without a valid bearer token there
    is nothing to receive: the answer (what GraphQL says to any unauthenticated
    operation) goes out at once and tens of megabytes are never taken in. Only
    the token is checked here (no database); GraphQL still loads the member.
    """
    async def endpoint(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"multipart/form-data":
                token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
                if token is None or view.services.tokens.read(token) is None:
                    await JSONResponse(UNAUTHENTICATED)(scope, receive, send)
                    return
        await view(scope, receive, send)
    return endpoint
