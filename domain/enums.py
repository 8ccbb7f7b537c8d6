"""The vocabularies the product speaks: roles, modes, channels, statuses."""

from enum import Enum


class OrgRole(str, Enum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


class TeamRole(str, Enum):
    ADMIN = "ADMIN"
    REPRESENTATIVE = "REPRESENTATIVE"


class TeamMode(str, Enum):
    COLLABORATION = "COLLABORATION"
    GRAB = "GRAB"


class ChannelType(str, Enum):
    FACEBOOK = "FACEBOOK"
    WEB_WIDGET = "WEB_WIDGET"
    LINE = "LINE"
    WECHAT = "WECHAT"
    WHATSAPP = "WHATSAPP"


class ConversationStatus(str, Enum):
    REP_NEEDED = "REP_NEEDED"
    PENDING = "PENDING"
    SOON_TO_BE = "SOON_TO_BE"
    OVERDUE = "OVERDUE"
    REPLIED = "REPLIED"
    CLOSED = "CLOSED"


class StatusFilter(str, Enum):
    """What the sidebar filters on, in the page's words (a conversation can match several),
    plus web-widget presence."""

    ONLINE = "ONLINE"
    REP_NEEDED = "REP_NEEDED"
    PENDING = "PENDING"
    SOON_TO_BE = "SOON_TO_BE"
    OVERDUE = "OVERDUE"
    REPLIED = "REPLIED"
    CLOSED = "CLOSED"


class ClosedReason(str, Enum):
    MANUAL = "MANUAL"
    INACTIVITY = "INACTIVITY"


class ConversationView(str, Enum):
    ALL = "ALL"
    JOINED = "JOINED"


class ConversationOrder(str, Enum):
    LAST_ACTIVITY_DESC = "LAST_ACTIVITY_DESC"
    WAITING_LONGEST = "WAITING_LONGEST"


class SenderKind(str, Enum):
    CUSTOMER = "CUSTOMER"
    MEMBER = "MEMBER"
    SYSTEM = "SYSTEM"
    APP = "APP"


class MessageKind(str, Enum):
    TEXT = "TEXT"
    ATTACHMENT = "ATTACHMENT"
    IMAGE = "IMAGE"
    TEMPLATE = "TEMPLATE"
    CONFERENCE_LINK = "CONFERENCE_LINK"
    WHATSAPP_TEMPLATE = "WHATSAPP_TEMPLATE"
    NOTE = "NOTE"  # an internal note: agents only, never sent to the customer
    SYSTEM = "SYSTEM"  # a line the server writes into the history (who joined, grabbed, closed...)


class SystemAction(str, Enum):
    """What a SYSTEM line in a conversation's history records."""

    JOINED = "JOINED"
    LEFT = "LEFT"
    RELEASED = "RELEASED"
    GRABBED = "GRABBED"
    TRANSFERRED = "TRANSFERRED"
    CLOSED = "CLOSED"
    REOPENED = "REOPENED"


class ErrorCode(str, Enum):
    """Every expected failure a client can receive, as a value in ``errors``."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    GRAB_REQUIRED = "GRAB_REQUIRED"
    NOT_GRAB_TEAM = "NOT_GRAB_TEAM"
    ALREADY_GRABBED = "ALREADY_GRABBED"
    NOT_JOINED = "NOT_JOINED"
    CONVERSATION_CLOSED = "CONVERSATION_CLOSED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    WHATSAPP_WINDOW_CLOSED = "WHATSAPP_WINDOW_CLOSED"
    MESSENGER_WINDOW_CLOSED = "MESSENGER_WINDOW_CLOSED"
    WECHAT_WINDOW_CLOSED = "WECHAT_WINDOW_CLOSED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    CONVERSATION_CHANGED = "CONVERSATION_CHANGED"
    RATE_LIMITED = "RATE_LIMITED"
    UNKNOWN_WIDGET = "UNKNOWN_WIDGET"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    ACCOUNT_DEACTIVATED = "ACCOUNT_DEACTIVATED"
    LAST_OWNER = "LAST_OWNER"


class EventKind(str, Enum):
    CREATED = "CREATED"
    MESSAGE = "MESSAGE"
    STATUS_CHANGED = "STATUS_CHANGED"
    JOINED = "JOINED"
    LEFT = "LEFT"
    GRABBED = "GRABBED"
    CLOSED = "CLOSED"
    REOPENED = "REOPENED"
    CUSTOMER_UPDATED = "CUSTOMER_UPDATED"
    PRESENCE = "PRESENCE"
    DELIVERY = "DELIVERY"
    TYPING = "TYPING"
    HIDDEN = "HIDDEN"
    READ = "READ"  # a member marked messages read: only that member's own subscriptions receive it
    TRANSFERRED = "TRANSFERRED"
    RELEASED = "RELEASED"


class NotificationKind(str, Enum):
    NEW_CONVERSATION = "NEW_CONVERSATION"
    GRAB_OFFER = "GRAB_OFFER"
    NEW_MESSAGE = "NEW_MESSAGE"
    WAITING_TOO_LONG = "WAITING_TOO_LONG"
    MENTION = "MENTION"
    TRANSFERRED = "TRANSFERRED"
    WEBHOOK_DISABLED = "WEBHOOK_DISABLED"


class DeliveryVia(str, Enum):
    EMAIL = "EMAIL"
    CHANNEL = "CHANNEL"


class DeliveryStatus(str, Enum):
    QUEUED = "QUEUED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"


class ApiKeyScope(str, Enum):
    """What an API key's app may do (``api/graphql/scopes.py`` maps each root field to one)."""

    READ_CONVERSATIONS = "READ_CONVERSATIONS"
    SEND_MESSAGES = "SEND_MESSAGES"
    MANAGE_WEBHOOKS = "MANAGE_WEBHOOKS"
