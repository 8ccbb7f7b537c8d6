"""One execution per event for every subscriber who would get the same answer.

A busy support floor has thousands of agents' tabs subscribed to the same
operation. For one event, subscribers with the same operation, the same
variables and the same visibility would run identical resolvers and get an
identical result, so the first of them executes it and the others reuse its
result (Hasura's "multiplexing", done per event).

An event payload opts in by carrying ``shared_results``, a dict that lives as
long as the event is being delivered. Fields whose answer depends on *who*
asks (not only on what they may see) are marked
(:class:`api.graphql.viewer_fields.PerViewer`); an operation selecting one of
them is shared only among one member's own connections.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from graphql import OperationType

from api.graphql.direct_fields import DirectFieldsExecutor
from api.graphql.viewer_fields import selects_per_viewer_field


class SharedEventExecutor(DirectFieldsExecutor):
    """graphql-core's executor (plain fields resolved directly), with subscription events executed once per
    sharing key."""

    _operation_key: tuple | None = None

    def build_per_event_executor(self, payload: Any):
        if self._operation_key is None:
            self._operation_key = operation_key(self)
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None):
        results = getattr(self.root_value, "shared_results", None)
        if results is None or self.operation.operation is not OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        key = self._sharing_key()
        shared = results.get(key)
        if shared is None:
            outcome = super().execute_operation(serially)
            if not self.is_awaitable(outcome):
                results[key] = _done(outcome)
                return outcome
            shared = results[key] = asyncio.ensure_future(outcome)
        return _result_of(shared)

    def _sharing_key(self) -> tuple:
        per_member, operation = self._operation_key or operation_key(self)
        context = self.context_value
        member = context.viewer.member_id if per_member else None
        return operation, context.visibility(), member


def operation_key(executor: Any) -> tuple[bool, tuple]:
    """(whether it selects a per-viewer field, what identifies the operation and its variables)."""
    operation = executor.operation
    source = operation.loc.source.body if operation.loc else repr(operation)
    name = operation.name.value if operation.name else None
    variables = json.dumps(executor.variable_values.coerced, sort_keys=True, default=repr)
    schema = executor.schema
    per_viewer = selects_per_viewer_field(
        schema, schema.get_root_type(operation.operation), operation.selection_set, executor.fragment_definitions
    )
    return per_viewer, (source, name, variables)


def _done(result) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


async def _result_of(shared: asyncio.Future):
    # Shielded: a subscriber leaving must not cancel the execution the others await.
    return await asyncio.shield(shared)
