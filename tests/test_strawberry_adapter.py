"""The pinned strawberry still offers everything api/graphql/strawberry_adapter.py relies on.

When a strawberry upgrade moves or reshapes one of its internals, this file fails
and names it, before the sharing, multiplexing or error handling built on it
misbehaves at runtime.
"""

import inspect
from importlib.metadata import version

import graphql
from graphql import GraphQLSchema
from graphql.execution.executor import Executor
from strawberry.extensions import ParserCache
from strawberry.http.async_base_view import AsyncBaseHTTPView
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types import ExecutionContext as StrawberryExecutionContext

from api.graphql import strawberry_adapter as adapter
from api.graphql.schema import build_schema
from api.settings import Settings


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_pinned_version_is_the_one_the_adapter_was_checked_against():
    assert version("strawberry-graphql").startswith("0.341.")
    assert graphql.version.startswith("3.3.")


def test_the_executor_base_is_graphql_cores_with_the_hooks_sharing_overrides():
    assert issubclass(adapter.ExecutorBase, Executor)
    assert parameters(adapter.ExecutorBase.execute_operation)[:2] == ["self", "serially"]
    assert parameters(adapter.ExecutorBase.build_per_event_executor)[:2] == ["self", "payload"]
    assert callable(adapter.ExecutorBase.is_awaitable)
    fields = (
        set(getattr(Executor, "__dataclass_fields__", {}))
        | set(getattr(Executor, "__slots__", ()))
        | set(inspect.getsource(Executor).replace("self.", " ").split())
    )
    for attribute in ("operation", "variable_values", "fragment_definitions", "schema", "root_value", "context_value"):
        assert attribute in fields, attribute


def test_a_built_schema_exposes_its_graphql_core_schema_and_field_backrefs():
    schema = build_schema(Settings())
    core = adapter.graphql_schema_of(schema)
    assert isinstance(core, GraphQLSchema)
    field = core.get_type("Conversation").fields["joinedByMe"]
    assert adapter.strawberry_field_of(field).python_name == "joined_by_me"
    assert adapter.strawberry_field_of(core.get_type("__Type").fields["name"]) is None


def test_the_custom_context_kwargs_hook_keeps_its_shape():
    hook = adapter.Schema._get_custom_context_kwargs
    signature = inspect.signature(hook)
    assert list(signature.parameters)[:2] == ["self", "operation_extensions"]
    assert signature.parameters["sync"].kind is inspect.Parameter.KEYWORD_ONLY
    schema = build_schema(Settings())
    schema.hide_suggestions = True
    assert schema._get_custom_context_kwargs(None)["hide_suggestions"] is True


def test_the_transport_handler_helpers_exist_with_the_signatures_used():
    handler = BaseGraphQLTransportWSHandler
    assert parameters(handler._handle_pre_execution_error) == ["self", "operation", "result"]
    assert parameters(handler._send_result_stream) == ["self", "operation", "result_source"]
    assert parameters(handler._get_pre_execution_close_reason) == ["error"]
    for name in ("run_operation", "shutdown", "handle_connection_init"):
        assert inspect.iscoroutinefunction(getattr(handler, name)), name
    # the helpers call the close-reason hook through self, so an override is honoured
    assert "self._get_pre_execution_close_reason(" in inspect.getsource(handler._handle_pre_execution_error)
    assert "self.websocket" in inspect.getsource(handler.__init__)
    assert "self.view" in inspect.getsource(handler.__init__) or "view" in parameters(handler.__init__)
    assert issubclass(adapter.OperationStreamClosed, Exception)


def test_operations_carry_what_the_multiplexer_reads():
    source = inspect.getsource(adapter.Operation)
    for attribute in ("self.id", "self.query", "self.variables", "self.operation_name", "self.completed"):
        assert attribute in source, attribute
    assert inspect.iscoroutinefunction(adapter.Operation.send_operation_message)


def test_the_legacy_handler_keeps_its_hooks():
    handler = adapter.BaseGraphQLWSHandler
    assert inspect.iscoroutinefunction(handler.handle_connection_init)
    assert inspect.iscoroutinefunction(handler.cleanup)
    assert "self.connection_acknowledged" in inspect.getsource(handler)


def test_errors_rules_and_enums_are_where_they_are_imported_from():
    assert issubclass(adapter.CannotGetOperationTypeError, Exception)
    assert hasattr(adapter.CannotGetOperationTypeError, "as_http_error_reason")
    assert hasattr(adapter.InvalidOperationTypeError, "as_http_error_reason")
    assert hasattr(adapter.OperationType, "from_http") and hasattr(adapter.OperationType, "SUBSCRIPTION")
    assert len(adapter.EXTRA_VALIDATION_RULES) == 2
    assert (
        "errors" in {f.name for f in adapter.PreExecutionError.__dataclass_fields__.values()}
        if hasattr(adapter.PreExecutionError, "__dataclass_fields__")
        else hasattr(adapter.PreExecutionError, "errors")
    )


def test_public_but_unwritten_hooks_the_project_overrides():
    assert parameters(AsyncBaseHTTPView.execute_single)[1:] == [
        "request",
        "request_adapter",
        "sub_response",
        "context",
        "root_value",
        "request_data",
    ]
    assert "cached_parse_document" in inspect.getsource(ParserCache.__init__)
    fields = set(StrawberryExecutionContext.__dataclass_fields__)
    assert {
        "graphql_document",
        "pre_execution_errors",
        "parse_options",
        "query",
        "variables",
        "context",
        "schema",
        "result",
    } <= fields
    assert isinstance(inspect.getattr_static(StrawberryExecutionContext, "operation_name"), property)
    assert isinstance(inspect.getattr_static(StrawberryExecutionContext, "operation_type"), property)


def test_plain_resolvers_are_called_directly_and_the_others_keep_strawberrys_path():
    schema = build_schema(Settings())
    direct = set(adapter.resolve_directly(schema))
    # self only, self and info, a PerViewer mark (it takes no part in resolving), awaiting a loader
    assert {"Member.name", "Conversation.status", "Conversation.joinedByMe", "Conversation.customer"} <= direct
    # arguments to convert, and root fields, keep strawberry's resolver
    assert "Conversation.messages" not in direct
    assert not {f for f in direct if f.split(".")[0] in ("Query", "Mutation", "Subscription")}
    core = adapter.graphql_schema_of(schema)
    assert core.get_type("Conversation").fields["messages"].resolve is not None
