"""Schema extensions: authentication gate and error masking."""

from __future__ import annotations

import logging

from graphql import GraphQLError, OperationDefinitionNode, FieldNode
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from domain.errors import Refused

log = logging.getLogger("imbrace.graphql")

PUBLIC_FIELDS = {"login", "__typename"}
INTROSPECTION_FIELDS = {"__schema", "__type", "__typename"}


class RequireAuthentication(SchemaExtension):
    """Every operation but ``login`` (and introspection, when enabled) needs a valid token.

    Refused before execution, so the answer carries no data at all.
    """

    def on_execute(self):
        context = self.execution_context.context
        if getattr(context, "database_unavailable", False):
            self.execution_context.result = ExecutionResult(data=None, errors=[GraphQLError(
                "The database is unavailable. Try again shortly.", extensions={"code": "SERVICE_UNAVAILABLE"})])
        elif context.viewer is None and not _is_public(self.execution_context):
            self.execution_context.result = ExecutionResult(data=None, errors=[GraphQLError(
                "Authentication required: send `Authorization: Bearer <token>`.",
                extensions={"code": "UNAUTHENTICATED"})])
        yield


def _is_public(execution_context) -> bool:
    document = execution_context.graphql_document
    if document is None:
        return False
    name = execution_context.operation_name
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                  and (name is None or (d.name and d.name.value == name))]
    if len(operations) != 1:
        return False
    selections = operations[0].selection_set.selections
    if not all(isinstance(s, FieldNode) for s in selections):
        return False
    names = {s.name.value for s in selections}
    return names <= PUBLIC_FIELDS or names <= INTROSPECTION_FIELDS


def present_error(error: GraphQLError, request_id: str) -> GraphQLError:
    """Expected errors keep their typed code; anything unexpected is masked and logged."""
    original = error.original_error
    if original is None:
        return error
    if isinstance(original, Refused):
        return GraphQLError(original.message, nodes=error.nodes, path=error.path,
                             extensions={"code": original.code.value, "field": original.field})
    if isinstance(original, (ConnectionFailure, ServerSelectionTimeoutError)):
        log.warning("database unavailable (request %s): %s", request_id, original)
        return GraphQLError("The database is unavailable. Try again shortly.", nodes=error.nodes, path=error.path,
                            extensions={"code": "SERVICE_UNAVAILABLE", "requestId": request_id})
    if isinstance(original, GraphQLError):
        return error
    log.error("unexpected error (request %s)", request_id, exc_info=original)
    return GraphQLError(f"Internal error. Request id: {request_id}", nodes=error.nodes, path=error.path,
                        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


class PresentErrors(SchemaExtension):
    def on_operation(self):
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "-")
        result.errors = [present_error(e, request_id) for e in result.errors]
