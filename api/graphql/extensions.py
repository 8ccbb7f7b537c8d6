"""Schema extensions: authentication gate, error masking and request metrics."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, FieldNode
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.metrics import INVALID, UNAUTHENTICATED
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


class DocumentValidationCache(SchemaExtension):
    """Validates each parsed document once per set of rules.

    strawberry's ``ValidationCache`` keys its LRU on the document itself, and
    graphql-core hashes a document by walking its whole syntax tree on every
    request (12% of a grab request's CPU). The parser cache hands out the same
    document object for the same query text, so identity is a sound key; each
    entry keeps its document alive, so an id can't be reused while cached.
    """

    _entries: "OrderedDict[tuple, tuple[Any, list]]" = OrderedDict()
    maxsize = 256

    def on_validate(self):
        context = self.execution_context
        document = context.graphql_document
        key = (id(document), tuple(id(rule) for rule in context.validation_rules))
        entry = self._entries.get(key)
        if entry is not None and entry[0] is document:
            self._entries.move_to_end(key)
            context.pre_execution_errors = entry[1]
        else:
            errors = validate_document(context.schema._schema, document, context.validation_rules)
            context.pre_execution_errors = errors
            self._entries[key] = (document, errors)
            if len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        yield


class PresentErrors(SchemaExtension):
    def on_operation(self):
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "-")
        result.errors = [present_error(e, request_id) for e in result.errors]


class CountOperations(SchemaExtension):
    """Counts and times each GraphQL query and mutation, by bounded operation name and outcome.

    First in the list, so its time covers parsing, validation and execution.
    A subscription's operation lasts as long as its stream, so it is left to
    the WebSocket gauges instead.
    """

    def on_operation(self):
        started = time.perf_counter()
        yield
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            try:
                if context.operation_type is OperationType.SUBSCRIPTION:
                    return
            except Exception:  # noqa: BLE001 - no such operation in the document: counted as invalid
                document = None
        metrics = getattr(getattr(context.context, "services", None), "metrics", None)
        if metrics is None:
            return
        if document is None or context.pre_execution_errors:
            label = INVALID
        elif getattr(context.context, "viewer", None) is None:
            label = UNAUTHENTICATED
        else:
            label = metrics.operation_label(context.operation_name)
        metrics.graphql_duration.labels(label).observe(time.perf_counter() - started)
        metrics.graphql_requests.labels(label, _outcome(context.result)).inc()


def _outcome(result) -> str:
    if result is None or result.errors:
        return "error"
    data = result.data if isinstance(result.data, dict) else {}
    if any(isinstance(value, dict) and value.get("errors") for value in data.values()):
        return "user_errors"
    return "ok"
