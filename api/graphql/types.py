"""Object types of the schema. Resolvers only shape data; rules come from ``domain``."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.channels.urls import webhook_url
from api.graphql.context import many_now_or_later, now_or_later
from api.graphql.enums import (
    Availability,
    ChannelType,
    ClosedReason,
    ConversationStatus,
    DeliveryStatus,
    DeliveryVia,
    ErrorCode,
    MessageKind,
    OrgRole,
    SenderKind,
    StatusFilter,
    SystemAction,
    TeamMode,
    TeamRole,
)
from api.graphql.viewer_fields import PerViewer
from api.widget.snippet import widget_snippet
from domain import entities as e
from domain.availability import is_online
from domain.errors import invalid
from domain.reading import unread_count
from domain.status import closed_at, closed_reason, customer_online, email_fallback_active, status_of

T = TypeVar("T")


@strawberry.type(description="An expected failure: what went wrong, and in which input field.")
class UserError:
    code: ErrorCode = strawberry.field(description="Machine-readable reason.")
    message: str = strawberry.field(description="Human-readable explanation.")
    field: str | None = strawberry.field(default=None, description="The input field at fault, if any.")


@strawberry.type(description="Relay pagination information.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` to get the next page.")
    has_previous_page: bool = strawberry.field(default=False, description="Older items precede this page.")
    start_cursor: str | None = strawberry.field(default=None, description="Pass as `before` for older items.")


@strawberry.type(description="One item of a connection, with its opaque cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque position of this item.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="The organization a member belongs to.")
class Organization:
    id: strawberry.ID = strawberry.field(description="Organization id.")
    name: str = strawberry.field(description="Display name.")

    @classmethod
    def of(cls, org: e.Organization) -> Organization:
        return cls(id=strawberry.ID(org.id), name=org.name)


@strawberry.type(description="A person of the organization who talks to customers (team crew).")
class Member:
    entity: strawberry.Private[e.Member]

    @strawberry.field(description="Member id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Display name, shown to colleagues and in email replies.")
    def name(self) -> str:
        return self.entity.name

    @strawberry.field(description="Login email.")
    def email(self) -> str:
        return self.entity.email

    @strawberry.field(description="Role in the organization.")
    def role(self) -> OrgRole:
        return self.entity.role

    @strawberry.field(description="What the member set: AVAILABLE (takes new work) or AWAY.")
    def availability(self) -> Availability:
        return self.entity.availability

    @strawberry.field(
        description="Whether the member has a connection open now (a WebSocket to `/graphql` on any server "
        "instance; a crashed instance's connections stop counting within `IMBRACE_PRESENCE_TIMEOUT_S`)."
    )
    def online(self, info: Info) -> bool:
        return is_online(self.entity, info.context.now)

    @strawberry.field(
        description="When an owner or admin deactivated the account (`deactivateMember`); null while it is active."
    )
    def deactivated_at(self) -> datetime | None:
        return self.entity.deactivated_at


@strawberry.type(description="A member's place in a team.")
class TeamMember:
    membership: strawberry.Private[e.TeamMembership]

    @strawberry.field(description="Role in this team.")
    def role(self) -> TeamRole:
        return self.membership.role

    @strawberry.field(description="The member.")
    async def member(self, info: Info) -> Member | None:
        found = await info.context.loaders.member.load(self.membership.member_id)
        return Member(entity=found) if found else None


@strawberry.type(description="A group of members serving conversations together.")
class Team:
    entity: strawberry.Private[e.Team]

    @strawberry.field(description="Team id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Team name.")
    def name(self) -> str:
        return self.entity.name

    @strawberry.field(description="COLLABORATION or GRAB.")
    def mode(self) -> TeamMode:
        return self.entity.mode

    @strawberry.field(description="Members and their team roles.")
    def members(self) -> list[TeamMember]:
        return [TeamMember(membership=m) for m in self.entity.memberships]


@strawberry.type(description="A connected channel customers write from.")
class Channel:
    entity: strawberry.Private[e.Channel]

    @strawberry.field(description="Channel id (used in the inbound webhook URL).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Channel type.")
    def type(self) -> ChannelType:
        return self.entity.type

    @strawberry.field(description="Display name.")
    def name(self) -> str:
        return self.entity.name

    @strawberry.field(
        description="When it was disabled (`disableChannel`): nothing comes in or goes out through it until "
        "`enableChannel`. Null while it works."
    )
    def disabled_at(self) -> datetime | None:
        return self.entity.disabled_at

    @strawberry.field(description="The team that receives this channel's conversations.")
    def team_id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.team_id)

    @strawberry.field(
        description="The absolute URL to paste into the provider's dashboard (Meta's app dashboard for WHATSAPP "
        "and FACEBOOK, the LINE Developers Console for LINE, the Official Accounts Platform's server "
        "configuration for WECHAT) as the webhook's callback URL; it answers once the channel has credentials. "
        "Null for channel types without a native webhook, which use `/channels/{id}/inbound`."
    )
    def webhook_url(self, info: Info) -> str | None:
        return webhook_url(info.context.services.settings.public_url, self.entity)

    @strawberry.field(
        description="What may be shown of the channel's provider credentials (never the secrets themselves). "
        "Null when it has none, and for members who are not organization owners or admins.",
        extensions=[PerViewer()],  # by the caller's role
    )
    def credentials(self, info: Info) -> ChannelCredentialHints | None:
        viewer = info.context.viewer
        if self.entity.credential_hints is None or viewer is None or not viewer.is_org_admin:
            return None
        return ChannelCredentialHints.of(self.entity.credential_hints)

    @strawberry.field(
        description="Where a custom channel adapter takes this channel's agent replies (POSTed, signed with the "
        "channel's outbound secret; see the README's Integrations section). Null when the channel has none, and "
        "for members who are not organization owners or admins.",
        extensions=[PerViewer()],  # by the caller's role
    )
    def outbound_url(self, info: Info) -> str | None:
        viewer = info.context.viewer
        if viewer is None or not viewer.is_org_admin:
            return None
        return self.entity.outbound_url

    @strawberry.field(
        description="A WEB_WIDGET channel's embedding settings: its widget key, allowed origins, whether identity "
        "verification is on, and the script tag to paste. Null for other channel types, for a web widget "
        "connected before these settings existed (set them with `updateChannel`), and for members who are not "
        "organization owners or admins.",
        extensions=[PerViewer()],  # by the caller's role
    )
    def widget(self, info: Info) -> ChannelWidget | None:
        viewer = info.context.viewer
        if self.entity.widget is None or viewer is None or not viewer.is_org_admin:
            return None
        return ChannelWidget(settings=self.entity.widget, public_url=info.context.services.settings.public_url)


@strawberry.type(description="How a WEB_WIDGET channel is embedded in web pages.")
class ChannelWidget:
    settings: strawberry.Private[e.WidgetSettings]
    public_url: strawberry.Private[str]

    @strawberry.field(
        description="The widget key (`wk_…`): public, it goes into every page's script tag and only names the "
        "channel (it is not the ingest key). `updateChannel(rotateWidgetKey: true)` replaces it."
    )
    def widget_key(self) -> str:
        return self.settings.key

    @strawberry.field(
        description="The exact origins (scheme, host and port) whose pages may start widget sessions; "
        "sessions from any other origin are refused."
    )
    def allowed_origins(self) -> list[str]:
        return list(self.settings.allowed_origins)

    @strawberry.field(
        description="Whether sites may bind sessions to their own users with `identifier` and "
        "`identifierHash` = hex HMAC-SHA256(identitySecret, identifier). The secret itself is shown only "
        "when it is drawn."
    )
    def identity_verification(self) -> bool:
        return self.settings.identity_verification

    @strawberry.field(description="The script tag to paste into the site's pages (from `IMBRACE_PUBLIC_URL`).")
    def snippet(self) -> str:
        return widget_snippet(self.public_url, self.settings.key)


_HINT = 'The secret\'s last four characters after "…" (only "…" when it is shorter than 16 characters).'


@strawberry.type(
    description="What may be shown of a channel's provider credentials: ids in full, each secret as its last "
    "four characters. Fields of the other provider are null."
)
class ChannelCredentialHints:
    phone_number_id: str | None = strawberry.field(default=None, description="WhatsApp: the phone number's id.")
    access_token: str | None = strawberry.field(default=None, description="WhatsApp: the access token. " + _HINT)
    page_id: str | None = strawberry.field(default=None, description="Messenger: the Facebook page's id.")
    page_access_token: str | None = strawberry.field(
        default=None, description="Messenger: the page access token. " + _HINT
    )
    app_secret: str | None = strawberry.field(
        default=None, description="The Meta app's secret, or the WeChat AppSecret. " + _HINT
    )
    verify_token: str | None = strawberry.field(default=None, description="The webhook's verify token. " + _HINT)
    channel_secret: str | None = strawberry.field(default=None, description="LINE: the channel secret. " + _HINT)
    channel_access_token: str | None = strawberry.field(
        default=None, description="LINE: the channel access token. " + _HINT
    )
    app_id: str | None = strawberry.field(default=None, description="WeChat: the official account's AppID.")
    token: str | None = strawberry.field(
        default=None, description="WeChat: the server configuration's Token (webhook signatures). " + _HINT
    )

    @classmethod
    def of(cls, hints: dict[str, str]) -> ChannelCredentialHints:
        known = {f.name for f in dataclasses.fields(cls)}  # a hint of a field this API doesn't know stays out
        return cls(**{name: value for name, value in hints.items() if name in known})


@strawberry.type(description="The channel a conversation came through.")
class ChannelRef:
    id: strawberry.ID = strawberry.field(description="Channel id.")
    type: ChannelType = strawberry.field(description="Channel type.")
    name: str = strawberry.field(description="Channel name.")


@strawberry.type(
    description="Where a web-widget customer is: looked up from their address when they open the widget "
    "(or as the presence webhook reports it)."
)
class Location:
    city: str | None = strawberry.field(description="City (only with a city-level GeoIP database).")
    country: str | None = strawberry.field(description="Country.")
    country_code: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2 country code.")


@strawberry.type(description="Someone who writes to the organization through a channel.")
class Customer:
    entity: strawberry.Private[e.Customer]

    @strawberry.field(description="Customer id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Name.")
    def name(self) -> str | None:
        return self.entity.name

    @strawberry.field(description="Email; replies go here when the web-widget customer is offline.")
    def email(self) -> str | None:
        return self.entity.email

    @strawberry.field(description="Phone number.")
    def phone(self) -> str | None:
        return self.entity.phone

    @strawberry.field(description="Free-form details agents keep about the customer.")
    def attributes(self) -> JSON:
        return self.entity.attributes  # type: ignore[return-value]  # strawberry's JSON scalar takes any JSON value

    @strawberry.field(
        description="Web widget open now: a widget socket is open, or closed less than `IMBRACE_PRESENCE_TIMEOUT_S` "
        "ago (or a presence-webhook heartbeat within that timeout)."
    )
    def online(self, info: Info) -> bool:
        return customer_online(self.entity.online_until, info.context.now)

    @strawberry.field(
        description="Last web-widget activity: opening the widget, writing, reading, typing, editing their details."
    )
    def last_active_at(self) -> datetime | None:
        return self.entity.last_active_at

    @strawberry.field(description="Where the web-widget customer is, from their address (see `Location`).")
    def location(self) -> Location | None:
        loc = self.entity.location
        return Location(city=loc.city, country=loc.country, country_code=loc.country_code) if loc else None

    @strawberry.field(description="The IANA time zone the web widget's page reports (e.g. `Europe/Berlin`).")
    def time_zone(self) -> str | None:
        return self.entity.time_zone

    @strawberry.field(description="The language the web widget's page reports (a BCP 47 tag, e.g. `de-DE`).")
    def language(self) -> str | None:
        return self.entity.language

    @strawberry.field(description="The URL of the page the web-widget customer is on (or was on last).")
    def page_url(self) -> str | None:
        return self.entity.page_url


@strawberry.type(description="A file or link attached to a message.")
class Attachment:
    url: str = strawberry.field(description="Where to get it (`/files/{id}` for uploads).")
    mime_type: str | None = strawberry.field(description="Media type.")
    name: str | None = strawberry.field(description="File name.")
    size: int | None = strawberry.field(description="Size in bytes.")


@strawberry.type(description="One way a message was delivered to the customer.")
class Delivery:
    via: DeliveryVia = strawberry.field(description="EMAIL (fallback) or CHANNEL (the customer's own channel).")
    status: DeliveryStatus = strawberry.field(description="QUEUED, SENT, DELIVERED, READ or FAILED.")
    attempts: int = strawberry.field(description="Attempts made so far.")
    last_error: str | None = strawberry.field(
        description="Why the last attempt failed, in the provider's words (also while a retry is pending)."
    )
    error_code: str | None = strawberry.field(
        description="The provider's error code for the last failure (e.g. WhatsApp `131047`: more than 24 h "
        "since the customer wrote), `MESSENGER_WINDOW_CLOSED` or `WECHAT_WINDOW_CLOSED`."
    )
    at: datetime | None = strawberry.field(description="When the status last changed.")


@strawberry.type(description="An integration acting through an API key: the sender or actor of what it does.")
class App:
    id: strawberry.ID = strawberry.field(description="Its API key's id.")
    name: str = strawberry.field(description="Its API key's name.")

    @classmethod
    def of(cls, key: e.ApiKey) -> App:
        return cls(id=strawberry.ID(key.id), name=key.name)


@strawberry.type(description="Who sent a message.")
class Sender:
    kind: SenderKind = strawberry.field(description="CUSTOMER, MEMBER, APP or SYSTEM.")
    member_id: strawberry.Private[str | None]
    customer_id: strawberry.Private[str | None]
    app_id: strawberry.Private[str | None] = None

    @strawberry.field(description="The app, for messages an integration sent with an API key.")
    async def app(self, info: Info) -> App | None:
        if not self.app_id:
            return None
        found = await info.context.loaders.app.load(self.app_id)
        return App.of(found) if found else None

    @strawberry.field(description="The member, for member messages.")
    async def member(self, info: Info) -> Member | None:
        if not self.member_id:
            return None
        found = await info.context.loaders.member.load(self.member_id)
        return Member(entity=found) if found else None

    @strawberry.field(description="The customer, for customer messages.")
    async def customer(self, info: Info) -> Customer | None:
        if not self.customer_id:
            return None
        found = await info.context.loaders.customer.load(self.customer_id)
        return Customer(entity=found) if found else None


@strawberry.type(description="What a SYSTEM line records: what happened, who did it, and whom it concerned.")
class SystemLine:
    entity: strawberry.Private[e.SystemLine]

    @strawberry.field(description="What happened.")
    def action(self) -> SystemAction:
        return self.entity.action

    @strawberry.field(
        description="Who did it; null when the customer (REOPENED) or the server (a CLOSED for inactivity) did."
    )
    async def actor(self, info: Info) -> Member | None:
        return await _member(info, self.entity.actor_id)

    @strawberry.field(
        description="Whom it concerned when that is not the actor: the new owner of a transfer, the member an "
        "admin took out of the team."
    )
    async def target(self, info: Info) -> Member | None:
        return await _member(info, self.entity.target_id)


async def _member(info: Info, member_id: str | None) -> Member | None:
    if not member_id:
        return None
    found = await info.context.loaders.member.load(member_id)
    return Member(entity=found) if found else None


def _customer(found: e.Customer | None) -> Customer | None:
    return Customer(entity=found) if found else None


def _member_of(found: e.Member | None) -> Member | None:
    return Member(entity=found) if found else None


def _members(found: list[e.Member | None]) -> list[Member]:
    return [Member(entity=m) for m in found if m]


@strawberry.type(description="One message of a conversation.")
class Message:
    entity: strawberry.Private[e.Message]

    @strawberry.field(description="Message id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Conversation id.")
    def conversation_id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.conversation_id)

    @strawberry.field(description="Position in the conversation (monotonic).")
    def seq(self) -> int:
        return self.entity.seq

    @strawberry.field(description="Who sent it.")
    def sender(self) -> Sender:
        m = self.entity
        return Sender(
            kind=m.sender_kind, member_id=m.sender_member_id, customer_id=m.sender_customer_id, app_id=m.sender_app_id
        )

    @strawberry.field(description="What it carries.")
    def kind(self) -> MessageKind:
        return self.entity.kind

    @strawberry.field(description="Text (rendered, for templates).")
    def text(self) -> str | None:
        return self.entity.text

    @strawberry.field(description="Files and links.")
    def attachments(self) -> list[Attachment]:
        return [Attachment(url=a.url, mime_type=a.mime_type, name=a.name, size=a.size) for a in self.entity.attachments]

    @strawberry.field(description="When the server received it.")
    def created_at(self) -> datetime:
        return self.entity.created_at

    @strawberry.field(description="When the customer's channel says it was sent, if it did.")
    def sent_at(self) -> datetime | None:
        return self.entity.sent_at

    @strawberry.field(description="For SYSTEM lines: what happened and who did it; null for other kinds.")
    def system(self) -> SystemLine | None:
        return SystemLine(entity=self.entity.system) if self.entity.system else None

    @strawberry.field(description="How it reaches the customer (email fallback included).")
    def deliveries(self) -> list[Delivery]:
        return [
            Delivery(
                via=d.via,
                status=d.status,
                attempts=d.attempts,
                last_error=d.last_error,
                error_code=d.error_code,
                at=d.at,
            )
            for d in self.entity.deliveries
        ]


@strawberry.type(description="A page of messages, oldest first.")
class MessageConnection:
    edges: list[Edge[Message]] = strawberry.field(description="Messages, chronological.")
    page_info: PageInfo = strawberry.field(description="`hasPreviousPage`/`startCursor` lead to older messages.")


def message_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"m:{seq}".encode()).decode()


def stored_int(text: str) -> int | None:
    """The non-negative integer ``text`` spells in ASCII digits, if MongoDB can store it
    (8 bytes); else None. A forged number must be refused, not crash the query.

    ``str.isdigit`` alone lets through digits ``int`` can't read ("²") and numbers
    of any size.
    """
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    value = int(text)
    return value if value < 2**63 else None


def message_seq_from_cursor(cursor: str) -> int:
    try:
        kind, _, seq = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "m" and (value := stored_int(seq)) is not None:
            return value
    except (ValueError, UnicodeError):
        pass
    raise invalid("Not a valid message cursor.", "before")


@dataclass(frozen=True, slots=True)
class Moment:
    """An event's own moment. A conversation carried by an event is rendered as
    it was then: the status the event was judged with, and no message written
    after it, whenever the event is delivered (live or replayed)."""

    at: datetime
    status: ConversationStatus | None


@strawberry.type(
    description="A customer's thread on one channel, as an agent sees it now (or, inside an "
    "event, as it was at that event)."
)
class Conversation:
    entity: strawberry.Private[e.Conversation]
    as_of: strawberry.Private[Moment | None] = None

    def _now(self, info: Info) -> datetime:
        return self.as_of.at if self.as_of is not None else info.context.now

    @strawberry.field(description="Conversation id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Status at the moment of the request (in an event: at the event).")
    def status(self, info: Info) -> ConversationStatus:
        if self.as_of is not None and self.as_of.status is not None:
            return self.as_of.status
        return status_of(self.entity, info.context.now, info.context.services.settings.thresholds)

    @strawberry.field(description="The team serving it.", extensions=[PerViewer()])
    def team(self, info: Info) -> Team | None:
        team = info.context.viewer.team(self.entity.team_id) if info.context.viewer else None
        return Team(entity=team) if team else None

    @strawberry.field(description="The channel it came through.")
    def channel(self) -> ChannelRef:
        c = self.entity
        return ChannelRef(id=strawberry.ID(c.channel_id), type=c.channel_type, name=c.channel_name)

    # The next three answer at once when the page prefetched them (api/graphql/prefetch.py),
    # else they await their loader's batch (an awaitable result, which graphql-core awaits).
    @strawberry.field(description="The customer.")
    def customer(self, info: Info) -> Customer | None:
        return now_or_later(info.context.loaders.customer, self.entity.customer_id, _customer)  # type: ignore[return-value]

    @strawberry.field(description="Members in the room.")
    def representatives(self, info: Info) -> list[Member]:
        return many_now_or_later(info.context.loaders.member, list(self.entity.participants), _members)  # type: ignore[return-value]

    @strawberry.field(description="How many members are in the room.")
    def representative_count(self) -> int:
        return len(self.entity.participants)

    @strawberry.field(description="Who grabbed it (GRAB teams).")
    def owner(self, info: Info) -> Member | None:
        if not self.entity.owner_id:
            return None
        return now_or_later(info.context.loaders.member, self.entity.owner_id, _member_of)  # type: ignore[return-value]

    @strawberry.field(description="Whether you are in the room.", extensions=[PerViewer()])
    def joined_by_me(self, info: Info) -> bool:
        viewer = info.context.viewer
        return viewer is not None and viewer.member_id in self.entity.participants

    @strawberry.field(description="Since when the customer waits for a reply (null once answered).")
    def waiting_since(self) -> datetime | None:
        return self.entity.waiting_since

    @strawberry.field(description="The newest message.")
    def last_message(self) -> Message | None:
        # the conversation keeps a copy of its newest message: no read
        found = self.entity.last_message
        return Message(entity=found) if found else None

    @strawberry.field(
        description="How many of the customer's messages you have not read (after your `markConversationRead` "
        "mark; all of them if you never marked it). Colleagues' replies, notes and system lines never count. "
        "Inside an event: as of that event.",
        extensions=[PerViewer()],
    )
    def unread_count(self, info: Info) -> int:
        viewer = info.context.viewer
        return unread_count(self.entity, viewer.member_id) if viewer else 0

    @strawberry.field(
        description="When you last marked it read (`markConversationRead`); null if you never did.",
        extensions=[PerViewer()],
    )
    def last_read_at(self, info: Info) -> datetime | None:
        viewer = info.context.viewer
        mark = self.entity.read_mark(viewer.member_id) if viewer else None
        return mark.at if mark else None

    @strawberry.field(description="When the customer last wrote.")
    def last_customer_message_at(self) -> datetime | None:
        return self.entity.customer_last_wrote_at

    @strawberry.field(description="When anyone last wrote.")
    def last_message_at(self) -> datetime | None:
        return self.entity.last_message_at

    @strawberry.field(description="When it was opened.")
    def created_at(self) -> datetime | None:
        return self.entity.created_at

    @strawberry.field(description="When it last changed.")
    def updated_at(self) -> datetime | None:
        return self.entity.updated_at

    @strawberry.field(description="When it closed (inactivity closes at the threshold).")
    def closed_at(self, info: Info) -> datetime | None:
        return closed_at(self.entity, self._now(info), info.context.services.settings.thresholds)

    @strawberry.field(description="MANUAL or INACTIVITY, when closed.")
    def closed_reason(self, info: Info) -> ClosedReason | None:
        return closed_reason(self.entity, self._now(info), info.context.services.settings.thresholds)

    @strawberry.field(description="Replies go out by email: web-widget customer offline with an email on record.")
    def email_fallback_active(self, info: Info) -> bool:
        return email_fallback_active(self.entity, self._now(info))

    @strawberry.field(
        description="Messages, chronological; `before` pages to older ones. Inside an event, "
        "the messages up to that event."
    )
    async def messages(
        self,
        info: Info,
        last: Annotated[
            int,
            strawberry.argument(
                description="How many messages, 0 to 100 (`INVALID_INPUT` otherwise): the newest of those "
                "before `before`."
            ),
        ] = 50,
        before: Annotated[
            str | None,
            strawberry.argument(
                description="`startCursor` of the page you have: only older messages; omitted: the newest."
            ),
        ] = None,
    ) -> MessageConnection:
        if last < 0 or last > 100:
            raise invalid("`last` must be between 0 and 100.", "last")
        before_seq = message_seq_from_cursor(before) if before else None
        if self.as_of is not None:
            newest_then = self.entity.message_seq + 1
            before_seq = newest_then if before_seq is None else min(before_seq, newest_then)
        found = await info.context.services.store.messages_page(self.entity.id, last, before_seq)
        has_previous = len(found) > last
        page = list(reversed(found[:last]))
        edges = [Edge(cursor=message_cursor(m.seq), node=Message(entity=m)) for m in page]
        return MessageConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=False,
                end_cursor=edges[-1].cursor if edges else None,
                has_previous_page=has_previous,
                start_cursor=edges[0].cursor if edges else None,
            ),
        )


@strawberry.type(description="A page of conversations.")
class ConversationConnection:
    edges: list[Edge[Conversation]] = strawberry.field(description="Conversations in the requested order.")
    page_info: PageInfo = strawberry.field(description="Pagination.")
    total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many conversations match the filter in all.")
    async def total_count(self) -> int:
        return await self.total()


@strawberry.type(description="One sidebar badge.")
class StatusCount:
    status: StatusFilter = strawberry.field(description="The status filter.")
    count: int = strawberry.field(description="Matching conversations.")
    unread_of: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="How many of them have customer messages you have not read (`Conversation.unreadCount` above "
        "0): one more indexed count, made only when asked for.",
        extensions=[PerViewer()],  # counted for the caller
    )
    async def unread(self) -> int:
        return await self.unread_of()


@strawberry.type(description="A reusable message with `{{variable}}` placeholders.")
class MessageTemplate:
    entity: strawberry.Private[e.MessageTemplate]

    @strawberry.field(description="Template id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Name.")
    def name(self) -> str:
        return self.entity.name

    @strawberry.field(description="Body with placeholders.")
    def body(self) -> str:
        return self.entity.body

    @strawberry.field(
        description="The approved WhatsApp template sent for it as a WHATSAPP_TEMPLATE (defaults to `name`); "
        "its body values go in the order the placeholders first appear in `body`."
    )
    def whatsapp_name(self) -> str:
        return self.entity.whatsapp_name or self.entity.name

    @strawberry.field(description="The WhatsApp template's language code (default `en_US`).")
    def whatsapp_language(self) -> str:
        return self.entity.whatsapp_language or "en_US"

    @strawberry.field(description="Channel it is for (null: any channel).")
    def channel(self) -> ChannelType | None:
        return self.entity.channel
