"""Changing and removing teams, channels and message templates (owners and admins).

The rules are :mod:`domain.usecases.organization`; creating these objects stays in
:mod:`api.graphql.mutations`.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.descriptions import mutation_description
from api.graphql.enums import ChannelType, TeamMode
from api.graphql.payloads import MessageTemplatePayload, TeamPayload, run
from api.graphql.types import Channel, MessageTemplate, Team, UserError
from domain.enums import ErrorCode as E
from domain.usecases import organization as org
from domain.usecases.customers import UNSET

NOT_ADMIN = "you are not an owner or admin."


def _unset(value):
    return UNSET if value is strawberry.UNSET else value


@strawberry.input(description="A team's new name.")
class RenameTeamInput:
    id: strawberry.ID = strawberry.field(description="The team's id.")
    name: str = strawberry.field(description="Its new name, unique in the organization.")


@strawberry.input(description="How a team works from now on.")
class SetTeamModeInput:
    id: strawberry.ID = strawberry.field(description="The team's id.")
    mode: TeamMode = strawberry.field(description="GRAB or COLLABORATION.")


@strawberry.input(description="The team to delete, and where what it holds goes.")
class DeleteTeamInput:
    id: strawberry.ID = strawberry.field(description="The team's id.")
    transfer_to_team_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Another team of the organization that receives its channels and conversations; required "
        "while the team has any.",
    )


@strawberry.input(description="Changes to a message template; omitted fields are kept.")
class UpdateMessageTemplateInput:
    id: strawberry.ID = strawberry.field(description="The template's id.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="A new name (not null).")
    body: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new text with `{{variable}}` placeholders (not null)."
    )
    channel: ChannelType | None = strawberry.field(
        default=strawberry.UNSET, description="Only for this channel; null: for any channel."
    )
    whatsapp_name: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The approved WhatsApp template's name (lowercase letters, digits, `_`); null: the template's "
        "`name`.",
    )
    whatsapp_language: str | None = strawberry.field(
        default=strawberry.UNSET, description="The approved WhatsApp template's language code; null: `en_US`."
    )


@strawberry.type(description="Result of `deleteTeam`.")
class DeleteTeamPayload:
    deleted_team_id: strawberry.ID | None = strawberry.field(default=None, description="The deleted team's id.")
    transferred_conversations: int | None = strawberry.field(
        default=None,
        description="Open conversations transferred to `transferToTeamId` (each with its TRANSFERRED "
        "event and history line).",
    )
    moved_conversations: int | None = strawberry.field(
        default=None, description="Closed conversations moved to `transferToTeamId` with their history."
    )
    moved_channels: int | None = strawberry.field(
        default=None, description="Channels that now bring their customers to `transferToTeamId`."
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `disableChannel` and `enableChannel`.")
class ChannelPayload:
    channel: Channel | None = strawberry.field(default=None, description="The channel.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `rotateIngestKey`.")
class RotateIngestKeyPayload:
    channel: Channel | None = strawberry.field(default=None, description="The channel.")
    ingest_key: str | None = strawberry.field(
        default=None,
        description="The new `X-Channel-Key`, shown only this once (only its hash is stored). The old key stops "
        "working at once on this server, on every server within 10 seconds.",
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `deleteMessageTemplate`.")
class DeleteMessageTemplatePayload:
    deleted_template_id: strawberry.ID | None = strawberry.field(default=None, description="The deleted template's id.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


CHANNEL_ID = strawberry.argument(description="The channel's id.")
TEMPLATE_ID = strawberry.argument(description="The template's id.")


@strawberry.type
class OrganizationMutation:
    @strawberry.mutation(
        description=mutation_description(
            "Rename a team (owners and admins). Renaming it to its own name changes nothing.",
            {
                E.FORBIDDEN: NOT_ADMIN,
                E.NOT_FOUND: "no such team in your organization (`id`).",
                E.INVALID_INPUT: "the name is empty, too long or has control characters.",
                E.ALREADY_EXISTS: "another team has this name.",
            },
        )
    )
    async def rename_team(
        self, info: Info, input: Annotated[RenameTeamInput, strawberry.argument(description="Team and name.")]
    ) -> TeamPayload:
        ctx = info.context

        async def action():
            team = await org.rename_team(
                ctx.services.store, ctx.services.events, ctx.viewer, str(input.id), input.name, ctx.now
            )
            return {"team": Team(entity=team)}

        return await run(TeamPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Switch a team between GRAB and COLLABORATION (owners and admins); no conversation changes. To "
            "COLLABORATION: every member sees every conversation of the team, a grabbed one keeps its owner and "
            "room and the others may join it, and grab offers can no longer be taken. To GRAB: conversations "
            "nobody owns may be grabbed (who is in their room stays there); representatives see only those and "
            "their own, and leave the rooms of conversations someone else owns (a history line says so). Open "
            "subscriptions follow at once.",
            {E.FORBIDDEN: NOT_ADMIN, E.NOT_FOUND: "no such team in your organization (`id`)."},
        )
    )
    async def set_team_mode(
        self, info: Info, input: Annotated[SetTeamModeInput, strawberry.argument(description="Team and mode.")]
    ) -> TeamPayload:
        ctx = info.context

        async def action():
            s = ctx.services
            team = await org.set_team_mode(
                s.store, s.events, ctx.viewer, str(input.id), input.mode, ctx.now, s.settings.thresholds
            )
            return {"team": Team(entity=team)}

        return await run(TeamPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Delete a team (owners and admins). While it has channels or conversations (open or closed), name "
            "`transferToTeamId`: its channels move there, each open conversation is transferred there (as by "
            "`transferConversation`: nobody owns it, the customer waits as before), the closed ones follow with "
            "their history, then the team is deleted. Its members stop seeing its conversations at once.",
            {
                E.FORBIDDEN: NOT_ADMIN,
                E.NOT_FOUND: "no such team in your organization (`id`, or `transferToTeamId`).",
                E.TEAM_NOT_EMPTY: "the team still has channels or conversations and no `transferToTeamId` was "
                "given; nothing changed.",
                E.INVALID_INPUT: "`transferToTeamId` is the team itself.",
                E.CONVERSATION_CLOSED: "an open conversation closed while it was being transferred; what was "
                "moved stays moved and the team stays: delete it again.",
                E.ALREADY_GRABBED: "an open conversation was grabbed while it was being transferred (as "
                "CONVERSATION_CLOSED).",
                E.CONVERSATION_CHANGED: "an open conversation was transferred or kept changing meanwhile (as "
                "CONVERSATION_CLOSED).",
            },
        )
    )
    async def delete_team(
        self, info: Info, input: Annotated[DeleteTeamInput, strawberry.argument(description="The team to delete.")]
    ) -> DeleteTeamPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            to = str(input.transfer_to_team_id) if input.transfer_to_team_id is not None else None
            done = await org.delete_team(
                s.store, s.events, ctx.viewer, str(input.id), to, ctx.now, s.settings.thresholds
            )
            return {
                "deleted_team_id": strawberry.ID(done.team.id),
                "transferred_conversations": done.transferred,
                "moved_conversations": done.moved,
                "moved_channels": done.channels,
            }

        return await run(DeleteTeamPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Disable a channel (owners and admins): nothing comes in or goes out through it. Its inbound webhook "
            "answers 403 and stores nothing; provider webhooks (WhatsApp, Messenger, LINE, WeChat) are answered "
            "200 and their messages dropped, so the provider doesn't retry them forever; a web widget's sessions "
            "end (UNKNOWN_WIDGET); members' messages are refused (CHANNEL_DISABLED) and replies still queued fail "
            "(`errorCode` CHANNEL_DISABLED). Its conversations stay readable and take notes. Disabling it again "
            "changes nothing; `enableChannel` undoes it.",
            {E.FORBIDDEN: NOT_ADMIN, E.NOT_FOUND: "no such channel in your organization (`id`)."},
        )
    )
    async def disable_channel(self, info: Info, id: Annotated[strawberry.ID, CHANNEL_ID]) -> ChannelPayload:
        return await _set_enabled(info, id, False)

    @strawberry.mutation(
        description=mutation_description(
            "Enable a disabled channel again (owners and admins): messages flow again from now on (what came in "
            "or failed meanwhile is not replayed). Enabling a working channel changes nothing.",
            {E.FORBIDDEN: NOT_ADMIN, E.NOT_FOUND: "no such channel in your organization (`id`)."},
        )
    )
    async def enable_channel(self, info: Info, id: Annotated[strawberry.ID, CHANNEL_ID]) -> ChannelPayload:
        return await _set_enabled(info, id, True)

    @strawberry.mutation(
        description=mutation_description(
            "Draw a new ingest key (`X-Channel-Key` of the channel's inbound and presence webhooks) for a channel "
            "(owners and admins), returned only this once; the old key stops working.",
            {E.FORBIDDEN: NOT_ADMIN, E.NOT_FOUND: "no such channel in your organization (`id`)."},
        )
    )
    async def rotate_ingest_key(self, info: Info, id: Annotated[strawberry.ID, CHANNEL_ID]) -> RotateIngestKeyPayload:
        ctx = info.context

        async def action():
            channel, key = await org.rotate_ingest_key(ctx.services.store, ctx.viewer, str(id), ctx.now)
            return {"channel": Channel(entity=channel), "ingest_key": key}

        return await run(RotateIngestKeyPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Change a message template (organization or team admins); omitted fields are kept. Messages already "
            "sent with it keep their text.",
            {
                E.FORBIDDEN: "you are not an admin of the organization or of any team.",
                E.NOT_FOUND: "no such template in your organization (`id`).",
                E.INVALID_INPUT: "the name or body is null or breaks a rule, the body has more than 50 "
                "placeholders, or `whatsappName` / `whatsappLanguage` is not a WhatsApp template name / language "
                "code (`field` says which).",
            },
        )
    )
    async def update_message_template(
        self, info: Info, input: Annotated[UpdateMessageTemplateInput, strawberry.argument(description="Changes.")]
    ) -> MessageTemplatePayload:
        ctx = info.context

        async def action():
            changes = org.TemplateChanges(
                name=_unset(input.name),
                body=_unset(input.body),
                channel=_unset(input.channel),
                whatsapp_name=_unset(input.whatsapp_name),
                whatsapp_language=_unset(input.whatsapp_language),
            )
            template = await org.update_message_template(
                ctx.services.store, ctx.viewer, str(input.id), changes, ctx.now
            )
            return {"template": MessageTemplate(entity=template)}

        return await run(MessageTemplatePayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Delete a message template (organization or team admins), even one messages were sent with: they keep "
            "their text, and a WhatsApp template still queued is sent as written.",
            {
                E.FORBIDDEN: "you are not an admin of the organization or of any team.",
                E.NOT_FOUND: "no such template in your organization (`id`).",
            },
        )
    )
    async def delete_message_template(
        self, info: Info, id: Annotated[strawberry.ID, TEMPLATE_ID]
    ) -> DeleteMessageTemplatePayload:
        ctx = info.context

        async def action():
            template = await org.delete_message_template(ctx.services.store, ctx.viewer, str(id))
            return {"deleted_template_id": strawberry.ID(template.id)}

        return await run(DeleteMessageTemplatePayload, action)


async def _set_enabled(info: Info, channel_id, enabled: bool) -> ChannelPayload:
    ctx = info.context

    async def action():
        channel = await org.set_channel_enabled(ctx.services.store, ctx.viewer, str(channel_id), enabled, ctx.now)
        return {"channel": Channel(entity=channel)}

    return await run(ChannelPayload, action)
