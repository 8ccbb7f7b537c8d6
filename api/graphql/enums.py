"""Domain enums exposed to GraphQL, with the descriptions GraphiQL shows.

The enums stay in ``domain`` (the rules speak them); only their GraphQL
descriptions live here. :func:`described` wraps a domain enum with strawberry
and gives every value its description, and refuses a mapping that misses a
value or names one the enum doesn't have, so a value added to the domain
can't reach the schema undescribed.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

import strawberry

from domain import enums as d

E = TypeVar("E", bound=type[Enum])

# Each name below is the domain enum itself (``strawberry.enum`` marks the class
# in place), bound before it is described so that type checkers see a class.


def described(enum: E, description: str, values: dict[str, str]) -> E:
    """``strawberry.enum(enum)``, with a description for each value (keyed by name).

    strawberry reads value descriptions only from ``strawberry.enum_value(...)``
    members, which would put GraphQL into the domain enums; its definition's
    ``EnumValue`` entries are plain dataclasses, so they are filled in here,
    before any schema is built from them.
    """
    wrapped = strawberry.enum(enum, description=description)
    definition = wrapped.__strawberry_definition__  # type: ignore[attr-defined]  # set by strawberry.enum
    names = [value.name for value in definition.values]
    if sorted(names) != sorted(values):
        missing = sorted(set(names) - set(values))
        unknown = sorted(set(values) - set(names))
        raise ValueError(f"{definition.name}: value descriptions missing for {missing}, unknown values {unknown}")
    for value in definition.values:
        value.description = values[value.name]
    return wrapped


OrgRole = d.OrgRole
described(
    OrgRole,
    "A member's role in the organization.",
    {
        "OWNER": "Runs the organization: everything an admin may do, and may make other owners.",
        "ADMIN": "Manages members, teams, channels and templates, and sees every team's conversations.",
        "MEMBER": "Serves the conversations of the teams they belong to.",
    },
)
TeamRole = d.TeamRole
described(
    TeamRole,
    "A member's role in a team.",
    {
        "ADMIN": "Sees all of the team's conversations, may close any of them and writes message templates; "
        "never grabs.",
        "REPRESENTATIVE": "Serves customers: joins conversations, or grabs them in a GRAB team.",
    },
)
TeamMode = d.TeamMode
described(
    TeamMode,
    "How a team shares its conversations.",
    {
        "COLLABORATION": "Everyone in the team sees every conversation and may join it; several members may be "
        "in one room.",
        "GRAB": "The first representative to grab a conversation owns it; other representatives stop seeing it.",
    },
)
ChannelType = d.ChannelType
described(
    ChannelType,
    "Where customers write from.",
    {
        "FACEBOOK": "Facebook Messenger.",
        "WEB_WIDGET": "The chat widget on the organization's website (one script tag, see `Channel.widget`); "
        "reports whether the customer is online and where, and replies go out by email while they are offline.",
        "LINE": "LINE.",
        "WECHAT": "WeChat.",
        "WHATSAPP": "WhatsApp; free-form replies only within the window after the customer's last message, "
        "WhatsApp templates at any time.",
    },
)
ConversationStatus = d.ConversationStatus
described(
    ConversationStatus,
    "Where a conversation stands, derived from its facts and the current time.",
    {
        "REP_NEEDED": "The customer waits and nobody has joined.",
        "PENDING": "The customer waits and someone has joined.",
        "SOON_TO_BE": 'The customer has waited past the "soon" threshold (`IMBRACE_SOON_AFTER_S`).',
        "OVERDUE": 'The customer has waited past the "overdue" threshold (`IMBRACE_OVERDUE_AFTER_S`).',
        "REPLIED": "A member answered the customer's last message.",
        "CLOSED": "Closed by hand, or after a period without customer messages (`IMBRACE_AUTO_CLOSE_AFTER_S`).",
    },
)
StatusFilter = d.StatusFilter
described(
    StatusFilter,
    "Sidebar status filters, in the page's words, plus ONLINE (web-widget customer online). Unlike the one "
    "`status` a conversation shows (by precedence), a conversation can match several: a customer who has waited "
    "past the overdue line with nobody in the room is both REP_NEEDED and OVERDUE, and `conversationCounts` "
    "counts it under each.",
    {
        "ONLINE": "Open Web Widget conversations whose customer is online now, whatever their status.",
        "REP_NEEDED": "Open conversations whose customer waits with nobody in the room, however long they have waited.",
        "PENDING": "Open conversations whose customer waits with someone in the room, however long they have waited.",
        "SOON_TO_BE": 'Open conversations whose customer has waited past the "soon" threshold '
        '(`IMBRACE_SOON_AFTER_S`) but not the "overdue" one, whoever is in the room.',
        "OVERDUE": 'Open conversations whose customer has waited past the "overdue" threshold '
        "(`IMBRACE_OVERDUE_AFTER_S`), whoever is in the room.",
        "REPLIED": "Open conversations waiting on the customer: a member answered their last message.",
        "CLOSED": "Closed conversations; listed only when this filter is asked for.",
    },
)
ClosedReason = d.ClosedReason
described(
    ClosedReason,
    "Why a conversation closed.",
    {
        "MANUAL": "A member closed it with `closeConversation`.",
        "INACTIVITY": "The customer wrote nothing for `IMBRACE_AUTO_CLOSE_AFTER_S`.",
    },
)
ConversationView = d.ConversationView
described(
    ConversationView,
    "Which of your conversations a list shows.",
    {
        "ALL": "Every conversation you can see (closed ones only with the CLOSED status filter).",
        "JOINED": "Only the conversations you are in.",
    },
)
ConversationOrder = d.ConversationOrder
described(
    ConversationOrder,
    "The order of the conversation list.",
    {
        "LAST_ACTIVITY_DESC": "Newest activity first.",
        "WAITING_LONGEST": "The customer who has waited longest first, then the conversations nobody waits in.",
    },
)
SenderKind = d.SenderKind
described(
    SenderKind,
    "Who wrote a message.",
    {
        "CUSTOMER": "The customer, through the channel.",
        "MEMBER": "A member of the organization.",
        "SYSTEM": "The server itself, for automatic messages.",
        "APP": "An integration, with an API key (`sender.app` names it).",
    },
)
MessageKind = d.MessageKind
described(
    MessageKind,
    "What a message carries.",
    {
        "TEXT": "Text only.",
        "ATTACHMENT": "Files, with an optional caption in `text`.",
        "IMAGE": "Image files, with an optional caption in `text`.",
        "TEMPLATE": "A message template, rendered with `variables`.",
        "CONFERENCE_LINK": "A link to a new video conference room.",
        "WHATSAPP_TEMPLATE": "A WhatsApp template (WhatsApp only); may be sent outside the WhatsApp window.",
        "NOTE": "An internal note (`addNote`): members only, never sent to the customer, never an answer.",
        "SYSTEM": "A line the server writes into the history: who joined, left, grabbed, transferred, closed or "
        "reopened the conversation (see `system`). Never sent to the customer.",
    },
)
SystemAction = d.SystemAction
described(
    SystemAction,
    "What a SYSTEM line in a conversation's history records.",
    {
        "JOINED": "A member joined the room.",
        "LEFT": "A member left the room (or was taken out of the team: then `target` is them and `actor` the admin).",
        "RELEASED": "The owner left the room of a GRAB conversation, releasing it for grabbing.",
        "GRABBED": "A representative grabbed the conversation.",
        "TRANSFERRED": "A member transferred the conversation (`target`: to whom).",
        "CLOSED": "The conversation was closed, by a member (`actor`) or after a period without customer "
        "messages (no `actor`).",
        "REOPENED": "The customer wrote again after it closed (no `actor`); the line follows their message.",
    },
)
ErrorCode = d.ErrorCode
described(
    ErrorCode,
    "Machine-readable reason of a failure: the `code` of a `UserError` in a payload's `errors`, "
    "or `extensions.code` of a top-level GraphQL error.",
    {
        "UNAUTHENTICATED": "No valid bearer token (top-level error; every operation but `login` needs one).",
        "INVALID_CREDENTIALS": "Wrong email or password.",
        "TOO_MANY_ATTEMPTS": "Too many failed logins recently (per address, per email and address, or an "
        "email's growing delay: see README Security); try again later.",
        "FORBIDDEN": "Your role doesn't allow this; or, for an API key, its scopes don't (then a top-level "
        "error, before anything runs).",
        "NOT_FOUND": "No such object, or you may not see it (both answer the same).",
        "INVALID_INPUT": "An input value breaks a rule; `field` names it.",
        "ALREADY_EXISTS": "Something with this unique value (email, team name) already exists.",
        "GRAB_REQUIRED": "In a GRAB team a representative grabs a conversation before joining it.",
        "NOT_GRAB_TEAM": "Only conversations of GRAB teams can be grabbed.",
        "ALREADY_GRABBED": "Another representative owns the conversation.",
        "NOT_JOINED": "You are not in the conversation's room.",
        "CONVERSATION_CLOSED": "The conversation is closed.",
        "PAYLOAD_TOO_LARGE": "A file is larger than `IMBRACE_MAX_UPLOAD_BYTES`.",
        "WHATSAPP_WINDOW_CLOSED": "The WhatsApp window since the customer's last message has passed; only a "
        "WHATSAPP_TEMPLATE may be sent.",
        "MESSENGER_WINDOW_CLOSED": "More than 7 days since the Facebook customer last wrote: Messenger "
        "accepts no message from the page until they write again.",
        "WECHAT_WINDOW_CLOSED": "More than 48 hours since the WeChat customer last wrote: WeChat accepts no "
        "customer service message from the official account until they write again.",
        "SERVICE_UNAVAILABLE": "The database is unavailable (top-level error); try again shortly.",
        "CONVERSATION_CHANGED": "The conversation changed while you acted on it (another admin transferred it, "
        "or it kept changing); look at it again before retrying.",
        "RATE_LIMITED": "Web widget: too many sessions or messages from one visitor or client address; retry "
        "after the time given (see docs/web-widget.md).",
        "UNKNOWN_WIDGET": "Web widget: no widget has this key (or it was rotated away).",
        "ORIGIN_NOT_ALLOWED": "Web widget: the page's origin is not one of the channel's allowed origins.",
        "IDENTITY_MISMATCH": "Web widget: the identifier's hash is not HMAC-SHA256(identitySecret, identifier).",
        "ACCOUNT_DEACTIVATED": "The member's account is deactivated: it cannot log in until an owner or admin "
        "reactivates it.",
        "LAST_OWNER": "The change would leave the organization without an owner.",
    },
)
EventKind = d.EventKind
described(
    EventKind,
    "What happened to a conversation.",
    {
        "CREATED": "A customer's first message opened it.",
        "MESSAGE": "A new message, or an internal note (`message.kind` NOTE).",
        "STATUS_CHANGED": "Its status changed with time (SOON_TO_BE, OVERDUE).",
        "JOINED": "A member joined the room.",
        "LEFT": "A member left the room (an owner leaving releases the conversation for grabbing).",
        "GRABBED": "A representative grabbed it.",
        "CLOSED": "It closed, by hand or for inactivity.",
        "REOPENED": "A customer's message reopened it after it closed.",
        "CUSTOMER_UPDATED": "The customer's details changed.",
        "PRESENCE": "The web-widget customer came online (opened the widget) or went offline, or reported "
        "their presence through the presence webhook.",
        "DELIVERY": "A message changed after it was stored: a delivery moved (sent, delivered, read, failed) "
        "or a file the customer sent arrived from the provider.",
        "TYPING": "Someone started or stopped typing (`typing`): the web-widget visitor (`actor` null) or a member "
        "(`actor`). Never stored, never replayed; treat `typing: true` as over after 6 s without a repeat.",
        "HIDDEN": "You can no longer see it because someone else grabbed it, or it was transferred to another "
        "team or owner; only its id is given.",
        "TRANSFERRED": "An admin transferred it to another team or handed it to a representative "
        "(`transferConversation`); `note` says why.",
        "RELEASED": "Its owner or an admin gave a grabbed conversation back to its GRAB team's queue "
        "(`releaseConversation`).",
        "READ": "You marked it read (`markConversationRead`), perhaps in another tab; only your own "
        "subscriptions receive it, with `message` the message read up to.",
    },
)
NotificationKind = d.NotificationKind
described(
    NotificationKind,
    "Why a member was notified.",
    {
        "NEW_CONVERSATION": "A conversation opened, reopened or was released in your COLLABORATION team.",
        "GRAB_OFFER": "A conversation opened, reopened, was released or was transferred to your GRAB team, and may "
        "be grabbed.",
        "NEW_MESSAGE": "The customer wrote in a conversation you are in.",
        "WAITING_TOO_LONG": "A customer has waited SOON_TO_BE or OVERDUE long in a room you are in (or, in an "
        "empty room, of a team you administer).",
        "MENTION": "An internal note mentions you (`@` and your name) in a conversation you can see.",
        "TRANSFERRED": "An admin transferred a conversation to your COLLABORATION team, or handed one to you "
        "(you own it now); the TRANSFERRED event carries their note.",
        "WEBHOOK_DISABLED": "A webhook of your organization failed for `IMBRACE_WEBHOOK_DISABLE_AFTER_S` without a "
        "break, or its query stopped being valid, and was disabled (owners and admins; `webhookId` names it).",
    },
)
DeliveryVia = d.DeliveryVia
described(
    DeliveryVia,
    "How a message reaches the customer.",
    {
        "EMAIL": "By email, because the web-widget customer was offline (email fallback).",
        "CHANNEL": "Through the customer's channel (for the web widget: the visitor's chat history and stream).",
    },
)
DeliveryStatus = d.DeliveryStatus
described(
    DeliveryStatus,
    "Where a delivery stands.",
    {
        "QUEUED": "Waiting to be sent, or to be retried.",
        "SENT": "Handed over to the mail server or the channel's provider.",
        "DELIVERED": "The provider (or the web widget) reports it reached the customer's device.",
        "READ": "The provider (or the web widget) reports the customer has seen it.",
        "FAILED": "Given up on: refused (see `errorCode` and `lastError`), or out of attempts "
        "(`IMBRACE_DELIVERY_MAX_ATTEMPTS`, `IMBRACE_EMAIL_MAX_ATTEMPTS` for email).",
    },
)
ApiKeyScope = d.ApiKeyScope
described(
    ApiKeyScope,
    "What an API key's app may do, always within the key's teams.",
    {
        "READ_CONVERSATIONS": "Read conversations, their messages and customers (`conversation`, "
        "`conversations`, `conversationCounts`, `teams`) and follow them (`conversationEvents`, "
        "`messageAdded`).",
        "SEND_MESSAGES": "Send messages (`sendMessage`) in any open conversation of its teams, without joining "
        "it, as the message's APP sender; list `messageTemplates`.",
        "MANAGE_WEBHOOKS": "Manage the organization's integrator webhooks.",
    },
)
