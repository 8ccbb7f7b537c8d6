"""Mutation and filter inputs."""

from __future__ import annotations

import strawberry
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from api.graphql.enums import (
    ChannelType,
    ConversationView,
    MessageKind,
    OrgRole,
    StatusFilter,
    TeamMode,
    TeamRole,
)
from domain.credentials import (
    Credentials,
    LineCredentials,
    MessengerCredentials,
    WeChatCredentials,
    WhatsAppCredentials,
)
from domain.enums import ConversationView as View
from domain.errors import invalid


@strawberry.input(description="Credentials.")
class LoginInput:
    email: str = strawberry.field(description="Login email.")
    password: str = strawberry.field(description="Password.")


@strawberry.input(description="A new member of your organization.")
class InviteMemberInput:
    email: str = strawberry.field(description="Login email (unique).")
    name: str = strawberry.field(description="Display name.")
    password: str = strawberry.field(description="Initial password, 8 to 256 characters.")
    role: OrgRole = strawberry.field(default=OrgRole.MEMBER, description="Organization role.")


@strawberry.input(description="A new team.")
class CreateTeamInput:
    name: str = strawberry.field(description="Team name (unique in the organization).")
    mode: TeamMode = strawberry.field(description="COLLABORATION or GRAB.")


@strawberry.input(description="Put a member in a team (or change their team role).")
class AddTeamMemberInput:
    team_id: strawberry.ID = strawberry.field(description="Team.")
    member_id: strawberry.ID = strawberry.field(description="Member.")
    role: TeamRole = strawberry.field(default=TeamRole.REPRESENTATIVE, description="Team role.")


@strawberry.input(description="Take a member out of a team.")
class RemoveTeamMemberInput:
    team_id: strawberry.ID = strawberry.field(description="Team.")
    member_id: strawberry.ID = strawberry.field(description="Member.")


_WRITE_ONLY = "Write-only: the API never returns it, at most its last four characters."
_VERIFY_TOKEN = (
    "The verify token you choose and also enter in Meta's app dashboard, for the webhook handshake. " + _WRITE_ONLY
)


@strawberry.input(description="WhatsApp Cloud API credentials, from the Meta app's WhatsApp settings.")
class WhatsAppCredentialsInput:
    phone_number_id: str = strawberry.field(description="The business phone number's id (digits), shown in full.")
    access_token: str = strawberry.field(
        description="A (system user) access token with the `whatsapp_business_messaging` permission. " + _WRITE_ONLY
    )
    app_secret: str = strawberry.field(
        description="The Meta app's secret, which signs the webhook's requests. " + _WRITE_ONLY
    )
    verify_token: str = strawberry.field(description=_VERIFY_TOKEN)


@strawberry.input(description="Messenger Platform credentials of a Facebook page.")
class MessengerCredentialsInput:
    page_id: str = strawberry.field(description="The Facebook page's id (digits), shown in full.")
    page_access_token: str = strawberry.field(
        description="The page's access token (`pages_messaging` permission). " + _WRITE_ONLY
    )
    app_secret: str = strawberry.field(
        description="The Meta app's secret, which signs the webhook's requests. " + _WRITE_ONLY
    )
    verify_token: str = strawberry.field(description=_VERIFY_TOKEN)


@strawberry.input(description="LINE Messaging API credentials, from the channel's page in the LINE Developers Console.")
class LineCredentialsInput:
    channel_secret: str = strawberry.field(
        description="The channel secret (Basic settings), which signs the webhook's requests. " + _WRITE_ONLY
    )
    channel_access_token: str = strawberry.field(
        description="A long-lived channel access token (Messaging API tab), for replies, files and names. "
        + _WRITE_ONLY
    )


@strawberry.input(
    description="WeChat Official Account credentials, from the Official Accounts Platform's developer settings."
)
class WeChatCredentialsInput:
    app_id: str = strawberry.field(description="The official account's AppID (`wx…`), shown in full.")
    app_secret: str = strawberry.field(
        description="The official account's AppSecret, which fetches access tokens. " + _WRITE_ONLY
    )
    token: str = strawberry.field(
        description="The Token entered in the account's server configuration, which signs the webhook's "
        "requests. " + _WRITE_ONLY
    )


@strawberry.input(
    description="A channel's provider credentials: set exactly one member, the one of the channel's type. "
    "Every value is a non-empty single line of at most 2,000 characters. Stored encrypted; never returned."
)
class ChannelCredentialsInput:
    whatsapp: WhatsAppCredentialsInput | None = strawberry.field(default=None, description="For a WHATSAPP channel.")
    messenger: MessengerCredentialsInput | None = strawberry.field(
        default=None, description="For a FACEBOOK (Messenger) channel."
    )
    line: LineCredentialsInput | None = strawberry.field(default=None, description="For a LINE channel.")
    wechat: WeChatCredentialsInput | None = strawberry.field(default=None, description="For a WECHAT channel.")


def credentials_of(given: ChannelCredentialsInput) -> Credentials:
    """The domain's credentials from the one member set; ``INVALID_INPUT`` on ``credentials`` otherwise."""
    members = [m for m in (given.whatsapp, given.messenger, given.line, given.wechat) if m is not None]
    if len(members) != 1:
        raise invalid("Set exactly one of `whatsapp`, `messenger`, `line` and `wechat`.", "credentials")
    w, m = given.whatsapp, given.messenger
    if given.line is not None:
        return LineCredentials(given.line.channel_secret, given.line.channel_access_token)
    if w is not None:
        return WhatsAppCredentials(w.phone_number_id, w.access_token, w.app_secret, w.verify_token)
    if given.wechat is not None:
        return WeChatCredentials(given.wechat.app_id, given.wechat.app_secret, given.wechat.token)
    assert m is not None
    return MessengerCredentials(m.page_id, m.page_access_token, m.app_secret, m.verify_token)


@strawberry.input(description="A channel to connect.")
class ConnectChannelInput:
    type: ChannelType = strawberry.field(description="Channel type.")
    name: str = strawberry.field(description="Display name.")
    team_id: strawberry.ID = strawberry.field(description="Team that serves its conversations.")
    credentials: ChannelCredentialsInput | None = strawberry.field(
        default=None,
        description="The provider's credentials, for WHATSAPP, FACEBOOK, LINE and WECHAT channels, so that "
        "the provider's "
        "webhook (`webhookUrl`) and replies work. Omitted: the channel is reached through the generic "
        "`/channels/{id}/inbound` webhook only; add them later with `updateChannelCredentials`.",
    )
    allowed_origins: list[str] | None = strawberry.field(
        default=None,
        description="WEB_WIDGET only: the exact origins whose pages may embed the widget (scheme, host and "
        "optional port, no path, e.g. `https://shop.example.com`), at most 20; omitted: none yet (add them with "
        "`updateChannel`).",
    )
    identity_verification: bool = strawberry.field(
        default=False,
        description="WEB_WIDGET only: draw an identity secret (returned once, in `identitySecret`) so that sites "
        "can bind sessions to their own users.",
    )


@strawberry.input(description="Changes to a channel; omitted fields are kept.")
class UpdateChannelInput:
    id: strawberry.ID = strawberry.field(description="The channel.")
    name: str | None = strawberry.field(default=None, description="A new display name.")
    allowed_origins: list[str] | None = strawberry.field(
        default=None,
        description="WEB_WIDGET only: the origins that may embed the widget from now on, replacing the list "
        "(at most 20); sessions already started from an origin taken off are refused from then on.",
    )
    rotate_widget_key: bool = strawberry.field(
        default=False,
        description="WEB_WIDGET only: draw a new widget key; the old one starts no more sessions (update the "
        "snippet on the site).",
    )
    rotate_identity_secret: bool = strawberry.field(
        default=False,
        description="WEB_WIDGET only: draw a new identity secret (returned once, in `identitySecret`), which also "
        "turns identity verification on; hashes made with the old one are refused from then on.",
    )
    disable_identity_verification: bool = strawberry.field(
        default=False,
        description="WEB_WIDGET only: forget the identity secret; sessions can then be anonymous only.",
    )


@strawberry.input(description="New provider credentials for a channel.")
class UpdateChannelCredentialsInput:
    channel_id: strawberry.ID = strawberry.field(description="The channel.")
    credentials: ChannelCredentialsInput = strawberry.field(
        description="They replace the channel's credentials as a whole; the old ones are not kept."
    )


@strawberry.input(description="A message from an agent to the customer.")
class SendMessageInput:
    conversation_id: strawberry.ID = strawberry.field(description="Conversation (you must have joined it).")
    kind: MessageKind = strawberry.field(default=MessageKind.TEXT, description="What the message carries.")
    text: str | None = strawberry.field(default=None, description="Text (TEXT), or a caption.")
    template_id: strawberry.ID | None = strawberry.field(
        default=None, description="Template (TEMPLATE, WHATSAPP_TEMPLATE)."
    )
    variables: JSON | None = strawberry.field(default=None, description="Values for the template's placeholders.")
    attachments: list[Upload] | None = strawberry.field(
        default=None, description="Files (ATTACHMENT, IMAGE), sent as a GraphQL multipart request."
    )


@strawberry.input(description="How far you have read a conversation.")
class MarkConversationReadInput:
    conversation_id: strawberry.ID = strawberry.field(description="The conversation (one you can see).")
    up_to_message_id: strawberry.ID = strawberry.field(
        description="The newest message you have read, of that conversation: it and everything before it are read."
    )


@strawberry.input(description="An internal note: members only, never sent to the customer.")
class AddNoteInput:
    conversation_id: strawberry.ID = strawberry.field(description="The conversation (one you can see).")
    text: str = strawberry.field(
        description="The note, 1 to 4,096 characters; `@name` mentions a member of your organization by their "
        "display name (they get a MENTION notification if they can see the conversation)."
    )


@strawberry.input(description="Where to hand a conversation: another team, or a representative of a GRAB team.")
class TransferConversationInput:
    id: strawberry.ID = strawberry.field(description="The conversation.")
    to_team_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The team it goes to; that team's mode applies. Omitted: its own team (then `toMemberId` "
        "is needed).",
    )
    to_member_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A representative of the GRAB team it goes to, who owns it at once (instead of it being "
        "offered to the team). Not for COLLABORATION teams.",
    )
    note: str | None = strawberry.field(
        default=None,
        description="Why, for the members it goes to (up to 4,096 characters); kept on the TRANSFERRED event "
        "(`ConversationEvent.note`).",
    )


@strawberry.input(description="Changes to a customer; omitted fields are kept, null clears.")
class UpdateCustomerInput:
    id: strawberry.ID = strawberry.field(description="Customer.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="Name.")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="Email.")
    phone: str | None = strawberry.field(default=strawberry.UNSET, description="Phone.")
    attributes: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Free-form details (keys may not start with `$` nor contain `.`)."
    )


@strawberry.input(description="A reusable message.")
class CreateMessageTemplateInput:
    name: str = strawberry.field(description="Name.")
    body: str = strawberry.field(description="Text with `{{variable}}` placeholders.")
    channel: ChannelType | None = strawberry.field(default=None, description="Only for this channel (null: any).")
    whatsapp_name: str | None = strawberry.field(
        default=None,
        description="The name of the approved WhatsApp template this one stands for (lowercase letters, digits, "
        "`_`); null: the template's `name`. Used when it is sent as a WHATSAPP_TEMPLATE.",
    )
    whatsapp_language: str | None = strawberry.field(
        default=None,
        description="The approved WhatsApp template's language code (`en_US`, `pt_BR`, `de`…); null: `en_US`.",
    )


@strawberry.input(description="Which conversations to list, as in the page's filter block.")
class ConversationFilter:
    view: ConversationView = strawberry.field(default=View.ALL, description="ALL or JOINED.")
    team_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only these teams.")
    statuses: list[StatusFilter] | None = strawberry.field(
        default=None, description="Any of these (CLOSED must be listed for closed ones to appear)."
    )
    channels: list[ChannelType] | None = strawberry.field(default=None, description="Only these channel types.")
    channel_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Only conversations that came through these channels (ids of `channels`); with `channels`, "
        "both apply. An empty list matches nothing.",
    )
    search: str | None = strawberry.field(
        default=None,
        description="Customer name, email or phone contains this text (case-insensitive, literal), or one of the "
        "conversation's messages holds all its words (whole words, case and accents ignored; among the newest "
        "500 such messages of the organization; system lines excluded). Up to 200 characters (`INVALID_INPUT` "
        "otherwise).",
    )
