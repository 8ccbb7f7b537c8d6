"""Read side of the schema."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.enums import ChannelType, ConversationOrder
from api.graphql.inputs import ConversationFilter
from api.graphql.prefetch import prefetch_page
from api.graphql.types import (
    Channel,
    Conversation,
    ConversationConnection,
    Edge,
    Member,
    MessageTemplate,
    Organization,
    PageInfo,
    StatusCount,
    Team,
)
from domain import listing
from domain.criteria import all_of
from domain.enums import StatusFilter
from domain.errors import Refused
from domain.listing import MAX_PAGE_SIZE
from domain.reading import unread_criteria
from domain.search import list_terms
from domain.usecases.rooms import load_visible
from domain.visibility import teams_visible_to


def to_domain_filter(flt: ConversationFilter | None) -> listing.ConversationFilter:
    if flt is None:
        return listing.ConversationFilter()
    return listing.ConversationFilter(
        view=flt.view,
        team_ids=tuple(str(t) for t in flt.team_ids) if flt.team_ids is not None else None,
        statuses=tuple(flt.statuses) if flt.statuses is not None else None,
        channels=tuple(flt.channels) if flt.channels is not None else None,
        search=flt.search,
        channel_ids=tuple(str(c) for c in flt.channel_ids) if flt.channel_ids is not None else None,
    )


async def mentioned_in(ctx, flt: listing.ConversationFilter) -> tuple[str, ...]:
    """Conversations whose messages hold the words of the filter's ``search`` (one command)."""
    terms = list_terms(flt.search)
    return await ctx.services.searcher.conversations_mentioning(ctx.viewer.org_id, terms) if terms else ()


FILTER = strawberry.argument(
    description="Which conversations, as in the page's filter block; omitted: every open conversation you can see."
)


@strawberry.type(
    description="The root of all reads. Every field needs `Authorization: Bearer <token>` (a member's token, or "
    "an API key whose scopes allow it); without a valid token the whole request fails with the top-level error "
    "`UNAUTHENTICATED`."
)
class Query:
    @strawberry.field(description="You.")
    async def me(self, info: Info) -> Member | None:
        ctx = info.context
        found = await ctx.services.store.member(ctx.viewer.org_id, ctx.viewer.member_id)
        return Member(entity=found) if found else None

    @strawberry.field(description="Your organization.")
    async def organization(self, info: Info) -> Organization | None:
        found = await info.context.services.store.organization(info.context.viewer.org_id)
        return Organization.of(found) if found else None

    @strawberry.field(description="Members of your organization.")
    async def members(self, info: Info) -> list[Member]:
        return [Member(entity=m) for m in await info.context.services.store.members(info.context.viewer.org_id)]

    @strawberry.field(
        description="Teams you belong to (all teams for organization owners and admins; for an API key's app, "
        "its teams)."
    )
    def teams(self, info: Info) -> list[Team]:
        viewer = info.context.viewer
        return [Team(entity=t) for t in teams_visible_to(viewer, viewer.teams)]

    @strawberry.field(description="Connected channels of your organization.")
    async def channels(self, info: Info) -> list[Channel]:
        return [Channel(entity=c) for c in await info.context.services.store.channels(info.context.viewer.org_id)]

    @strawberry.field(description="One conversation; null when it doesn't exist or you may not see it.")
    async def conversation(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The conversation's id.")]
    ) -> Conversation | None:
        try:
            found = await load_visible(info.context.services.store, info.context.viewer, str(id))
        except Refused:
            return None
        return Conversation(entity=found)

    @strawberry.field(description="The conversation list: filtered, ordered, paged by opaque cursors.")
    async def conversations(
        self,
        info: Info,
        filter: Annotated[ConversationFilter | None, FILTER] = None,
        order_by: Annotated[
            ConversationOrder, strawberry.argument(description="The order of the list.")
        ] = ConversationOrder.LAST_ACTIVITY_DESC,
        first: Annotated[
            int, strawberry.argument(description=f"Page size, 0 to {MAX_PAGE_SIZE} (`INVALID_INPUT` otherwise).")
        ] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="`endCursor` of the previous page, listed with the same `orderBy`; omitted: the first page."
            ),
        ] = None,
    ) -> ConversationConnection:
        ctx = info.context
        listing.check_page_size(first)
        flt = to_domain_filter(filter)
        criteria = listing.list_criteria(
            ctx.viewer, flt, ctx.now, ctx.services.settings.thresholds, await mentioned_in(ctx, flt)
        )
        page = await ctx.services.lister.page(criteria, order_by, first, after, ctx.now)
        await prefetch_page(info, [c for c, _ in page.items])
        edges = [Edge(cursor=cursor, node=Conversation(entity=c)) for c, cursor in page.items]
        return ConversationConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None),
            total=lambda: ctx.services.lister.count(criteria),
        )

    @strawberry.field(
        description="Sidebar badges: how many conversations each status filter would list, one badge per "
        "`StatusFilter` value (a conversation matching several filters is counted under each)."
    )
    async def conversation_counts(
        self,
        info: Info,
        filter: Annotated[
            ConversationFilter | None,
            strawberry.argument(
                description="Narrows every badge as it narrows the list; its `statuses` are ignored (each badge "
                "counts one status filter)."
            ),
        ] = None,
    ) -> list[StatusCount]:
        ctx = info.context
        t = ctx.services.settings.thresholds
        flt = to_domain_filter(filter)
        narrowing = listing.narrowing_criteria(ctx.viewer, flt, await mentioned_in(ctx, flt))
        per_status = {s: listing.count_criteria(s, ctx.now, t) for s in StatusFilter}
        counts = await ctx.services.lister.counts(narrowing, per_status)
        unread = unread_criteria(ctx.viewer.member_id)

        def unread_of(status: StatusFilter):
            return lambda: ctx.services.lister.count(all_of(narrowing, per_status[status], unread))

        return [StatusCount(status=s, count=counts[s], unread_of=unread_of(s)) for s in StatusFilter]

    @strawberry.field(description="Message templates, optionally only those usable on a channel type.")
    async def message_templates(
        self,
        info: Info,
        channel: Annotated[
            ChannelType | None,
            strawberry.argument(
                description="Only templates usable on this channel type: those for it and those for any "
                "channel; omitted: every template."
            ),
        ] = None,
    ) -> list[MessageTemplate]:
        found = await info.context.services.store.templates(info.context.viewer.org_id, channel)
        return [MessageTemplate(entity=t) for t in found]
