"""Write side of the schema: thin adapters from inputs to domain use cases."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from api.channels.urls import webhook_url
from api.graphql.descriptions import mutation_description
from api.graphql.inputs import (
    AddNoteInput,
    AddTeamMemberInput,
    ConnectChannelInput,
    CreateMessageTemplateInput,
    CreateTeamInput,
    InviteMemberInput,
    LoginInput,
    MarkConversationReadInput,
    RemoveTeamMemberInput,
    SendMessageInput,
    TransferConversationInput,
    UpdateChannelCredentialsInput,
    UpdateChannelInput,
    UpdateCustomerInput,
    credentials_of,
)
from api.graphql.payloads import (
    AddNotePayload,
    ConnectChannelPayload,
    ConversationPayload,
    CustomerPayload,
    LoginPayload,
    MarkConversationReadPayload,
    MemberPayload,
    MessageTemplatePayload,
    SendMessagePayload,
    SetTypingPayload,
    TeamPayload,
    TransferConversationPayload,
    UpdateChannelCredentialsPayload,
    UpdateChannelPayload,
    run,
)
from api.graphql.types import Channel, Conversation, Customer, Member, Message, MessageTemplate, Organization, Team
from api.widget.snippet import widget_snippet
from domain.enums import ChannelType
from domain.enums import ErrorCode as E
from domain.errors import Refused, invalid
from domain.usecases import customers, login, messaging, notes, onboarding, reading, rooms, widget
from domain.visibility import can_see


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


def _input(what: str):
    return strawberry.argument(description=f"The {what}.")


CONVERSATION_ID = strawberry.argument(description="The conversation's id.")
NO_CONVERSATION = "the conversation doesn't exist or you may not see it."


@strawberry.type(
    description="The root of all writes. Every mutation but `login` needs "
    "`Authorization: Bearer <token>` (a member's token, or an API key whose scopes allow it); expected failures "
    "come back in the payload's `errors`, with the other payload fields null."
)
class Mutation:
    @strawberry.mutation(
        description=mutation_description(
            "Exchange email and password for a bearer token.",
            {
                E.INVALID_CREDENTIALS: "the email or the password is wrong (the same answer for both).",
                E.TOO_MANY_ATTEMPTS: "too many failed logins from your address, or for this email and address, "
                "recently; or this email is in its growing delay. Try again later.",
                E.INVALID_INPUT: "the email or the password is not well-formed text (a lone surrogate).",
                E.ACCOUNT_DEACTIVATED: "the email and password are right, but an owner or admin deactivated "
                "the account.",
            },
            public=True,
        )
    )
    async def login(self, info: Info, input: Annotated[LoginInput, _input("credentials")]) -> LoginPayload:
        s = info.context.services

        async def action():
            try:
                member = await login.login(
                    s.store,
                    s.passwords,
                    s.store,
                    input.email,
                    input.password,
                    info.context.client_address,
                    s.clock(),
                    s.settings.login_policy,
                )
            except Refused as refused:
                s.metrics.login_refused(refused.code)
                raise
            org = await s.store.organization(member.org_id)
            return {
                "token": s.tokens.issue(member.id, member.org_id, version=member.token_version),
                "member": Member(entity=member),
                "organization": Organization.of(org),
            }

        return await run(LoginPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Add a member to your organization (owners and admins).",
            {
                E.FORBIDDEN: "you are not an owner or admin, or `role` is OWNER and you are not an owner.",
                E.INVALID_INPUT: "the email, name or password breaks a rule (`field` says which).",
                E.ALREADY_EXISTS: "a member with this email already exists.",
            },
        )
    )
    async def invite_member(
        self, info: Info, input: Annotated[InviteMemberInput, _input("new member")]
    ) -> MemberPayload:
        ctx = info.context

        async def action():
            member = await onboarding.invite_member(
                ctx.services.store,
                ctx.services.passwords,
                ctx.viewer,
                input.email,
                input.name,
                input.password,
                input.role,
                ctx.now,
            )
            return {"member": Member(entity=member)}

        return await run(MemberPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Create a team (owners and admins).",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.INVALID_INPUT: "the name is empty, too long or has control characters.",
                E.ALREADY_EXISTS: "a team with this name already exists.",
            },
        )
    )
    async def create_team(self, info: Info, input: Annotated[CreateTeamInput, _input("new team")]) -> TeamPayload:
        ctx = info.context

        async def action():
            team = await onboarding.create_team(ctx.services.store, ctx.viewer, input.name, input.mode, ctx.now)
            return {"team": Team(entity=team)}

        return await run(TeamPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Put a member in a team, or change their team role (owners and admins).",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.NOT_FOUND: "no such team (`teamId`) or member (`memberId`) in your organization.",
            },
        )
    )
    async def add_team_member(
        self, info: Info, input: Annotated[AddTeamMemberInput, _input("team and member")]
    ) -> TeamPayload:
        ctx = info.context

        async def action():
            team = await onboarding.add_team_member(
                ctx.services.store, ctx.viewer, str(input.team_id), str(input.member_id), input.role
            )
            await ctx.services.events.publish_teams_changed(ctx.viewer.org_id, ctx.now)
            return {"team": Team(entity=team)}

        return await run(TeamPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Take a member out of a team (owners and admins). They leave the team's open rooms, and the "
            "conversations they owned are released for grabbing.",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.NOT_FOUND: "no such team (`teamId`), or the member is not in it (`memberId`).",
            },
        )
    )
    async def remove_team_member(
        self, info: Info, input: Annotated[RemoveTeamMemberInput, _input("team and member")]
    ) -> TeamPayload:
        ctx = info.context

        async def action():
            team = await onboarding.remove_team_member(
                ctx.services.store,
                ctx.services.events,
                ctx.viewer,
                str(input.team_id),
                str(input.member_id),
                ctx.now,
                ctx.services.settings.thresholds,
            )
            return {"team": Team(entity=team)}

        return await run(TeamPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Connect a channel to a team (owners and admins); returns its ingest key, only this once, and, "
            "for WHATSAPP, FACEBOOK and LINE, the webhook URL to paste into the provider's dashboard. Provider "
            "credentials are stored encrypted and never returned. A WEB_WIDGET channel also gets its public "
            "widget key, the script tag to paste, and, with `identityVerification`, its identity secret (once).",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.INVALID_INPUT: "the name is empty, too long or has control characters; or the credentials "
                "don't fit: not exactly one member set, or not the channel type's provider (`credentials`), "
                "or a value empty, too long, with control characters, or an id not made of digits "
                "(a WeChat AppID: of letters and digits) (`credentials.accessToken` and so on); or an allowed "
                "origin is not an origin, there are more than 20, or they are given for another type than "
                "WEB_WIDGET (`allowedOrigins`).",
                E.NOT_FOUND: "no such team (`teamId`).",
            },
        )
    )
    async def connect_channel(
        self, info: Info, input: Annotated[ConnectChannelInput, _input("channel to connect")]
    ) -> ConnectChannelPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            if input.type is ChannelType.WEB_WIDGET and input.credentials is None:
                channel, key, secret = await widget.connect_widget_channel(
                    s.store,
                    s.identity_secrets,
                    ctx.viewer,
                    input.name,
                    str(input.team_id),
                    ctx.now,
                    allowed_origins=input.allowed_origins,
                    identity_verification=input.identity_verification,
                )
                assert channel.widget is not None  # just set up
                return {
                    "channel": Channel(entity=channel),
                    "ingest_key": key,
                    "webhook_url": None,
                    "widget_key": channel.widget.key,
                    "widget_snippet": widget_snippet(s.settings.public_url, channel.widget.key),
                    "identity_secret": secret,
                }
            if input.allowed_origins is not None or input.identity_verification:
                raise invalid("Only WEB_WIDGET channels take widget settings.", "allowedOrigins")
            credentials = credentials_of(input.credentials) if input.credentials is not None else None
            channel, key = await onboarding.connect_channel(
                s.store,
                ctx.viewer,
                input.type,
                input.name,
                str(input.team_id),
                ctx.now,
                credentials=credentials,
                sealer=s.credentials,
            )
            return {
                "channel": Channel(entity=channel),
                "ingest_key": key,
                "webhook_url": webhook_url(s.settings.public_url, channel),
            }

        return await run(ConnectChannelPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Change a channel (owners and admins): rename it; for a WEB_WIDGET channel, replace its allowed "
            "origins, draw a new widget key or identity secret (returned once), or turn identity verification "
            "off. Nothing is written unless everything holds.",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.NOT_FOUND: "no such channel in your organization (`id`).",
                E.INVALID_INPUT: "the name is empty, too long or has control characters; an allowed origin is "
                "not an origin or there are more than 20 (`allowedOrigins`); widget settings for another type "
                "than WEB_WIDGET (`id`); or both `rotateIdentitySecret` and `disableIdentityVerification`.",
            },
        )
    )
    async def update_channel(
        self, info: Info, input: Annotated[UpdateChannelInput, _input("changes")]
    ) -> UpdateChannelPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            channel, secret = await widget.update_channel(
                s.store,
                s.identity_secrets,
                ctx.viewer,
                str(input.id),
                ctx.now,
                name=input.name,
                allowed_origins=input.allowed_origins,
                rotate_widget_key=input.rotate_widget_key,
                rotate_identity_secret=input.rotate_identity_secret,
                disable_identity_verification=input.disable_identity_verification,
            )
            key = channel.widget.key if channel.widget else None
            return {
                "channel": Channel(entity=channel),
                "widget_key": key,
                "widget_snippet": widget_snippet(s.settings.public_url, key) if key else None,
                "identity_secret": secret,
            }

        return await run(UpdateChannelPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Tell the conversation's web-widget visitor (and the other members) that you started or stopped "
            "typing. Nothing is stored: repeat `typing: true` every few seconds while typing (it counts as "
            "over after 6 s), and send `false` when you stop.",
            {E.NOT_FOUND: NO_CONVERSATION},
        )
    )
    async def set_typing(
        self,
        info: Info,
        conversation_id: Annotated[strawberry.ID, CONVERSATION_ID],
        typing: Annotated[bool, strawberry.argument(description="Whether you are typing now.")],
    ) -> SetTypingPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            if s.typing is not None and not s.typing.should_tell(str(conversation_id), ctx.viewer.member_id, typing):
                conversation = await rooms.load_visible(s.store, ctx.viewer, str(conversation_id))
            else:
                conversation = await widget.set_member_typing(
                    s.store, s.events, ctx.viewer, str(conversation_id), typing, ctx.now
                )
            return {"conversation_id": strawberry.ID(conversation.id)}

        return await run(SetTypingPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Replace a channel's provider credentials (owners and admins); they are stored encrypted and never "
            "returned, and the old ones are not kept.",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.NOT_FOUND: "no such channel in your organization (`channelId`).",
                E.INVALID_INPUT: "the credentials don't fit: not exactly one member set, or not the channel "
                "type's provider (`credentials`), or a value empty, too long, with control characters, or an "
                "id not made of digits (a WeChat AppID: of letters and digits) (`credentials.accessToken` and "
                "so on).",
            },
        )
    )
    async def update_channel_credentials(
        self, info: Info, input: Annotated[UpdateChannelCredentialsInput, _input("channel and its credentials")]
    ) -> UpdateChannelCredentialsPayload:
        ctx = info.context

        async def action():
            channel = await onboarding.update_channel_credentials(
                ctx.services.store,
                ctx.services.credentials,
                ctx.viewer,
                str(input.channel_id),
                credentials_of(input.credentials),
                ctx.now,
            )
            return {
                "channel": Channel(entity=channel),
                "webhook_url": webhook_url(ctx.services.settings.public_url, channel),
            }

        return await run(UpdateChannelCredentialsPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Enter the conversation's room; joining again is a no-op. GRAB-team representatives must grab first.",
            {
                E.NOT_FOUND: NO_CONVERSATION,
                E.CONVERSATION_CLOSED: "the conversation is closed.",
                E.GRAB_REQUIRED: "you are a representative of its GRAB team and have not grabbed it.",
                E.FORBIDDEN: "you are an app (API key): apps never join.",
                E.CONVERSATION_CHANGED: "it kept being transferred while you joined; look at it again.",
            },
        )
    )
    async def join_conversation(self, info: Info, id: Annotated[strawberry.ID, CONVERSATION_ID]) -> ConversationPayload:
        return await _room_action(info, rooms.join_conversation, id)

    @strawberry.mutation(
        description=mutation_description(
            "Own a GRAB-team conversation; exactly one of any number of concurrent callers wins, and grabbing "
            "your own again is a no-op.",
            {
                E.NOT_FOUND: NO_CONVERSATION,
                E.ALREADY_GRABBED: "another representative owns it.",
                E.NOT_GRAB_TEAM: "its team works in COLLABORATION mode.",
                E.FORBIDDEN: "you are not a representative of its team (admins never grab).",
                E.CONVERSATION_CLOSED: "the conversation is closed.",
            },
        )
    )
    async def grab_conversation(self, info: Info, id: Annotated[strawberry.ID, CONVERSATION_ID]) -> ConversationPayload:
        return await _room_action(info, rooms.grab_conversation, id)

    @strawberry.mutation(
        description=mutation_description(
            "Leave the room; an owner leaving releases the conversation for grabbing.",
            {
                E.NOT_FOUND: NO_CONVERSATION,
                E.NOT_JOINED: "you are not in the room.",
            },
        )
    )
    async def leave_conversation(
        self, info: Info, id: Annotated[strawberry.ID, CONVERSATION_ID]
    ) -> ConversationPayload:
        return await _room_action(info, rooms.leave_conversation, id)

    @strawberry.mutation(
        description=mutation_description(
            "Close the conversation (a member in the room, or an admin of its team or the organization).",
            {
                E.NOT_FOUND: NO_CONVERSATION,
                E.CONVERSATION_CLOSED: "it is already closed.",
                E.NOT_JOINED: "you are not in the room and not an admin.",
            },
        )
    )
    async def close_conversation(
        self, info: Info, id: Annotated[strawberry.ID, CONVERSATION_ID]
    ) -> ConversationPayload:
        return await _room_action(info, rooms.close_conversation, id)

    @strawberry.mutation(
        description=mutation_description(
            "Hand an open conversation to another team, or to a representative of a GRAB team (admins of its "
            "team, and organization owners and admins). The target team's mode applies: a COLLABORATION team "
            "lists it to all its members (TRANSFERRED notifications); a GRAB team offers it to its members "
            "(GRAB_OFFER), unless `toMemberId` names the representative who owns it at once (a TRANSFERRED "
            "notification to them). Members who can no longer see it leave the room and get HIDDEN; the "
            "customer's wait goes on. One conditional update: a grab or transfer that lands first wins.",
            {
                E.NOT_FOUND: "the conversation doesn't exist or you may not see it (`id`); or no such team in "
                "your organization (`toTeamId`), or no such member (`toMemberId`).",
                E.FORBIDDEN: "you are not an admin of its team nor an owner or admin of the organization.",
                E.INVALID_INPUT: "`toTeamId` is its own team and no `toMemberId` is given; `toMemberId` is given "
                "for a COLLABORATION team, is not a representative of the GRAB team (admins never own), "
                "already owns it, or is deactivated; or the note breaks a text rule (`field` says which).",
                E.CONVERSATION_CLOSED: "the conversation is closed (a customer message reopens it in its team).",
                E.ALREADY_GRABBED: "someone grabbed it (or was handed it) since you read it; nothing changed.",
                E.CONVERSATION_CHANGED: "another admin transferred it since you read it, or it kept changing; "
                "nothing changed.",
            },
        )
    )
    async def transfer_conversation(
        self, info: Info, input: Annotated[TransferConversationInput, _input("conversation and where it goes")]
    ) -> TransferConversationPayload:
        ctx = info.context

        async def action():
            request = rooms.TransferRequest(
                conversation_id=str(input.id),
                to_team_id=str(input.to_team_id) if input.to_team_id is not None else None,
                to_member_id=str(input.to_member_id) if input.to_member_id is not None else None,
                note=input.note,
            )
            done = await rooms.transfer_conversation(
                ctx.services.store, ctx.services.events, ctx.viewer, request, ctx.now, ctx.services.settings.thresholds
            )
            seen = can_see(ctx.viewer, done.conversation)  # what you may not see behaves as absent
            return {"conversation": Conversation(entity=done.conversation) if seen else None, "note": done.note}

        return await run(TransferConversationPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Give a grabbed conversation back to its GRAB team's queue: nobody owns it, its owner leaves the "
            "room, and the team gets new grab offers (its owner, or an admin of its team or the organization). "
            "Releasing a conversation nobody owns is a no-op.",
            {
                E.NOT_FOUND: NO_CONVERSATION,
                E.NOT_GRAB_TEAM: "its team works in COLLABORATION mode.",
                E.FORBIDDEN: "you neither own it nor are an admin of its team or the organization.",
                E.CONVERSATION_CLOSED: "the conversation is closed.",
                E.ALREADY_GRABBED: "someone else owns it since you read it; nothing changed.",
                E.CONVERSATION_CHANGED: "it was transferred since you read it, or kept changing; nothing changed.",
            },
        )
    )
    async def release_conversation(
        self, info: Info, id: Annotated[strawberry.ID, CONVERSATION_ID]
    ) -> ConversationPayload:
        return await _room_action(info, rooms.release_conversation, id)

    @strawberry.mutation(
        description=mutation_description(
            "Send a message to the customer (you must be in the room; an app with SEND_MESSAGES sends in any "
            "open conversation of its teams without joining). A refused message stores nothing.",
            {
                E.NOT_FOUND: "the conversation doesn't exist or you may not see it, or no such template "
                "(`templateId`).",
                E.CONVERSATION_CLOSED: "the conversation is closed.",
                E.NOT_JOINED: "you are not in the room.",
                E.INVALID_INPUT: "the text, template, variables or files don't fit the message's `kind` or "
                "channel (`field` says which).",
                E.WHATSAPP_WINDOW_CLOSED: "on WhatsApp, the window since the customer's last message has passed "
                "and the message is not a WHATSAPP_TEMPLATE.",
                E.MESSENGER_WINDOW_CLOSED: "on Facebook Messenger, more than 7 days have passed since the "
                "customer last wrote; nothing is stored.",
                E.WECHAT_WINDOW_CLOSED: "on WeChat, more than 48 hours have passed since the customer last "
                "wrote; nothing is stored.",
                E.PAYLOAD_TOO_LARGE: "a file is larger than `IMBRACE_MAX_UPLOAD_BYTES`.",
            },
        )
    )
    async def send_message(
        self, info: Info, input: Annotated[SendMessageInput, _input("message")]
    ) -> SendMessagePayload:
        ctx = info.context
        s = ctx.services

        async def action():
            uploads = await read_uploads(input.attachments, s.settings.messaging.max_upload_bytes)
            draft = messaging.MessageDraft(
                conversation_id=str(input.conversation_id),
                kind=input.kind,
                text=input.text,
                template_id=str(input.template_id) if input.template_id else None,
                variables=input.variables,
                uploads=uploads,
            )
            message, conversation = await messaging.send_message(
                s.store, s.files, s.events, ctx.viewer, draft, ctx.now, s.settings.thresholds, s.settings.messaging
            )
            if message.deliveries and ctx.services.delivery is not None:
                ctx.services.delivery.notify()  # this instance's worker looks now, not at its next poll
            return {"message": Message(entity=message), "conversation": Conversation(entity=conversation)}

        return await run(SendMessagePayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Mark a conversation read for you, up to a message: `unreadCount` counts the customer's messages "
            "after it. A mark never goes back (an older message keeps the newer mark). When it moves, your other "
            "tabs get a READ event. Any member who can see the conversation may mark it, open or closed.",
            {
                E.NOT_FOUND: "the conversation doesn't exist or you may not see it, or the message is not one of "
                "its messages (`upToMessageId`).",
                E.INVALID_INPUT: "`upToMessageId` is not a message id.",
            },
        )
    )
    async def mark_conversation_read(
        self, info: Info, input: Annotated[MarkConversationReadInput, _input("conversation and message")]
    ) -> MarkConversationReadPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            conversation = await reading.mark_conversation_read(
                s.store,
                s.events,
                ctx.viewer,
                str(input.conversation_id),
                str(input.up_to_message_id),
                ctx.now,
                s.settings.thresholds,
            )
            return {"conversation": Conversation(entity=conversation)}

        return await run(MarkConversationReadPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Add an internal note to a conversation (any member who can see it, open or closed): a message of "
            "kind NOTE that members see in `messages` and `messageAdded`, never sent to the customer, never an "
            "answer (status, waiting and `lastMessage` stay as they are). `@name` mentions tell those members "
            "(MENTION notification) if they can see the conversation.",
            {
                E.NOT_FOUND: NO_CONVERSATION,
                E.INVALID_INPUT: "the text is empty, longer than 4,096 characters, or not well-formed (`text`).",
            },
        )
    )
    async def add_note(self, info: Info, input: Annotated[AddNoteInput, _input("note")]) -> AddNotePayload:
        ctx = info.context
        s = ctx.services

        async def action():
            note, conversation = await notes.add_note(
                s.store, s.events, ctx.viewer, str(input.conversation_id), input.text, ctx.now, s.settings.thresholds
            )
            return {"message": Message(entity=note), "conversation": Conversation(entity=conversation)}

        return await run(AddNotePayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Edit a customer's details (any member who can see their conversation).",
            {
                E.NOT_FOUND: "no such customer, or you may not see their conversation.",
                E.INVALID_INPUT: "a name, email, phone or attribute breaks a rule (`field` says which).",
            },
        )
    )
    async def update_customer(
        self, info: Info, input: Annotated[UpdateCustomerInput, _input("changes")]
    ) -> CustomerPayload:
        ctx = info.context

        async def action():
            changes = customers.CustomerChanges(
                id=str(input.id),
                name=_unset(input.name),
                email=_unset(input.email),
                phone=_unset(input.phone),
                attributes=_unset(input.attributes),
            )
            customer = await customers.update_customer(
                ctx.services.store, ctx.services.events, ctx.viewer, changes, ctx.now
            )
            return {"customer": Customer(entity=customer)}

        return await run(CustomerPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Create a message template, shared by the organization (organization or team admins).",
            {
                E.FORBIDDEN: "you are not an admin of the organization or of any team.",
                E.INVALID_INPUT: "the name or body breaks a rule, the body has more than 50 placeholders, or "
                "`whatsappName` / `whatsappLanguage` is not a WhatsApp template name / language code.",
            },
        )
    )
    async def create_message_template(
        self, info: Info, input: Annotated[CreateMessageTemplateInput, _input("new template")]
    ) -> MessageTemplatePayload:
        ctx = info.context

        async def action():
            template = await onboarding.create_message_template(
                ctx.services.store,
                ctx.viewer,
                input.name,
                input.body,
                input.channel,
                ctx.now,
                whatsapp_name=input.whatsapp_name,
                whatsapp_language=input.whatsapp_language,
            )
            return {"template": MessageTemplate(entity=template)}

        return await run(MessageTemplatePayload, action)


async def _room_action(info: Info, use_case, conversation_id) -> ConversationPayload:
    ctx = info.context

    async def action():
        conversation = await use_case(
            ctx.services.store,
            ctx.services.events,
            ctx.viewer,
            str(conversation_id),
            ctx.now,
            ctx.services.settings.thresholds,
        )
        return {"conversation": Conversation(entity=conversation)}

    return await run(ConversationPayload, action)
