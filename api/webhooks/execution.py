"""A webhook's payload: its subscription document executed for one event, as a live
subscription would execute it.

The schema's own subscription runs with a root value that hands it one stored event
(:class:`api.graphql.subscriptions.OneEvent`): the same resolvers judge the event (the
filter, visibility at the event's moment and now, HIDDEN) and render the selection, so a
webhook receives exactly what a subscriber with its visibility receives over WebSocket,
as the same JSON (``{"data": …}``, with ``errors`` when a field failed).

The caller is the webhook itself, as an app (the same kind of caller as an API key's, with
READ_CONVERSATIONS and the webhook's teams): no member, it sees every conversation of its
teams as their admins do (grabbed ones included), and ``joinedByMe`` is always false for it.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

from api.graphql.context import Context
from api.graphql.strawberry_adapter import PreExecutionError
from api.graphql.subscriptions import OneEvent
from api.hub import DispatchedEvent
from api.services import Services
from domain.entities import Conversation
from domain.enums import ApiKeyScope, OrgRole
from domain.events import GONE, Gone
from domain.visibility import App, Viewer
from domain.webhooks import Webhook

# The root fields a webhook may follow (a notification stream belongs to a member).
FIELDS = ("conversationEvents", "messageAdded")

DEFAULT_QUERY = """subscription WebhookDefault {
  conversationEvents {
    id
    kind
    at
    conversationId
    previousStatus
    actor { id name }
    conversation {
      id
      status
      createdAt
      waitingSince
      lastMessageAt
      closedAt
      closedReason
      team { id name }
      channel { id type name }
      customer { id name email phone }
      representatives { id name }
      owner { id name }
    }
    message {
      id
      seq
      kind
      text
      createdAt
      sender { kind member { id name } customer { id name } }
      attachments { url mimeType name size }
      deliveries { via status attempts errorCode lastError at }
    }
  }
}
"""


class QueryInvalid(Exception):
    """The webhook's document no longer runs (the schema changed under it)."""


class Execution:
    def __init__(self, services: Services, schema: Any) -> None:
        self.services = services
        self.schema = schema

    async def viewer(self, webhook: Webhook) -> Viewer:
        """The webhook as a caller: its teams (those that still exist), seen as their admins see them."""
        wanted = set(webhook.team_ids)
        teams = tuple(t for t in await self.services.store.teams(webhook.org_id) if t.id in wanted)
        return integration_viewer(webhook.org_id, webhook.id, teams)

    async def states(self, org_id: str, docs: list[dict]) -> dict[str, Conversation]:
        """The stored state of every conversation a page of events names, in one read: an event is
        delivered in full only if the webhook may still see its conversation (as for a replay)."""
        ids = list({d["conversation"]["_id"] for d in docs if d.get("conversation")})
        return {c.id: c for c in await self.services.store.conversations_by_ids(org_id, ids)} if ids else {}

    async def body(self, webhook: Webhook, viewer: Viewer, doc: dict, states: dict[str, Conversation]) -> bytes | None:
        """The JSON to POST for the event ``doc``; None when the webhook's subscription would
        deliver nothing for it. :class:`QueryInvalid` when its document no longer runs."""
        conversation_id = doc["conversation"]["_id"]
        now_state: Conversation | Gone = states.get(conversation_id, GONE)
        root = OneEvent(DispatchedEvent(doc), now_state)
        results = await self._run(webhook.query or DEFAULT_QUERY, viewer, root, f"webhook:{webhook.id}")
        if not results:
            return None
        result = results[0]
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        return json.dumps(payload).encode()

    async def refusal(self, query: str) -> str | None:
        """What is wrong with a webhook's document, if anything: it must be one subscription to
        one of :data:`FIELDS`, without variables or ``after`` (the webhook's cursor stands for
        it), and pass the checks and limits of any operation (validation, depth, tokens,
        aliases, cost)."""
        try:
            document = parse(query)
        except GraphQLError as error:
            return f"The query does not parse: {error.message}"
        except RecursionError:
            return "The query does not parse: it is nested too deeply."
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
            return "The query must be exactly one subscription operation."
        operation = operations[0]
        if operation.variable_definitions:
            return "The query may not declare variables: write the filter's values in it."
        selections = operation.selection_set.selections
        if len(selections) != 1 or not isinstance(selections[0], FieldNode) or selections[0].name.value not in FIELDS:
            return "The subscription must select exactly one of `conversationEvents` and `messageAdded`."
        if any(argument.name.value == "after" for argument in selections[0].arguments or ()):
            return "The subscription may not pass `after`: the webhook keeps its own place in the event log."
        try:
            await self._run(query, integration_viewer("", "new", ()), OneEvent(None, None))
        except QueryInvalid as error:
            return str(error)
        return None

    async def _run(self, query: str, viewer: Viewer, root: OneEvent, request_id: str = "webhook") -> list[Any]:
        """The results of the subscription for ``root``'s event (one, or none); ``request_id``
        names the webhook in the log line of an error the result masks."""
        context = Context(services=self.services, viewer=viewer, now=self.services.clock(), request_id=request_id)
        source = await self.schema.subscribe(query, context_value=context, root_value=root)
        results = []
        async with aclosing(source):
            async for result in source:
                if isinstance(result, PreExecutionError):
                    errors = "; ".join(error.message for error in result.errors or ())
                    raise QueryInvalid(f"The query is not valid: {errors}")
                results.append(result)
        return results


def integration_viewer(org_id: str, webhook_id: str, teams: tuple) -> Viewer:
    """The webhook as an app (:class:`domain.visibility.App`) that may read conversations, of
    exactly these teams (none left: it sees nothing), as an API key's app does."""
    app = App(
        key_id=f"webhook:{webhook_id}",
        scopes=frozenset({ApiKeyScope.READ_CONVERSATIONS}),
        team_ids=frozenset(team.id for team in teams),
    )
    return Viewer(member_id=app.key_id, org_id=org_id, org_role=OrgRole.MEMBER, name="Webhook", teams=teams, app=app)
