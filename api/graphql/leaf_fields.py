"""Leaf fields completed without graphql-core's per-field machinery.

graphql-core executes every field the same way: it looks the field up, builds a
``Path`` and a ``GraphQLResolveInfo`` (strawberry's carries fourteen values),
calls the resolver, asks twice whether the result is awaitable and completes it
through ``complete_value``. A conversations page has about 1,300 leaves (an id, a
name, a status) and for most of them that work is the whole cost: the value is an
attribute of the source object.

For a leaf field (scalar or enum) selected without arguments or directives, whose
resolver is a function of its source alone
(:func:`api.graphql.strawberry_adapter.source_only_resolver`), the executor here
calls that function and coerces the value for output, as
``Executor.complete_leaf_value`` would. Everything else takes graphql-core's own
path, and so does a leaf whose shortcut does not give a plain answer: an
exception, a null, or a value the type refuses. That path runs its resolver again
and reports the error with its path and location, exactly as before. Those
resolvers read attributes, so running one twice changes nothing.

What is planned once per selection set and execution: which fields are such leaves,
and the selection set without them, which graphql-core executes as it would the
whole. The answer keeps the selection's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from graphql.pyutils import Path, Undefined

from api.graphql.strawberry_adapter import ExecutorBase, source_only_resolver

# A planned leaf: (response name, resolver of the source, output coercion, nullable, its field group)
Leaf = tuple[str, Callable[[Any], Any], Callable[[Any], Any], bool, Any]
# A selection set's plan: its leaves, the rest as a grouped field set, and the response order
Plan = tuple[list[Leaf], dict[str, Any], list[str]]


class LeafFieldsExecutor(ExecutorBase):
    """graphql-core's executor (as strawberry configures it), with plain leaves read directly."""

    _leaf_plans: dict[int, tuple[Any, Plan | None]] | None = None

    def execute_fields(self, parent_type, source_value, path, grouped_field_set, position_context):
        plan = self._plan(parent_type, grouped_field_set)
        if plan is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        leaves, rest, order = plan
        values: dict[str, Any] = {}
        for name, read, coerce, nullable, field_details_list in leaves:
            try:
                value = read(source_value)
                if value is not None:
                    value = coerce(value)
                    if value is None or value is Undefined:
                        raise ValueError(name)
                elif not nullable:
                    raise ValueError(name)
            except Exception:  # noqa: BLE001 - graphql-core's path reports it, with its path
                value = self.execute_field(
                    parent_type, source_value, field_details_list, Path(path, name, parent_type.name), position_context
                )
            values[name] = value
        if not rest:
            return values
        others = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if self.is_awaitable(others):
            return _in_order(order, values, others)
        return _ordered(order, values, others)

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan | None:
        """Which of the selection's fields are plain leaves; None: none is, or a field middleware
        runs (strawberry gives graphql-core an empty manager: that one changes nothing)."""
        plans = self._leaf_plans
        if plans is None:
            plans = self._leaf_plans = {}
        cached = plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        middleware = self.middleware_manager.middlewares if self.middleware_manager else ()
        plan = None if middleware else _plan_of(self, parent_type, grouped_field_set)
        plans[id(grouped_field_set)] = (grouped_field_set, plan)  # kept alive, so its id is not reused
        return plan


def _plan_of(executor: Any, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan | None:
    leaves: list[Leaf] = []
    rest: dict[str, Any] = {}
    for name, field_details_list in grouped_field_set.items():
        field = executor.schema.get_field(parent_type, field_details_list[0].node.name.value)
        read = source_only_resolver(field) if field is not None and not field.args else None
        if read is None or any(d.node.arguments or d.node.directives for d in field_details_list):
            rest[name] = field_details_list
            continue
        nullable = not isinstance(field.type, GraphQLNonNull)
        leaf_type = field.type if nullable else field.type.of_type
        if not isinstance(leaf_type, (GraphQLScalarType, GraphQLEnumType)):
            rest[name] = field_details_list
            continue
        leaves.append((name, read, leaf_type.coerce_output_value, nullable, field_details_list))
    if not leaves:
        return None
    return leaves, rest, list(grouped_field_set)


def _ordered(order: list[str], leaves: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    # a field graphql-core leaves out (one the type does not have) is in neither
    answer = {}
    for name in order:
        if name in leaves:
            answer[name] = leaves[name]
        elif name in others:
            answer[name] = others[name]
    return answer


async def _in_order(order: list[str], leaves: dict[str, Any], others: Any) -> dict[str, Any]:
    return _ordered(order, leaves, await others)
