"""Mutation payloads: the object acted on, and ``errors`` for expected failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from api.graphql.types import (
    Channel,
    Conversation,
    Customer,
    Member,
    Message,
    MessageTemplate,
    Organization,
    Team,
    UserError,
)
from domain.errors import Refused

P = TypeVar("P")

WEBHOOK_URL = (
    "The channel's webhook URL to paste into the provider's dashboard (as `Channel.webhookUrl`); null for "
    "channel types without a native webhook."
)


WIDGET_SNIPPET = "WEB_WIDGET: the script tag to paste into the site's pages."
OUTBOUND_SECRET = (
    "A custom adapter's new outbound secret (`whsec_…`, Standard Webhooks): replies POSTed to `outboundUrl` are "
    "signed with it. Shown only this once; null when none was drawn."
)
IDENTITY_SECRET = (
    "WEB_WIDGET: the identity secret just drawn, shown only this once (it is stored encrypted and never "
    "returned again): the site's server signs its users' ids with it. Null when none was drawn."
)


def user_error(refused: Refused) -> UserError:
    return UserError(code=refused.code, message=refused.message, field=refused.field)


async def run(payload: Callable[..., P], action: Callable[[], Awaitable[dict[str, Any]]]) -> P:
    """Run a use case; a refusal becomes ``errors`` and every other field stays null."""
    try:
        return payload(**await action(), errors=[])
    except Refused as refused:
        return payload(errors=[user_error(refused)])


@strawberry.type(description="Result of `login`.")
class LoginPayload:
    token: str | None = strawberry.field(default=None, description="Bearer token for `Authorization`.")
    member: Member | None = strawberry.field(default=None, description="Who logged in.")
    organization: Organization | None = strawberry.field(default=None, description="Their organization.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `inviteMember`.")
class MemberPayload:
    member: Member | None = strawberry.field(default=None, description="The member.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of a team mutation.")
class TeamPayload:
    team: Team | None = strawberry.field(default=None, description="The team.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `connectChannel`.")
class ConnectChannelPayload:
    channel: Channel | None = strawberry.field(default=None, description="The channel.")
    ingest_key: str | None = strawberry.field(
        default=None, description="Secret for the `X-Channel-Key` header of the inbound webhook. Shown once."
    )
    webhook_url: str | None = strawberry.field(default=None, description=WEBHOOK_URL)
    widget_key: str | None = strawberry.field(
        default=None, description="WEB_WIDGET: the public widget key for the pages' script tag."
    )
    widget_snippet: str | None = strawberry.field(default=None, description=WIDGET_SNIPPET)
    identity_secret: str | None = strawberry.field(default=None, description=IDENTITY_SECRET)
    outbound_secret: str | None = strawberry.field(default=None, description=OUTBOUND_SECRET)
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `updateChannel`.")
class UpdateChannelPayload:
    channel: Channel | None = strawberry.field(default=None, description="The channel after the change.")
    widget_key: str | None = strawberry.field(
        default=None, description="WEB_WIDGET: the widget key now (a new one after `rotateWidgetKey`)."
    )
    widget_snippet: str | None = strawberry.field(default=None, description=WIDGET_SNIPPET)
    identity_secret: str | None = strawberry.field(default=None, description=IDENTITY_SECRET)
    outbound_secret: str | None = strawberry.field(default=None, description=OUTBOUND_SECRET)
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `setTyping`.")
class SetTypingPayload:
    conversation_id: strawberry.ID | None = strawberry.field(default=None, description="The conversation.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `updateChannelCredentials`.")
class UpdateChannelCredentialsPayload:
    channel: Channel | None = strawberry.field(
        default=None, description="The channel, with its new credentials' hints."
    )
    webhook_url: str | None = strawberry.field(default=None, description=WEBHOOK_URL)
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of a conversation action (join, grab, leave, close, release).")
class ConversationPayload:
    conversation: Conversation | None = strawberry.field(default=None, description="The conversation after it.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `transferConversation`.")
class TransferConversationPayload:
    conversation: Conversation | None = strawberry.field(
        default=None,
        description="The conversation after it; null also when the transfer took it out of your sight (a team "
        "admin sending it to a team they are not in).",
    )
    note: str | None = strawberry.field(default=None, description="The note, as kept on the TRANSFERRED event.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `sendMessage`.")
class SendMessagePayload:
    message: Message | None = strawberry.field(default=None, description="The stored message.")
    conversation: Conversation | None = strawberry.field(default=None, description="The conversation after it.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `markConversationRead`.")
class MarkConversationReadPayload:
    conversation: Conversation | None = strawberry.field(
        default=None, description="The conversation, with your `unreadCount` and `lastReadAt` after the mark."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `addNote`.")
class AddNotePayload:
    message: Message | None = strawberry.field(default=None, description="The stored note (kind NOTE).")
    conversation: Conversation | None = strawberry.field(default=None, description="The conversation after it.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `updateCustomer`.")
class CustomerPayload:
    customer: Customer | None = strawberry.field(default=None, description="The customer after the change.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `createMessageTemplate`.")
class MessageTemplatePayload:
    template: MessageTemplate | None = strawberry.field(default=None, description="The template.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
