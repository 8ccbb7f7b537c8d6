"""What an API key's app may reach: one map from root field to the scope it needs.

An app (``Authorization: Bearer imb_…``) acts within its key's scopes and teams.
Which root fields each scope opens is data, :data:`APP_FIELDS`, enforced in one
place, :class:`RequireScopes`, before anything runs, over HTTP and WebSocket
alike: an operation that selects a root field the key's scopes don't open is
refused whole with ``FORBIDDEN``. A root field not in the map is for members
only, so a field added to the schema stays closed to apps until it is listed
here. What an opened field then shows is bounded by the app's visibility (its
teams: :func:`domain.visibility.visibility_of`).
"""

from __future__ import annotations

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from domain.enums import ApiKeyScope
from domain.visibility import App

READ = ApiKeyScope.READ_CONVERSATIONS
SEND = ApiKeyScope.SEND_MESSAGES
ANY_KEY = None  # opened to every working key, whatever its scopes

# (root type, field) -> the scope that opens it to apps. Not listed: members only.
APP_FIELDS: dict[tuple[str, str], ApiKeyScope | None] = {
    ("Query", "organization"): ANY_KEY,
    ("Query", "teams"): READ,  # the key's teams
    ("Query", "conversation"): READ,
    ("Query", "conversations"): READ,
    ("Query", "conversationCounts"): READ,
    ("Query", "searchMessages"): READ,  # within the key's teams
    ("Query", "messageTemplates"): SEND,  # to send TEMPLATE and WHATSAPP_TEMPLATE messages
    ("Mutation", "sendMessage"): SEND,
    ("Subscription", "conversationEvents"): READ,
    ("Subscription", "messageAdded"): READ,
    # integrators' webhooks (api/graphql/webhooks.py), within the key's teams
    **{
        (root, field): ApiKeyScope.MANAGE_WEBHOOKS
        for root, field in (
            ("Query", "webhooks"),
            ("Query", "webhook"),
            ("Mutation", "createWebhook"),
            ("Mutation", "updateWebhook"),
            ("Mutation", "deleteWebhook"),
            ("Mutation", "rotateWebhookSecret"),
            ("Mutation", "redeliverWebhook"),
            ("Mutation", "pingWebhook"),
        )
    },
}

ROOT_TYPES = {
    OperationType.QUERY: "Query",
    OperationType.MUTATION: "Mutation",
    OperationType.SUBSCRIPTION: "Subscription",
}


def app_may(app: App, root: str, field: str) -> bool:
    """Whether the app's scopes open ``root.field`` (introspection fields are always open)."""
    if field.startswith("__"):
        return True
    if (root, field) not in APP_FIELDS:
        return False
    scope = APP_FIELDS[(root, field)]
    return scope is ANY_KEY or scope in app.scopes


def root_fields(document, operation_name: str | None) -> tuple[str, list[str]] | None:
    """The root type and the root field names the operation selects (through fragments);
    None when the document doesn't name exactly one operation."""
    operations = [
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
        and (operation_name is None or (d.name is not None and d.name.value == operation_name))
    ]
    if len(operations) != 1:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    names: list[str] = []

    def walk(selection_set: SelectionSetNode, seen: frozenset[str]) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names.append(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                walk(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:
                    walk(fragments[name].selection_set, seen | {name})

    walk(operations[0].selection_set, frozenset())
    return ROOT_TYPES[operations[0].operation], names


def refusal(app: App, document, operation_name: str | None) -> GraphQLError | None:
    """Why the app may not run this operation, if it may not."""
    found = root_fields(document, operation_name)
    if found is None:
        return None  # graphql-core refuses it before anything runs
    root, names = found
    closed = sorted({name for name in names if not app_may(app, root, name)})
    if not closed:
        return None
    reasons = [
        f"`{name}` needs the scope {scope.value}"
        if (scope := APP_FIELDS.get((root, name)))
        else f"`{name}` is for members only"
        for name in closed
    ]
    return GraphQLError(
        f"This API key's scopes don't allow this operation: {'; '.join(reasons)}.",
        extensions={"code": "FORBIDDEN", "fields": closed},
    )


class RequireScopes(SchemaExtension):
    """Refuses, before it runs, an app's operation that reaches beyond its key's scopes.

    After validation (a document that doesn't validate is refused for that), as a
    pre-execution error: the HTTP answer has no data, and over WebSocket only the
    operation fails (an ``error`` message), not the socket.
    """

    def on_validate(self):
        # Before the yield, after DocumentValidationCache's (listed earlier): strawberry
        # decides whether to execute before the validation hooks' exits run.
        context = self.execution_context
        app = getattr(getattr(context.context, "viewer", None), "app", None)
        if app is not None and not context.pre_execution_errors and context.graphql_document is not None:
            refused = refusal(app, context.graphql_document, context.operation_name)
            if refused is not None:
                # a new list: the validation cache shares the one it holds between requests
                context.pre_execution_errors = [refused]
        yield
