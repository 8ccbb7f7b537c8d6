"""The notification center in the schema; the rules are :mod:`domain.usecases.notifications`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.descriptions import mutation_description
from api.graphql.enums import NotificationKind
from api.graphql.types import Conversation, Edge, PageInfo, UserError
from api.graphql.viewer_fields import PerViewer
from domain import entities as e
from domain.enums import ErrorCode
from domain.errors import Refused
from domain.usecases.notifications import MAX_MARK, mark_read, notification_of, notifications_of
from domain.usecases.rooms import may_grab_now
from domain.visibility import can_see


@strawberry.type(description="Something a member should look at.")
class Notification:
    entity: strawberry.Private[e.Notification]

    @strawberry.field(description="Notification id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Why you were notified.")
    def kind(self) -> NotificationKind:
        return self.entity.kind

    @strawberry.field(
        description="The conversation, if you can still see it (a grabbed offer may be gone).", extensions=[PerViewer()]
    )
    async def conversation(self, info: Info) -> Conversation | None:
        if self.entity.conversation_id is None:
            return None
        found = await info.context.loaders.conversation.load(self.entity.conversation_id)
        if found is None or not can_see(info.context.viewer, found):
            return None
        return Conversation(entity=found)

    @strawberry.field(description="Conversation id (null for WEBHOOK_DISABLED, which is about a webhook).")
    def conversation_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.entity.conversation_id) if self.entity.conversation_id is not None else None

    @strawberry.field(description="For WEBHOOK_DISABLED: the webhook that was disabled (see `webhook(id)`).")
    def webhook_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.entity.webhook_id) if self.entity.webhook_id is not None else None

    @strawberry.field(description="When it was created.")
    def created_at(self) -> datetime:
        return self.entity.created_at

    @strawberry.field(description="Whether you marked it read.")
    def read(self) -> bool:
        return self.entity.read

    @strawberry.field(
        description="A GRAB_OFFER you may take now: the rule `grabConversation` applies, "
        "judged when read (false for admins, and once grabbed or closed).",
        extensions=[PerViewer()],
    )
    async def can_grab(self, info: Info) -> bool:
        if self.entity.kind is not NotificationKind.GRAB_OFFER:
            return False
        ctx = info.context
        if self.entity.conversation_id is None:
            return False
        found = await ctx.loaders.conversation.load(self.entity.conversation_id)
        return may_grab_now(ctx.viewer, found, ctx.now, ctx.services.settings.thresholds)


@strawberry.type(description="A page of notifications, newest first.")
class NotificationConnection:
    edges: list[Edge[Notification]] = strawberry.field(description="Notifications.")
    page_info: PageInfo = strawberry.field(description="Pagination.")


@strawberry.type(description="Result of `markNotificationsRead`.")
class MarkNotificationsReadPayload:
    updated: int = strawberry.field(default=0, description="How many of your notifications were marked.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


async def load_notification(ctx, notification_id: str) -> Notification | None:
    found = await notification_of(ctx.services.store.notifications, ctx.viewer, notification_id)
    return Notification(entity=found) if found else None


async def list_notifications(ctx, unread_only: bool, first: int, after: str | None) -> NotificationConnection:
    page = await notifications_of(ctx.services.store.notifications, ctx.viewer, unread_only, first, after)
    edges = [Edge(cursor=n.id, node=Notification(entity=n)) for n in page.notifications]
    return NotificationConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None),
    )


@strawberry.input(description="Notifications to mark as read.")
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] = strawberry.field(description=f"Notification ids (at most {MAX_MARK}).")


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="Your notification center, newest first.")
    async def notifications(
        self,
        info: Info,
        unread_only: Annotated[bool, strawberry.argument(description="Only those not marked read.")] = False,
        first: Annotated[int, strawberry.argument(description="Page size, 0 to 100 (`INVALID_INPUT` otherwise).")] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="`endCursor` of the previous page; omitted: the newest first.")
        ] = None,
    ) -> NotificationConnection:
        return await list_notifications(info.context, unread_only, first, after)


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(
        description=mutation_description(
            "Mark some of your notifications as read; ids of others' notifications, or of none, are ignored.",
            {
                ErrorCode.INVALID_INPUT: f"more than {MAX_MARK} ids.",
            },
        )
    )
    async def mark_notifications_read(
        self,
        info: Info,
        input: Annotated[MarkNotificationsReadInput, strawberry.argument(description="The notifications to mark.")],
    ) -> MarkNotificationsReadPayload:
        try:
            updated = await mark_read(
                info.context.services.store.notifications, info.context.viewer, [str(i) for i in input.ids]
            )
        except Refused as refused:
            return MarkNotificationsReadPayload(
                errors=[UserError(code=refused.code, message=refused.message, field=refused.field)]
            )
        return MarkNotificationsReadPayload(updated=updated, errors=[])
