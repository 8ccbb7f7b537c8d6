"""``searchMessages``: messages holding some words, with their conversations, within what
the caller may see (domain/search.py decides; api/store/search.py reads the text index)."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.inputs import ConversationFilter
from api.graphql.queries import to_domain_filter
from api.graphql.types import Conversation, Message, PageInfo
from api.store.search import decode_cursor, encode_cursor
from domain import search
from domain.listing import MAX_PAGE_SIZE, check_page_size


@strawberry.type(description="A message that holds every word searched for, with its conversation.")
class MessageSearchEdge:
    cursor: str = strawberry.field(description="Opaque position of this result (pass as `after` to continue).")
    node: Message = strawberry.field(description="The message.")
    conversation: Conversation = strawberry.field(description="The conversation it was written in.")


@strawberry.type(
    description="Messages matching a search, newest first. A page may hold fewer than `first` results while "
    "`pageInfo.hasNextPage` is true: each request examines at most "
    f"{search.MAX_EXAMINED} candidate messages; continue with `after: pageInfo.endCursor`."
)
class MessageSearchConnection:
    edges: list[MessageSearchEdge] = strawberry.field(description="Matching messages, newest first.")
    page_info: PageInfo = strawberry.field(
        description="`endCursor` resumes after the last result, or after the last candidate examined when the "
        "examination limit ended the page early."
    )
    examined: int = strawberry.field(
        description="Candidate messages (holding the words, in any conversation of the organization) this "
        "request examined to find these results; at most "
        f"{search.MAX_EXAMINED}."
    )


@strawberry.type(description="Message search.")
class SearchQuery:
    @strawberry.field(
        description="Messages whose text holds every word of `query` (whole words; case and accents ignored; "
        "punctuation separates words), newest first, only in conversations you may see (grab privacy "
        "included) and of your organization. Internal notes are searched; system lines (joined, grabbed, "
        "closed...) are not. Errors (top-level, with `extensions.code` and `extensions.field`): "
        f"`INVALID_INPUT` for an empty query, one longer than {search.MAX_QUERY_LENGTH} characters or with "
        f"more than {search.MAX_TERMS} different words, `first` outside 0 to {MAX_PAGE_SIZE}, or a cursor "
        "not from this field; `UNAUTHENTICATED` without a valid token; `FORBIDDEN` for an API key without "
        "the `READ_CONVERSATIONS` scope."
    )
    async def search_messages(
        self,
        info: Info,
        query: Annotated[
            str,
            strawberry.argument(
                description=f"The words to find, up to {search.MAX_QUERY_LENGTH} characters and "
                f"{search.MAX_TERMS} different words; a message matches when it holds all of them."
            ),
        ],
        filter: Annotated[
            ConversationFilter | None,
            strawberry.argument(
                description="Only messages of conversations this filter selects, as in the conversation list, "
                "except that without `statuses` conversations of every status are searched, closed ones "
                "included; its `search` narrows by the customer's name, email or phone."
            ),
        ] = None,
        first: Annotated[
            int,
            strawberry.argument(description=f"Page size, 0 to {MAX_PAGE_SIZE} (`INVALID_INPUT` otherwise)."),
        ] = 20,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="`pageInfo.endCursor` of the previous page of the same search; omitted: the newest matches."
            ),
        ] = None,
    ) -> MessageSearchConnection:
        ctx = info.context
        check_page_size(first)
        terms = search.query_terms(query)
        position = decode_cursor(after) if after else None
        allowed = search.conversation_criteria(
            ctx.viewer, to_domain_filter(filter), ctx.now, ctx.services.settings.thresholds
        )
        found = await search.search_messages(ctx.services.searcher, ctx.viewer, terms, allowed, first, position)
        edges = [
            MessageSearchEdge(
                cursor=encode_cursor(hit.position),
                node=Message(entity=hit.message),
                conversation=Conversation(entity=hit.conversation),
            )
            for hit in found.hits
        ]
        return MessageSearchConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=found.has_next, end_cursor=encode_cursor(found.end) if found.end else None
            ),
            examined=found.examined,
        )
