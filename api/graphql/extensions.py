"""Schema extensions: authentication gate, query cost limit, error masking and request metrics."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableNode,
    validate,
)
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.types import ExecutionResult

from api.graphql.strawberry_adapter import (
    EXTRA_VALIDATION_RULES,
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
    graphql_schema_of,
)
from api.graphql.strawberry_adapter import OperationType as StrawberryOperationType
from api.metrics import INVALID, UNAUTHENTICATED
from domain.errors import Refused
from domain.listing import MAX_PAGE_SIZE

log = logging.getLogger("imbrace.graphql")

PUBLIC_FIELDS = {"login", "completePasswordReset", "__typename"}
INTROSPECTION_FIELDS = {"__schema", "__type", "__typename"}


class RequireAuthentication(SchemaExtension):
    """Every operation but ``login`` (and introspection, when public) needs a valid token.

    Refused before execution, so the answer carries no data at all.
    """

    def __init__(self, public_introspection: bool = True) -> None:
        super().__init__()
        self.public_introspection = public_introspection

    def on_execute(self):
        context = self.execution_context.context
        if getattr(context, "database_unavailable", False):
            self.execution_context.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "The database is unavailable. Try again shortly.", extensions={"code": "SERVICE_UNAVAILABLE"}
                    )
                ],
            )
        elif context.viewer is None and not _is_public(self.execution_context, self.public_introspection):
            self.execution_context.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        "Authentication required: send `Authorization: Bearer <token>`.",
                        extensions={"code": "UNAUTHENTICATED"},
                    )
                ],
            )
        yield


def _is_public(execution_context, public_introspection: bool) -> bool:
    document = execution_context.graphql_document
    if document is None:
        return False
    name = execution_context.operation_name
    operations = [
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode) and (name is None or (d.name and d.name.value == name))
    ]
    if len(operations) != 1:
        return False
    selections = operations[0].selection_set.selections
    fields = [s for s in selections if isinstance(s, FieldNode)]
    if len(fields) != len(selections):
        return False
    names = {s.name.value for s in fields}
    return names <= PUBLIC_FIELDS or (public_introspection and names <= INTROSPECTION_FIELDS)


def present_error(error: GraphQLError, request_id: str) -> GraphQLError:
    """Expected errors keep their typed code; anything unexpected is masked and logged."""
    original = error.original_error
    if original is None:
        return error
    if isinstance(original, Refused):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": original.code.value, "field": original.field},
        )
    if isinstance(original, (ConnectionFailure, ServerSelectionTimeoutError)):
        log.warning("database unavailable (request %s): %s", request_id, original)
        return GraphQLError(
            "The database is unavailable. Try again shortly.",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "SERVICE_UNAVAILABLE", "requestId": request_id},
        )
    if isinstance(original, (CannotGetOperationTypeError, InvalidOperationTypeError)):
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            path=error.path,
            extensions={
                "code": "UNKNOWN_OPERATION"
                if isinstance(original, CannotGetOperationTypeError)
                else "OPERATION_NOT_ALLOWED"
            },
        )
    if isinstance(original, GraphQLError):
        return error
    log.error("unexpected error (request %s)", request_id, exc_info=original)
    return GraphQLError(
        f"Internal error. Request id: {request_id}",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


class QueryCostLimit(SchemaExtension):
    """Refuses, before anything runs, an operation that could return more nodes than allowed.

    Depth, token and alias limits each bound one dimension, but their product can
    still be huge: 30 aliases of 100 conversations with 100 messages each is a 3 KB
    query answering 11 MB. The worst case is known from the document alone, as
    GitHub's API computes it (see :func:`operation_cost`). Checked with the
    variables of each request, after validation, so HTTP and WebSocket operations
    alike get a ``QUERY_TOO_COSTLY`` pre-execution error.
    """

    # Costs of recent documents, keyed like DocumentValidationCache (each entry keeps its
    # document alive) plus the integer variables, the only ones a page size can come from.
    _costs: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
    maxsize = 256

    def __init__(self, max_nodes: int) -> None:
        super().__init__()
        self.max_nodes = max_nodes

    def on_validate(self):
        # Before the yield, after DocumentValidationCache's (listed earlier): strawberry
        # decides whether to execute before the validation hooks' exits run.
        context = self.execution_context
        if not context.pre_execution_errors and context.graphql_document is not None:
            cost = self._cost(context)
            if cost > self.max_nodes:
                # a new list: the validation cache shares the one it holds between requests
                context.pre_execution_errors = [
                    GraphQLError(
                        f"This operation could return up to {cost:,} nodes; the limit is {self.max_nodes:,}. "
                        "Ask for smaller pages (`first`/`last`) or split it into several requests.",
                        extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "maxCost": self.max_nodes},
                    )
                ]
        yield

    def _cost(self, context) -> int:
        document, variables = context.graphql_document, context.variables or {}
        paging = tuple(sorted((k, v) for k, v in variables.items() if v is None or type(v) is int))
        key = (id(document), context.operation_name, paging)
        entry = self._costs.get(key)
        if entry is not None and entry[0] is document:
            self._costs.move_to_end(key)
            return entry[1]
        cost = operation_cost(graphql_schema_of(context.schema), document, context.operation_name, variables)
        self._costs[key] = (document, cost)
        if len(self._costs) > self.maxsize:
            self._costs.popitem(last=False)
        return cost


PAGING_ARGUMENTS = ("first", "last")


def operation_cost(schema, document, operation_name: str | None, variables: dict) -> int:
    """The most nodes the operation can return: each paged field (``first``/``last``) counts
    its page size times the pages above it, each other list field its known cap (1 when
    unknown, as for the edges of a connection, which its page size already counts).

    Values come from literals, then variables, then the variable's and the argument's
    defaults; a value that can't be read counts as the largest page.
    """
    operations = [
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
        and (operation_name is None or (d.name is not None and d.name.value == operation_name))
    ]
    if len(operations) != 1:
        return 0  # graphql-core refuses it before anything runs
    operation = operations[0]
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    defaults = {d.variable.name.value: d.default_value for d in operation.variable_definitions or ()}

    def argument(node: FieldNode, definition, name: str):
        given = next((a.value for a in node.arguments or () if a.name.value == name), None)
        if isinstance(given, VariableNode):
            variable = given.name.value
            if variable in variables:
                return variables[variable]
            given = defaults.get(variable)
        if isinstance(given, IntValueNode):
            return int(given.value)
        if given is not None:
            return None
        default = definition.args[name].default_value
        return None if default is Undefined else default

    def page_size(node: FieldNode, definition) -> int | None:
        names = [n for n in PAGING_ARGUMENTS if n in definition.args]
        if not names:
            return None
        values = [argument(node, definition, n) for n in names]
        sizes = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        return max(0, min(max(sizes), MAX_PAGE_SIZE)) if sizes else MAX_PAGE_SIZE

    def walk(selection_set, parent, multiplier: int, seen: frozenset) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                fields = getattr(parent, "fields", None) or {}
                definition = fields.get(selection.name.value)
                if definition is None:
                    continue  # __typename, or introspection meta-fields
                field_type = definition.type
                while isinstance(field_type, GraphQLNonNull):
                    field_type = field_type.of_type
                size = page_size(selection, definition)
                if size is not None:
                    inner = multiplier * size
                    total += inner
                elif isinstance(field_type, GraphQLList) and not parent.name.endswith("Connection"):
                    inner = multiplier * LIST_CAPS.get((parent.name, selection.name.value), 1)
                    total += inner
                else:
                    inner = multiplier
                while isinstance(field_type, (GraphQLNonNull, GraphQLList)):
                    field_type = field_type.of_type
                total += walk(selection.selection_set, field_type, inner, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = schema.get_type(condition.name.value) if condition else parent
                total += walk(selection.selection_set, target, multiplier, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    target = schema.get_type(fragment.type_condition.name.value)
                    total += walk(fragment.selection_set, target, multiplier, seen | {name})
        return total

    return walk(operation.selection_set, root, 1, frozenset())


# List fields whose length has a known bound; the others count 1 per parent.
LIST_CAPS: dict[tuple[str, str], int] = {}


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


class KeepMutationsWhole(SchemaExtension):
    """Lifts the request deadline (see :class:`api.graphql.view.GraphQLView`) off mutations:
    stopping one halfway could leave half its writes. Their work is bounded by their input."""

    def on_execute(self):
        context = self.execution_context
        deadline = getattr(context.context, "deadline", None)
        if deadline is not None and context.operation_type is StrawberryOperationType.MUTATION:
            deadline.reschedule(None)
        yield


class DocumentValidationCache(SchemaExtension):
    """Validates each parsed document once per set of rules.

    strawberry's ``ValidationCache`` keys its LRU on the document itself, and
    graphql-core hashes a document by walking its whole syntax tree on every
    request (12% of a grab request's CPU). The parser cache hands out the same
    document object for the same query text, so identity is a sound key; each
    entry keeps its document alive, so an id can't be reused while cached.
    """

    _entries: OrderedDict[tuple, tuple[Any, list]] = OrderedDict()
    maxsize = 256

    def __init__(self, hide_suggestions: bool = False) -> None:
        super().__init__()
        self.hide_suggestions = hide_suggestions

    def on_validate(self):
        context = self.execution_context
        document = context.graphql_document
        key = (id(document), tuple(id(rule) for rule in context.validation_rules), self.hide_suggestions)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is document:
            self._entries.move_to_end(key)
            context.pre_execution_errors = entry[1]
        else:
            errors = validate(
                graphql_schema_of(context.schema),
                document,
                (*context.validation_rules, *EXTRA_VALIDATION_RULES),
                hide_suggestions=self.hide_suggestions,
            )
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
                if context.operation_type is StrawberryOperationType.SUBSCRIPTION:
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
