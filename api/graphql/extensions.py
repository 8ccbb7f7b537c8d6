"""Schema extensions: authentication gate and error masking."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, FieldNode
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document
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
    if isinstance(original, (CannotGetOperationTypeError, InvalidOperationTypeError)):
        return GraphQLError(error.message, nodes=error.nodes, path=error.path,
                            extensions={"code": "UNKNOWN_OPERATION" if isinstance(original, CannotGetOperationTypeError)
                                        else "OPERATION_NOT_ALLOWED"})
    if isinstance(original, GraphQLError):
        return error
    log.error("unexpected error (request %s)", request_id, exc_info=original)
    return GraphQLError(f"Internal error. Request id: {request_id}", nodes=error.nodes, path=error.path,
                        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


class SafeParserCache(ParserCache):
    """strawberry's parser cache, minus its crash on a syntax error.

    ParserCache parses in its ``on_parse`` hook, outside the guard strawberry keeps
    around its own parsing, so over WebSocket a syntax error escaped as an exception
    (a bare ``complete`` and a traceback in the log). Leaving the document unset lets
    strawberry parse again and report the syntax error as a typed pre-execution error.
    """

    def on_parse(self):
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        except GraphQLError:
            context.graphql_document = None
        yield


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
    """Typed codes for expected errors, a masked message for the rest: on the answer to a
    request and on each result of a subscription."""

    def on_operation(self):
        yield
        self._present(self.execution_context.result)

    def on_stream_result(self, result):
        self._present(result)
        yield

    def _present(self, result) -> None:
        if result is None or not getattr(result, "errors", None):
            return
        request_id = getattr(self.execution_context.context, "request_id", "-")
        result.errors = [present_error(e, request_id) for e in result.errors]
