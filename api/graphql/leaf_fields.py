"""Fields read straight from their source, without graphql-core's per-field machinery.

graphql-core executes every field the same way: it looks the field up, builds a
``Path`` and a ``GraphQLResolveInfo`` (strawberry's carries fourteen values),
calls the resolver, asks twice whether the result is awaitable and completes it
through ``complete_value``. A conversations page has about 1,300 leaves (an id, a
name, a status) and a few hundred objects (a row, its channel, its last message),
and for most of them that work is the whole cost: the value is an attribute of the
source object.

For a field selected without arguments or directives whose resolver is a function
of its source alone (:func:`api.graphql.strawberry_adapter.source_only_resolver`),
the executor here calls that function and then

- for a leaf (scalar or enum), coerces the value for output, as
  ``Executor.complete_leaf_value`` would;
- for an object type (one without ``is_type_of``), executes its selection with
  graphql-core's ``collect_and_execute_subfields``, and reports an error raised
  from inside it with graphql-core's ``handle_field_error``, as ``execute_field``
  would.

Everything else takes graphql-core's own path, and so does a field whose shortcut
does not give a plain answer: an exception from the resolver, a null where the
schema promises a value, or a value the type refuses. That path runs the resolver
again and reports the error with its path and location, exactly as before (those
resolvers read attributes, so running one twice changes nothing).

What is planned once per selection set and execution: which fields are read
directly, and the selection set without them, which graphql-core executes as it
would the whole. The answer keeps the selection's order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from graphql.pyutils import Path, Undefined
from graphql.pyutils.gather_with_cancel import gather_with_cancel

from api.graphql.strawberry_adapter import ExecutorBase, source_only_resolver

# What a field read directly is: a leaf (coerced) or an object (its selection executed).
LEAF, OBJECT = "leaf", "object"
# (response name, LEAF or OBJECT, resolver of the source, output coercion or object type,
#  nullable, the field's type, its field group)
Direct = tuple[str, str, Callable[[Any], Any], Any, bool, Any, Any]
# A selection set's plan: the fields read directly, the rest as a grouped field set, the order
Plan = tuple[list[Direct], dict[str, Any], list[str]]


class LeafFieldsExecutor(ExecutorBase):
    """graphql-core's executor (as strawberry configures it), with plain fields read directly."""

    _direct_plans: dict[int, tuple[Any, Plan | None]] | None = None

    def execute_fields(self, parent_type, source_value, path, grouped_field_set, position_context):
        plan = self._plan(parent_type, grouped_field_set)
        if plan is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        direct, rest, order = plan
        values: dict[str, Any] = {}
        pending: list[str] = []
        try:
            for name, kind, read, how, nullable, field_type, field_details_list in direct:
                try:
                    value = read(source_value)
                    if value is None:
                        if not nullable:
                            raise ValueError(name)
                    elif kind is LEAF:
                        value = how(value)
                        if value is None or value is Undefined:
                            raise ValueError(name)
                except Exception:  # noqa: BLE001 - graphql-core's path reports it, with its path
                    field_path = Path(path, name, parent_type.name)
                    value = self.execute_field(
                        parent_type, source_value, field_details_list, field_path, position_context
                    )
                else:
                    if kind is OBJECT and value is not None:
                        field_path = Path(path, name, parent_type.name)
                        value = self._complete_object(
                            how, field_type, field_details_list, field_path, value, position_context
                        )
                if self.is_awaitable(value):
                    pending.append(name)
                values[name] = value
            others = super().execute_fields(parent_type, source_value, path, rest, position_context) if rest else {}
        except Exception:
            if pending:  # as graphql-core does: what already started must still settle
                self.settle_in_background([values[name] for name in pending])
            raise
        if pending or self.is_awaitable(others):
            return _awaited_in_order(order, values, pending, others, self.is_awaitable)
        return _ordered(order, values, others)

    def _complete_object(self, object_type, field_type, field_details_list, field_path, value, position_context):
        """The selection of an object read directly, with the error handling of ``execute_field``."""
        try:
            completed = self.collect_and_execute_subfields(
                object_type, field_details_list, field_path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, field_type, field_details_list, field_path)
            return None
        if self.is_awaitable(completed):
            return self._guarded(completed, field_type, field_details_list, field_path)
        return completed

    async def _guarded(self, completed: Awaitable[Any], field_type, field_details_list, field_path) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, field_type, field_details_list, field_path)
            return None

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan | None:
        """Which of the selection's fields are read directly; None: none is, or a field middleware
        runs (strawberry gives graphql-core an empty manager: that one changes nothing)."""
        plans = self._direct_plans
        if plans is None:
            plans = self._direct_plans = {}
        cached = plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        middleware = self.middleware_manager.middlewares if self.middleware_manager else ()
        plan = None if middleware else _plan_of(self, parent_type, grouped_field_set)
        plans[id(grouped_field_set)] = (grouped_field_set, plan)  # kept alive, so its id is not reused
        return plan


def _plan_of(executor: Any, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan | None:
    direct: list[Direct] = []
    rest: dict[str, Any] = {}
    for name, field_details_list in grouped_field_set.items():
        field = executor.schema.get_field(parent_type, field_details_list[0].node.name.value)
        read = source_only_resolver(field) if field is not None and not field.args else None
        if read is None or any(d.node.arguments or d.node.directives for d in field_details_list):
            rest[name] = field_details_list
            continue
        nullable = not isinstance(field.type, GraphQLNonNull)
        named = field.type if nullable else field.type.of_type
        if isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
            direct.append((name, LEAF, read, named.coerce_output_value, nullable, field.type, field_details_list))
        elif isinstance(named, GraphQLObjectType) and named.is_type_of is None:
            direct.append((name, OBJECT, read, named, nullable, field.type, field_details_list))
        else:
            rest[name] = field_details_list
    if not direct:
        return None
    return direct, rest, list(grouped_field_set)


def _ordered(order: list[str], direct: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    answer = {}
    for name in order:
        if name in direct:
            answer[name] = direct[name]
        elif name in others:  # a field graphql-core leaves out (not of this type) is in neither
            answer[name] = others[name]
    return answer


async def _awaited_in_order(
    order: list[str], direct: dict[str, Any], pending: list[str], others: Any, is_awaitable: Callable[[Any], bool]
) -> dict[str, Any]:
    awaitables = [direct[name] for name in pending]
    if is_awaitable(others):
        awaitables.append(others)
    results = await gather_with_cancel(*awaitables)
    direct.update(zip(pending, results, strict=False))
    if is_awaitable(others):
        others = results[-1]
    return _ordered(order, direct, others)
