"""Fields resolved without graphql-core's per-field machinery.

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

A plain resolver that also takes ``info`` (:func:`api.graphql.strawberry_adapter.source_and_info_resolver`:
``status`` reads the clock, ``customer`` a loader, ``team`` the viewer) is called with a
:class:`LazyResolveInfo`: ``context`` and ``root_value`` at hand, graphql-core's full
resolve info built only if the resolver (or an error message) asks for more. Its value
is then completed exactly as ``execute_field`` completes it, errors included.

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

from api.graphql.strawberry_adapter import ExecutorBase, source_and_info_resolver, source_only_resolver

# What a field read directly is: a leaf (coerced), an object (its selection executed), or a
# field whose resolver also takes ``info`` (completed by graphql-core's ``complete_value``).
LEAF, OBJECT, WITH_INFO = "leaf", "object", "with info"
# (response name, kind, resolver, output coercion or object type or the graphql-core field,
#  nullable, the field's type, its field group)
Direct = tuple[str, str, Callable[..., Any], Any, bool, Any, Any]
# A selection set's plan: the fields read directly, the rest as a grouped field set, the order
Plan = tuple[list[Direct], dict[str, Any], list[str]]


class DirectFieldsExecutor(ExecutorBase):
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
                if kind is WITH_INFO:
                    field_path = Path(path, name, parent_type.name)
                    info = LazyResolveInfo(self, how, field_details_list, parent_type, field_path)
                    value = self._resolve_with_info(
                        read, source_value, info, field_type, field_details_list, field_path, position_context
                    )
                    if self.is_awaitable(value):
                        pending.append(name)
                    values[name] = value
                    continue
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
                    if kind is LEAF:  # a coerced value: never awaitable
                        values[name] = value
                        continue
                    if kind is OBJECT and value is not None:
                        field_path = Path(path, name, parent_type.name)
                        value = self._complete_object(
                            how, field_type, field_details_list, field_path, value, position_context
                        )
                if self.is_awaitable(value):
                    pending.append(name)
                values[name] = value
            if not rest and not pending:
                return values  # every field read directly, in the selection's order
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
        arguments = (object_type, field_details_list, field_path, value, position_context)
        return self._with_field_errors(
            self.collect_and_execute_subfields, arguments, field_type, field_details_list, field_path
        )

    def _resolve_with_info(self, resolve, source, info, field_type, field_details_list, field_path, position_context):
        """``execute_field`` for a plain resolver taking ``info``, given a lazy one."""
        arguments = (resolve, source, info, field_type, field_details_list, field_path, position_context)
        return self._with_field_errors(
            self._resolve_and_complete, arguments, field_type, field_details_list, field_path
        )

    def _resolve_and_complete(
        self, resolve, source, info, field_type, field_details_list, field_path, position_context
    ):
        result = resolve(source, info)
        if self.is_awaitable(result):
            built = info.built()
            return self.complete_awaitable_value(
                field_type, field_details_list, built, field_path, result, position_context
            )
        return self.complete_value(field_type, field_details_list, info, field_path, result, position_context)

    def _with_field_errors(self, complete, arguments, field_type, field_details_list, field_path) -> Any:
        """``complete(*arguments)`` handled as ``execute_field`` handles a field's completion: an
        error nulls the field (or goes up to its parent when the field may not be null), at once
        or once awaited."""
        try:
            completed = complete(*arguments)
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
        plain = field is not None and not field.args
        if plain and any(d.node.arguments or d.node.directives for d in field_details_list):
            plain = False
        resolve = source_and_info_resolver(field) if plain else None
        if resolve is not None:
            direct.append((name, WITH_INFO, resolve, field, True, field.type, field_details_list))
            continue
        read = source_only_resolver(field) if plain else None
        if read is None:
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


class LazyResolveInfo:
    """What graphql-core passes a resolver as ``info``, built only if something asks for more
    than ``context`` or ``root_value`` (which is all this project's resolvers read); anything
    else, and graphql-core itself on an error, gets the real one, built once."""

    __slots__ = (
        "_built",
        "_executor",
        "_field",
        "_field_details_list",
        "_parent_type",
        "_path",
        "context",
        "root_value",
    )

    def __init__(self, executor: Any, field: Any, field_details_list: Any, parent_type: Any, path: Path) -> None:
        self.context = executor.context_value
        self.root_value = executor.root_value
        self._executor = executor
        self._field = field
        self._field_details_list = field_details_list
        self._parent_type = parent_type
        self._path = path
        self._built: Any = None

    def built(self) -> Any:
        if self._built is None:
            nodes = [details.node for details in self._field_details_list]
            self._built = self._executor.build_resolve_info(self._field, nodes, self._parent_type, self._path)
        return self._built

    def __getattr__(self, name: str) -> Any:
        return getattr(self.built(), name)
