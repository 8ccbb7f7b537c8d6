"""Write side of the schema: thin adapters from inputs to domain use cases."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.graphql.inputs import (
    AddTeamMemberInput, ConnectChannelInput, CreateMessageTemplateInput, CreateTeamInput, InviteMemberInput,
    LoginInput, RemoveTeamMemberInput, SendMessageInput, UpdateCustomerInput,
)
from api.graphql.payloads import (
    ConnectChannelPayload, ConversationPayload, CustomerPayload, LoginPayload, MemberPayload,
    MessageTemplatePayload, SendMessagePayload, TeamPayload, run,
)
from api.graphql.types import Channel, Conversation, Customer, Member, Message, MessageTemplate, Organization, Team
from domain.errors import Refused
from domain.usecases import customers, login, messaging, onboarding, rooms


class UploadedFile:
    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename = filename
        self.content_type = content_type
        self.data = data


async def read_uploads(uploads, limit: int) -> tuple[UploadedFile, ...]:
    """Reads at most ``limit + 1`` bytes of each, enough to refuse an oversized file."""
    files = []
    for upload in uploads or ():
        data = await upload.read(limit + 1)
        files.append(UploadedFile(upload.filename or "file", upload.content_type or "", data))
    return tuple(files)


def _unset(value):
    return customers.UNSET if value is strawberry.UNSET else value


@strawberry.type(description="Mutations. Every one but `login` needs `Authorization: Bearer <token>`.")
class Mutation:
    @strawberry.mutation(description="Exchange email and password for a bearer token.")
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        s = info.context.services

        async def action():
            try:
                member = await login.login(s.store, s.passwords, s.store, input.email, input.password, s.clock(),
                                           s.settings.login_max_failures, s.settings.login_window_s)
            except Refused as refused:
                s.metrics.login_refused(refused.code)
                raise
            org = await s.store.organization(member.org_id)
            return {"token": s.tokens.issue(member.id, member.org_id), "member": Member(entity=member),
                    "organization": Organization.of(org)}
        return await run(LoginPayload, action)

    @strawberry.mutation(description="Add a member to your organization (owners and admins).")
    async def invite_member(self, info: Info, input: InviteMemberInput) -> MemberPayload:
        ctx = info.context

        async def action():
            member = await onboarding.invite_member(ctx.services.store, ctx.services.passwords, ctx.viewer,
                                                    input.email, input.name, input.password, input.role, ctx.now)
            return {"member": Member(entity=member)}
        return await run(MemberPayload, action)

    @strawberry.mutation(description="Create a team (owners and admins).")
    async def create_team(self, info: Info, input: CreateTeamInput) -> TeamPayload:
        ctx = info.context

        async def action():
            team = await onboarding.create_team(ctx.services.store, ctx.viewer, input.name, input.mode, ctx.now)
            return {"team": Team(entity=team)}
        return await run(TeamPayload, action)

    @strawberry.mutation(description="Put a member in a team, or change their team role (owners and admins).")
    async def add_team_member(self, info: Info, input: AddTeamMemberInput) -> TeamPayload:
        ctx = info.context

        async def action():
            team = await onboarding.add_team_member(ctx.services.store, ctx.viewer, str(input.team_id),
                                                    str(input.member_id), input.role)
            await ctx.services.events.publish_teams_changed(ctx.viewer.org_id, ctx.now)
            return {"team": Team(entity=team)}
        return await run(TeamPayload, action)

    @strawberry.mutation(description="Take a member out of a team (owners and admins).")
    async def remove_team_member(self, info: Info, input: RemoveTeamMemberInput) -> TeamPayload:
        ctx = info.context

        async def action():
            team = await onboarding.remove_team_member(ctx.services.store, ctx.services.events, ctx.viewer,
                                                       str(input.team_id), str(input.member_id), ctx.now,
                                                       ctx.services.settings.thresholds)
            return {"team": Team(entity=team)}
        return await run(TeamPayload, action)

    @strawberry.mutation(description="Connect a channel to a team; returns its ingest key once.")
    async def connect_channel(self, info: Info, input: ConnectChannelInput) -> ConnectChannelPayload:
        ctx = info.context

        async def action():
            channel, key = await onboarding.connect_channel(ctx.services.store, ctx.viewer, input.type, input.name,
                                                            str(input.team_id), ctx.now)
            return {"channel": Channel(entity=channel), "ingest_key": key}
        return await run(ConnectChannelPayload, action)

    @strawberry.mutation(description="Enter the room. GRAB-team representatives must grab first.")
    async def join_conversation(self, info: Info, id: strawberry.ID) -> ConversationPayload:
        return await _room_action(info, rooms.join_conversation, id)

    @strawberry.mutation(description="Own a GRAB-team conversation; exactly one concurrent caller wins.")
    async def grab_conversation(self, info: Info, id: strawberry.ID) -> ConversationPayload:
        return await _room_action(info, rooms.grab_conversation, id)

    @strawberry.mutation(description="Leave the room; an owner leaving releases the conversation for grabbing.")
    async def leave_conversation(self, info: Info, id: strawberry.ID) -> ConversationPayload:
        return await _room_action(info, rooms.leave_conversation, id)

    @strawberry.mutation(description="Close the conversation (a member in the room, or an admin).")
    async def close_conversation(self, info: Info, id: strawberry.ID) -> ConversationPayload:
        return await _room_action(info, rooms.close_conversation, id)

    @strawberry.mutation(description="Send a message to the customer (you must be in the room).")
    async def send_message(self, info: Info, input: SendMessageInput) -> SendMessagePayload:
        ctx = info.context
        s = ctx.services

        async def action():
            uploads = await read_uploads(input.attachments, s.settings.messaging.max_upload_bytes)
            draft = messaging.MessageDraft(
                conversation_id=str(input.conversation_id), kind=input.kind, text=input.text,
                template_id=str(input.template_id) if input.template_id else None,
                variables=input.variables, uploads=uploads)
            message, conversation = await messaging.send_message(
                s.store, s.files, s.events, ctx.viewer, draft, ctx.now, s.settings.thresholds,
                s.settings.messaging)
            return {"message": Message(entity=message), "conversation": Conversation(entity=conversation)}
        return await run(SendMessagePayload, action)

    @strawberry.mutation(description="Edit a customer's details (any member who can see their conversation).")
    async def update_customer(self, info: Info, input: UpdateCustomerInput) -> CustomerPayload:
        ctx = info.context

        async def action():
            changes = customers.CustomerChanges(
                id=str(input.id), name=_unset(input.name), email=_unset(input.email), phone=_unset(input.phone),
                attributes=_unset(input.attributes))
            customer = await customers.update_customer(ctx.services.store, ctx.services.events, ctx.viewer,
                                                       changes, ctx.now)
            return {"customer": Customer(entity=customer)}
        return await run(CustomerPayload, action)

    @strawberry.mutation(description="Create a message template (admins).")
    async def create_message_template(self, info: Info, input: CreateMessageTemplateInput) -> MessageTemplatePayload:
        ctx = info.context

        async def action():
            template = await onboarding.create_message_template(ctx.services.store, ctx.viewer, input.name,
                                                                input.body, input.channel, ctx.now)
            return {"template": MessageTemplate(entity=template)}
        return await run(MessageTemplatePayload, action)


async def _room_action(info: Info, use_case, conversation_id) -> ConversationPayload:
    ctx = info.context

    async def action():
        conversation = await use_case(ctx.services.store, ctx.services.events, ctx.viewer, str(conversation_id),
                                      ctx.now, ctx.services.settings.thresholds)
        return {"conversation": Conversation(entity=conversation)}
    return await run(ConversationPayload, action)
