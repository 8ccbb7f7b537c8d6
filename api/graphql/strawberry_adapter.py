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

from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLField, GraphQLObjectType, GraphQLSchema
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

from api.ws_frames import write_frame

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


def graphql_info_of(info: Any) -> Any:
    """The graphql-core ``GraphQLResolveInfo`` behind a strawberry ``Info`` (field nodes, fragments)."""
    return info._raw_info


def resolve_directly(schema: Schema) -> list[str]:
    """Calls the plain resolvers of the schema's object types straight from graphql-core.

    strawberry wraps every resolver: per field and per object it builds an ``Info``,
    converts the (absent) arguments, folds the field extensions into a chain and
    calls through three more frames, about half of the CPU a conversations page
    spends on fields such as ``Member.name`` (``return self.entity.name``). A
    resolver taking nothing but ``self`` (and perhaps ``info``) needs none of it:
    no arguments to convert, no extension that resolves (a mark such as
    :class:`api.graphql.viewer_fields.PerViewer` takes no part), no permission
    class, no exception handler. Those are given to graphql-core as
    ``resolver(source)`` (or ``resolver(source, info=Info(...))``), which is what
    strawberry's chain ends up calling; an awaitable result is awaited by
    graphql-core as strawberry's would be. Root types keep strawberry's path.

    Returns "Type.field" of each field so resolved (checked in tests).
    """
    converter = schema.schema_converter
    info_class = schema.config.info_class
    direct = []
    for type_, name, field in _object_fields(schema):
        definition = strawberry_field_of(field)
        resolver = getattr(definition, "base_resolver", None)
        if (
            resolver is None
            or resolver.self_parameter is None
            or resolver.arguments
            or resolver.parent_parameter is not None
            or resolver.root_parameter is not None
            or definition.permission_classes
            or any(extension.has_resolver for extension in definition.extensions)
            or converter._get_field_exception_handlers(definition)
        ):
            continue
        field.resolve = _direct(resolver.wrapped_func, resolver.info_parameter, definition, info_class)
        if resolver.info_parameter is None and not resolver.is_async:
            field.extensions[SOURCE_ONLY] = resolver.wrapped_func
        elif not resolver.is_async:
            field.extensions[SOURCE_AND_INFO] = _with_info(
                resolver.wrapped_func, resolver.info_parameter.name, definition, info_class
            )
        direct.append(f"{type_.name}.{name}")
    return direct


# Where a graphql-core field of an object type keeps its resolver as a function of the
# source alone, when it has one (:func:`source_only_resolver`), or of the source and the
# resolve info (:func:`source_and_info_resolver`).
SOURCE_ONLY = "imbrace_source_only"
SOURCE_AND_INFO = "imbrace_source_and_info"


def mark_source_only_resolvers(schema: Schema) -> list[str]:
    """Notes, on each field of the schema's object types whose value is a function of its
    source object alone, that function (:func:`source_only_resolver` reads it).

    Two kinds qualify: strawberry's basic fields (an attribute, no resolver, no
    extension: strawberry itself calls them without an ``Info``), read with the
    schema's default resolver; and the plain methods :func:`resolve_directly`
    hands to graphql-core, when they take no ``info`` and are not ``async``. Root
    types are left out. Call after :func:`resolve_directly`. Returns "Type.field"
    of each (checked in tests)."""
    marked = []
    for type_, name, field in _object_fields(schema):
        definition = strawberry_field_of(field)
        if definition is None:
            continue
        if SOURCE_ONLY not in field.extensions and definition.is_basic_field:
            if getattr(field.resolve, "_is_default", False) is not True:
                continue
            if definition.default_resolver is getattr:
                field.extensions[SOURCE_ONLY] = attrgetter(definition.python_name)
            else:
                field.extensions[SOURCE_ONLY] = _read_with(definition.default_resolver, definition.python_name)
        if SOURCE_ONLY in field.extensions:
            marked.append(f"{type_.name}.{name}")
    return marked


def _object_fields(schema: Schema) -> Iterator[tuple[GraphQLObjectType, str, GraphQLField]]:
    """The fields of the schema's object types, root and introspection types left out."""
    core = graphql_schema_of(schema)
    roots = {core.query_type, core.mutation_type, core.subscription_type}
    for type_ in core.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__") and type_ not in roots:
            for name, field in type_.fields.items():
                yield type_, name, field


def source_only_resolver(field: GraphQLField) -> Callable[[Any], Any] | None:
    """The field's value as a function of its source alone (:func:`mark_source_only_resolvers`)."""
    extensions = field.extensions
    return extensions.get(SOURCE_ONLY) if extensions else None


def source_and_info_resolver(field: GraphQLField) -> Callable[[Any, Any], Any] | None:
    """The field's plain resolver that also takes ``info``, as ``resolver(source, raw_info)``
    (``raw_info`` is what graphql-core would pass, or anything answering the same attributes;
    a strawberry ``Info`` is made around it); None when the field has none (it is ``async``,
    takes arguments, or is not a method :func:`resolve_directly` hands to graphql-core)."""
    extensions = field.extensions
    return extensions.get(SOURCE_AND_INFO) if extensions else None


def _with_info(function: Any, keyword: str, definition: Any, info_class: Any) -> Callable[[Any, Any], Any]:
    def resolve(source: Any, raw_info: Any) -> Any:
        return function(source, **{keyword: info_class(_raw_info=raw_info, _field=definition)})

    return resolve


def _read_with(default_resolver: Callable[[Any, str], Any], name: str) -> Callable[[Any], Any]:
    def read(source: Any) -> Any:
        return default_resolver(source, name)

    return read


def _direct(function: Any, info_parameter: Any, definition: Any, info_class: Any) -> Any:
    if info_parameter is None:

        def resolve(source: Any, info: Any) -> Any:
            return function(source)

    else:
        keyword = info_parameter.name

        def resolve(source: Any, info: Any) -> Any:
            return function(source, **{keyword: info_class(_raw_info=info, _field=definition)})

    return resolve


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

    def write_frame(self, frame: bytes) -> bool:
        """A frame already built (once, for many sockets) written straight to this socket;
        False when it must go through :meth:`send_text` (:func:`api.ws_frames.write_frame`)."""
        return write_frame(self.websocket.ws.scope, frame)  # type: ignore[attr-defined]


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
    "graphql_info_of",
    "graphql_schema_of",
    "mark_source_only_resolvers",
    "resolve_directly",
    "source_and_info_resolver",
    "source_only_resolver",
    "strawberry_field_of",
]
