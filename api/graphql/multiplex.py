"""Subscribers who would receive identical messages share one running subscription.

Thousands of agents keep the inbox open with the same ``conversationEvents``
operation. When operation, variables and visibility are the same, every event
produces the same ``next`` payload for all of them, so one stream (one hub
queue, one judgment, one execution, one JSON encoding) serves the whole group
and each member only gets the encoded message written to its socket.

Only live ``conversationEvents`` without ``after`` are grouped: a resuming
client needs its own replay. A team change in the organization may change who
sees what, so a group then stops at that event, re-reads its members' teams
and regroups them by their new visibility; the new groups resume right after
the team-change event (nothing lost, nothing repeated). Everything else runs as
strawberry runs it.

The handler extends strawberry's graphql-transport-ws handler, including a few
of its private helpers (pre-execution errors, the result loop), reached through
:mod:`api.graphql.strawberry_adapter`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import aclosing, suppress
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    parse,
)
from graphql.execution.values import get_argument_values, get_variable_values

from api.auth import reload_viewer
from api.graphql.scopes import app_may
from api.graphql.strawberry_adapter import (
    BaseGraphQLWSHandler,
    Operation,
    OperationStreamClosed,
    PreExecutionError,
    TransportHandlerBase,
    graphql_schema_of,
)
from api.graphql.viewer_fields import selects_per_viewer_field
from api.services import utc_now
from api.ws_frames import text_frame
from domain.events import view_names_the_member

if TYPE_CHECKING:
    from api.graphql.context import Context  # noqa: F401  # named in a quoted base class below
    from api.graphql.strawberry_adapter import Schema

log = logging.getLogger("imbrace.multiplex")

GROUPED_FIELDS = frozenset({"conversationEvents"})


class GroupRoot:
    """Root value of a grouped stream: where it starts (None: live), and where the resolver
    stopped at a team change.

    A READ event belongs to one member: the resolver yields it only when that member is in
    the group (``member_ids``), naming them in ``only_for``, and the group writes that one
    result to that member's operations alone. The stream yields one result at a time and
    the group writes it before asking for the next, so ``only_for`` is the current one's.
    """

    def __init__(self, start_after: int | None = None) -> None:
        self.start_after = start_after
        self.resume_after: int | None = None
        self.only_for: str | None = None
        self.member_ids: Callable[[], set[str]] = set


class Resume:
    """Root value of a member's own stream after its group ended on a team change."""

    def __init__(self, after: int) -> None:
        self.resume_after = after


class Moved:
    """A member's group ended at a team change; the member now belongs to ``group``."""

    def __init__(self, group: Group, done: asyncio.Future) -> None:
        self.group = group
        self.done = done


class Multiplexer:
    def __init__(self) -> None:
        self.groups: dict[tuple, Group] = {}

    def key(self, handler: TransportHandlerBase, operation: Operation) -> tuple | None:
        """What must be equal for two operations to receive the same messages; None: not groupable.

        The member is part of it when the selection reaches a per-viewer field, or when the
        filter's view depends on the member (one judgment serves the whole group)."""
        schema = graphql_schema_of(cast("Schema", handler.schema))  # the view's: a strawberry Schema
        shape = _shape(schema, operation.query, operation.operation_name)
        if shape is None:
            return None
        if shape.after_variable is not None and (operation.variables or {}).get(shape.after_variable) is not None:
            return None  # resuming: needs its own replay
        arguments = _arguments(schema, shape, operation.variables or {})
        if arguments is None:
            return None  # variables it can't take: run alone, to be told why
        variables = json.dumps(operation.variables or {}, sort_keys=True, default=str)
        context = handler.context
        if context.viewer is None:
            return None
        if context.viewer.app is not None and not app_may(context.viewer.app, "Subscription", shape.field.name.value):
            return None  # runs alone, to be refused by its scopes (a group member never runs the check)
        per_member = shape.per_viewer or view_names_the_member((arguments.get("filter") or {}).get("view"))
        member = context.viewer.member_id if per_member else None
        return operation.query, operation.operation_name, variables, context.visibility(), member

    async def serve(self, handler: TransportHandler, operation: Operation, key: tuple) -> Any:
        """Deliver the group's messages to ``operation`` until the group ends; returns how it ended."""
        group = self.groups.get(key)
        if group is None or group.closing:
            group = self.groups[key] = Group(self, key, handler, operation)
        done = group.join(handler, operation)
        try:
            while True:
                ending = await asyncio.shield(done)
                if not isinstance(ending, Moved):
                    return ending
                group.leave(operation)
                group, done = ending.group, ending.done
        finally:
            group.leave(operation)

    def forget(self, group: Group) -> None:
        if self.groups.get(group.key) is group:
            del self.groups[group.key]


class Group:
    def __init__(
        self, multiplexer: Multiplexer, key: tuple, handler, operation: Operation, start_after: int | None = None
    ) -> None:
        self.multiplexer = multiplexer
        self.key = key
        self.members: dict[Operation, tuple[Any, asyncio.Future]] = {}
        self.closing = False
        self.root = GroupRoot(start_after)
        self.root.member_ids = self._member_ids
        self.task = asyncio.create_task(self._run(handler, operation), name="subscription-group")

    def _member_ids(self) -> set[str]:
        return {h.context.viewer.member_id for h, _ in self.members.values() if h.context.viewer is not None}

    def join(self, handler, operation: Operation) -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        self.members[operation] = (handler, done)
        return done

    def leave(self, operation: Operation) -> None:
        self.members.pop(operation, None)
        if not self.members and not self.closing:
            self.closing = True
            self.multiplexer.forget(self)
            self.task.cancel()

    async def _run(self, handler, operation: Operation) -> None:
        ending: Any = "complete"
        try:
            source = await handler.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=handler.context,
                root_value=self.root,
                operation_name=operation.operation_name,
            )
            async with aclosing(source):
                first = True
                async for result in source:
                    if first and isinstance(result, PreExecutionError):
                        ending = ("refused", result)
                        return
                    first = False
                    await self._broadcast(result)
            if self.root.resume_after is not None:
                ending = await self._regroup(self.root.resume_after)
        except asyncio.CancelledError:
            ending = "cancelled"
            raise
        except Exception:  # noqa: BLE001 - the members must still be told the stream ended
            log.exception("subscription group failed")
        finally:
            self.closing = True
            self.multiplexer.forget(self)
            for _, done in self.members.values():
                if not done.done():
                    done.set_result(ending)

    async def _regroup(self, after: int) -> Any:
        """Re-read each member's teams, then move the members into new groups by their new
        keys, all starting right after the team-change event ``after``.

        Moves happen without a pause, so each new group has all its members before its
        stream starts. If the teams can't be read (database down), each member resumes
        on its own stream, which retries.
        """
        contexts = {id(handler.context): handler.context for handler, _ in self.members.values()}
        viewers: dict[tuple[str, str], Any] = {}  # one read per member, however many tabs they have open
        try:
            for context in contexts.values():
                member = (context.viewer.member_id, context.viewer.org_id)
                if member not in viewers:
                    services = context.services
                    viewers[member] = await reload_viewer(services.store, services.api_keys, context.viewer)
                context.refresh(viewers[member], utc_now())
        except Exception:  # noqa: BLE001 - each member's own stream will retry
            log.warning("could not re-read teams after a team change; members resume alone", exc_info=True)
            return Resume(after)
        regrouped: dict[tuple, Group] = {}
        for operation, (handler, done) in list(self.members.items()):
            if done.done():
                continue
            key = self.multiplexer.key(handler, operation)
            if key is None:  # no longer in the organization
                done.set_result("complete")
                continue
            group = regrouped.get(key)
            if group is None:
                group = regrouped[key] = Group(self.multiplexer, key, handler, operation, start_after=after)
                if self.multiplexer.groups.get(key) in (None, self):
                    self.multiplexer.groups[key] = group
            done.set_result(Moved(group, group.join(handler, operation)))
        return "complete"

    async def _broadcast(self, result) -> None:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        body = json.dumps(payload)
        only_for, self.root.only_for = self.root.only_for, None
        # one message, and one WebSocket frame, per operation id (clients mostly use the same few)
        frames: dict[str, tuple[str, bytes]] = {}
        for operation, (handler, done) in list(self.members.items()):
            if operation.completed or done.done():
                continue
            viewer = handler.context.viewer
            if only_for is not None and (viewer is None or viewer.member_id != only_for):
                continue
            framed = frames.get(operation.id)
            if framed is None:
                text = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":{body}}}'
                framed = frames[operation.id] = (text, text_frame(text.encode()))
            try:
                if not handler.write_frame(framed[1]):
                    await handler.send_text(framed[0])
            except Exception:  # noqa: BLE001 - a closed socket; its own task is being cancelled
                done.set_result("cancelled")


class ClosesWhenTokenExpires:
    """A WebSocket lives no longer than the token it was opened with: at the token's
    ``exp`` it is closed with 4401, and the client must reconnect with a fresh token.
    One opened with an API key is closed with 4401 as soon as this instance learns
    the key is revoked (:meth:`api.api_keys.ApiKeyRegistry.on_revoked`); one opened
    with a member's token, as soon as it learns the token was cut (logout, password
    changed or reset, account deactivated: :meth:`api.sessions.MemberSessions.on_revoked`).

    One timer (or revocation watch) per connection, armed once ``connection_init``
    is accepted and cancelled when the connection ends.
    """

    _expiry: asyncio.TimerHandle | None = None
    _unwatch: Callable[[], None] | None = None
    _closing: asyncio.Task | None = None
    # the handler's, which this is mixed into
    context: Any
    websocket: Any

    def _arm_expiry(self) -> None:
        app = getattr(getattr(self.context, "viewer", None), "app", None)
        keys = getattr(getattr(self.context, "services", None), "api_keys", None)
        if app is not None and keys is not None and self._unwatch is None:
            self._unwatch = keys.on_revoked(app.key_id, self._revoked)
        claims = getattr(self.context, "token_claims", None)
        sessions = getattr(getattr(self.context, "services", None), "sessions", None)
        if claims is not None and sessions is not None and self._unwatch is None:
            self._unwatch = sessions.on_revoked(claims, self._session_ended)
        expires = getattr(self.context, "token_expires_at", None)
        if expires is None or self._expiry is not None:
            return
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(expires - time.time(), 0), self._expired)

    def _expired(self) -> None:
        self._closing = asyncio.create_task(self._close(4401, "Token expired"))

    def _revoked(self) -> None:
        self._closing = asyncio.create_task(self._close(4401, "API key revoked"))

    def _session_ended(self) -> None:
        self._closing = asyncio.create_task(self._close(4401, "Token revoked"))

    async def _close(self, code: int, reason: str) -> None:
        with suppress(Exception):  # already closing: nothing left to do
            await self.websocket.close(code=code, reason=reason)

    def _disarm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self._unwatch is not None:
            self._unwatch()


class LegacyHandler(ClosesWhenTokenExpires, BaseGraphQLWSHandler["Context", None]):
    """graphql-ws (``IMBRACE_LEGACY_WS``), closed when its token expires too."""

    async def handle_connection_init(self, message) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._arm_expiry()

    async def cleanup(self) -> None:
        self._disarm_expiry()
        await super().cleanup()


class TransportHandler(ClosesWhenTokenExpires, TransportHandlerBase):
    """graphql-transport-ws, with groupable subscriptions served by a shared stream
    (the view's ``multiplexer``; None turns grouping off)."""

    async def handle_connection_init(self, message) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self._arm_expiry()

    async def shutdown(self) -> None:
        self._disarm_expiry()
        await super().shutdown()

    async def run_operation(self, operation: Operation) -> None:
        metrics = getattr(self.view, "metrics", None)
        if metrics is None:
            return await self._run_operation(operation)
        metrics.active_subscriptions.inc()
        try:
            await self._run_operation(operation)
        finally:
            metrics.active_subscriptions.dec()

    async def _run_operation(self, operation: Operation) -> None:
        multiplexer: Multiplexer | None = getattr(self.view, "multiplexer", None)
        if not multiplexer or (key := multiplexer.key(self, operation)) is None:
            return await super().run_operation(operation)
        ending = await multiplexer.serve(self, operation, key)
        if ending == "cancelled":
            return
        if isinstance(ending, Resume):
            return await self._run_alone(operation, ending)
        if isinstance(ending, tuple) and ending[0] == "refused":
            with suppress(OperationStreamClosed):
                await self.send_pre_execution_error(operation, ending[1])
            return
        await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _run_alone(self, operation: Operation, root: Resume) -> None:
        """The member's own stream, resuming after the event that ended its group."""
        try:
            source = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context,
                root_value=root,
                operation_name=operation.operation_name,
            )
            async with aclosing(source):
                await self.send_result_stream(operation, source)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except OperationStreamClosed:
            return

    def pre_execution_close_reason(self, error: GraphQLError) -> str | None:
        """A syntax error or an unknown ``operationName`` fails only its own operation, with an
        ``error`` message: strawberry would close the socket, ending every other subscription on it."""
        return None


class Shape(NamedTuple):
    """What grouping needs to know of a groupable operation, worked out once per query text."""

    operation: OperationDefinitionNode
    field: FieldNode
    per_viewer: bool  # it selects a field marked PerViewer
    after_variable: str | None  # the variable that carries ``after`` (grouped only while it is null)


@lru_cache(maxsize=256)
def _shape(schema: GraphQLSchema, query: str, operation_name: str | None) -> Shape | None:
    """None when the operation can't be grouped."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
        and (operation_name is None or (d.name is not None and d.name.value == operation_name))
    ]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    field = selections[0]
    if field.name.value not in GROUPED_FIELDS:
        return None
    after_variable = None
    for argument in field.arguments or ():
        if argument.name.value != "after":
            continue
        if isinstance(argument.value, VariableNode):
            after_variable = argument.value.name.value
            if any(
                d.variable.name.value == after_variable
                and d.default_value is not None
                and not isinstance(d.default_value, NullValueNode)
                for d in operations[0].variable_definitions or ()
            ):
                return None  # a default event id: resuming
        elif not isinstance(argument.value, NullValueNode):
            return None  # a literal event id: resuming
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    root = schema.subscription_type
    definition = root.fields.get(field.name.value) if root else None
    if definition is None:
        return None
    per_viewer = selects_per_viewer_field(schema, root, operations[0].selection_set, fragments)
    return Shape(operations[0], field, per_viewer, after_variable)


def _arguments(schema: GraphQLSchema, shape: Shape, variables: dict) -> dict | None:
    """The grouped field's arguments as parsed from the operation and its variables; None if invalid."""
    coerced = get_variable_values(schema, shape.operation.variable_definitions or (), variables)
    if isinstance(coerced, list):
        return None
    assert schema.subscription_type is not None  # _shape() found the field on it
    try:
        return get_argument_values(schema.subscription_type.fields[shape.field.name.value], shape.field, coerced)
    except GraphQLError:
        return None


__all__ = ["GroupRoot", "Multiplexer", "Resume", "TransportHandler"]
