"""Assembles the schema with its protective extensions."""

from __future__ import annotations

from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.graphql.direct_fields import DirectFieldsExecutor
from api.graphql.extensions import (
    CountOperations,
    DocumentValidationCache,
    KeepMutationsWhole,
    PresentErrors,
    QueryCostLimit,
    RequireAuthentication,
    SafeParserCache,
)
from api.graphql.mutations import Mutation
from api.graphql.queries import Query
from api.graphql.scopes import RequireScopes
from api.graphql.sharing import SharedEventExecutor
from api.graphql.strawberry_adapter import SchemaBase, mark_source_only_resolvers, resolve_directly
from api.settings import Settings


class Schema(SchemaBase):
    def process_errors(self, errors, execution_context=None) -> None:
        """Logging happens in :class:`PresentErrors`, which knows the request id and
        leaves expected refusals (typed codes) and client mistakes out of the log."""

    def __init__(self, *args, hide_suggestions: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hide_suggestions = hide_suggestions

    def execution_context_kwargs(self, kwargs: dict) -> dict:
        """Variable coercion at execution also says "Did you mean …"; graphql-core leaves it out on request."""
        if self.hide_suggestions:
            kwargs["hide_suggestions"] = True
        return kwargs


def merged_root(name: str, types: tuple[type, ...]) -> type:
    """``merge_types``, keeping the first type's description (``merge_types`` drops it)."""
    root = merge_types(name, types)
    # both set by strawberry.type and merge_types, which their stubs do not say
    root.__strawberry_definition__.description = types[0].__strawberry_definition__.description  # type: ignore[attr-defined]
    return root


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or Settings()
    # The limiters' rule classes are built once: each limiter instance makes a new
    # class, and the validation cache keys on the rules, so per-request classes
    # would make every lookup a miss.
    rules = (
        QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules
        + MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules
    )
    introspection = settings.introspection_policy
    if introspection == "off":
        rules.append(NoSchemaIntrospectionCustomRule)
    hide_suggestions = settings.hide_suggestions
    extensions = [
        CountOperations,
        PresentErrors,
        lambda: RequireAuthentication(public_introspection=introspection == "public"),
        KeepMutationsWhole,
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: SafeParserCache(maxsize=256),
        lambda: DocumentValidationCache(hide_suggestions=hide_suggestions),
        lambda: AddValidationRules(rules),
        RequireScopes,
        lambda: QueryCostLimit(max_nodes=settings.max_query_nodes),
    ]
    from api.graphql.accounts import AccountMutation
    from api.graphql.api_keys import ApiKeyMutation, ApiKeyQuery
    from api.graphql.availability import AvailabilityMutation, AvailabilitySubscription
    from api.graphql.notifications import NotificationMutation, NotificationQuery
    from api.graphql.organization import OrganizationMutation
    from api.graphql.search import SearchQuery
    from api.graphql.subscriptions import Subscription
    from api.graphql.webhooks import WebhookMutation, WebhookQuery

    query = merged_root("Query", (Query, NotificationQuery, ApiKeyQuery, WebhookQuery, SearchQuery))
    mutation = merged_root(
        "Mutation",
        (
            Mutation,
            NotificationMutation,
            ApiKeyMutation,
            WebhookMutation,
            AccountMutation,
            OrganizationMutation,
            AvailabilityMutation,
        ),
    )
    subscription = merged_root("Subscription", (Subscription, AvailabilitySubscription))
    schema = Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=hide_suggestions),
        # Off only to measure what sharing saves (bench/fanout.py).
        execution_context_class=SharedEventExecutor if settings.shared_execution else DirectFieldsExecutor,
        hide_suggestions=hide_suggestions,
    )
    resolve_directly(schema)
    mark_source_only_resolvers(schema)
    return schema
