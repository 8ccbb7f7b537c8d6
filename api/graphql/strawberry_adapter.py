"""Everything this project takes from strawberry beyond its public API, in one place.

Sharing an execution per event, multiplexing subscriptions and answering refusals
as typed errors reach into strawberry's internals: its executor class, its
WebSocket protocol handlers and their private helpers, the graphql-core schema
behind a strawberry schema, the field a graphql-core field was made from. They
are imported or called here only, and ``tests/test_strawberry_adapter.py``
checks that the pinned strawberry (see pyproject.toml) still offers each of
them as used, so an upgrade that moves one breaks in one visible place.

Public strawberry API (``strawberry.*``, ``strawberry.types``,
``strawberry.extensions``, ``strawberry.asgi``...) is imported where it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLField, GraphQLSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import Schema, StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation as StrawberryOperation
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

if TYPE_CHECKING:
    from api.graphql.context import Context

    # strawberry's handler type variables default to None (no context): ours run with a Context
    Operation = StrawberryOperation[Context, None]
else:
    Operation = StrawberryOperation

# graphql-core's executor as strawberry configures it; subclassed to share executions.
ExecutorBase = StrawberryGraphQLCoreExecutionContext

# The rules strawberry's own validation adds to the schema's (strawberry.schema.schema.validate_document).
EXTRA_VALIDATION_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)

# Raised out of a handler's helpers once strawberry has closed the socket for an operation.
OperationStreamClosed = _OperationStreamClosed


def graphql_schema_of(schema: Schema) -> GraphQLSchema:
    """The graphql-core schema a strawberry schema executes with."""
    return schema._schema


def strawberry_field_of(field: GraphQLField) -> Any:
    """The strawberry field a graphql-core field was converted from (None for introspection's)."""
    return (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)


class SchemaBase(Schema):
    """strawberry's Schema, with its per-execution executor arguments open to subclasses."""

    def execution_context_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments graphql-core's executor is built with; the default keeps strawberry's."""
        return kwargs

    def _get_custom_context_kwargs(self, operation_extensions=None, *, sync=False):
        return self.execution_context_kwargs(super()._get_custom_context_kwargs(operation_extensions, sync=sync))


class TransportHandlerBase(BaseGraphQLTransportWSHandler["Context", None]):
    """strawberry's graphql-transport-ws handler, its private helpers under names of ours."""

    def pre_execution_close_reason(self, error: GraphQLError) -> str | None:
        """Why a pre-execution error closes the whole socket (None: it fails its operation only)."""
        return BaseGraphQLTransportWSHandler._get_pre_execution_close_reason(error)

    # strawberry's is a staticmethod it calls through self; an instance method lets subclasses decide
    def _get_pre_execution_close_reason(self, error: GraphQLError) -> str | None:  # type: ignore[override]
        return self.pre_execution_close_reason(error)

    async def send_pre_execution_error(self, operation: Operation, error: PreExecutionError) -> None:
        """The ``error`` message for an operation refused before it ran."""
        await self._handle_pre_execution_error(operation, error)

    async def send_result_stream(self, operation: Operation, source) -> None:
        """Each result of ``source`` as a ``next`` message, as strawberry sends them."""
        await self._send_result_stream(operation, source)

    async def send_text(self, text: str) -> None:
        """A message already encoded (once, for many sockets)."""
        await self.websocket.ws.send_text(text)  # type: ignore[attr-defined]  # Starlette's adapter keeps it as .ws


__all__ = [
    "BaseGraphQLWSHandler",
    "CannotGetOperationTypeError",
    "EXTRA_VALIDATION_RULES",
    "ExecutorBase",
    "InvalidOperationTypeError",
    "Operation",
    "OperationStreamClosed",
    "OperationType",
    "PreExecutionError",
    "SchemaBase",
    "TransportHandlerBase",
    "graphql_schema_of",
    "strawberry_field_of",
]
