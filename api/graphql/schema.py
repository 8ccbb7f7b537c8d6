"""Assembles the schema with its protective extensions."""

from __future__ import annotations

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.graphql.extensions import CountOperations, DocumentValidationCache, PresentErrors, RequireAuthentication
from api.graphql.mutations import Mutation
from api.graphql.sharing import SharedEventExecutor
from api.graphql.queries import Query
from api.settings import Settings


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Logging happens in :class:`PresentErrors`, which knows the request id and
        leaves expected refusals (typed codes) and client mistakes out of the log."""


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or Settings()
    # The limiters' rule classes are built once: each limiter instance makes a new
    # class, and the validation cache keys on the rules, so per-request classes
    # would make every lookup a miss.
    rules = (QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules
             + MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules)
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions = [
        CountOperations,
        PresentErrors,
        RequireAuthentication,
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: ParserCache(maxsize=256),
        DocumentValidationCache,
        lambda: AddValidationRules(rules),
    ]
    from api.graphql.notifications import NotificationMutation, NotificationQuery
    from api.graphql.subscriptions import Subscription

    query = merge_types("Query", (Query, NotificationQuery))
    mutation = merge_types("Mutation", (Mutation, NotificationMutation))
    return Schema(
        query=query, mutation=mutation, subscription=Subscription, extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=settings.production),
        # Off only to measure what sharing saves (bench/fanout.py).
        execution_context_class=SharedEventExecutor if settings.shared_execution else None,
    )
