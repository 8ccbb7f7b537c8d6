"""Domain enums exposed to GraphQL, with the descriptions GraphiQL shows."""

import strawberry

from domain import enums as d

OrgRole = strawberry.enum(d.OrgRole, description="A member's role in the organization.")
TeamRole = strawberry.enum(d.TeamRole, description="A member's role in a team.")
TeamMode = strawberry.enum(
    d.TeamMode, description="COLLABORATION: everyone sees and may join every chat. "
                            "GRAB: the first representative to grab a chat owns it.")
ChannelType = strawberry.enum(d.ChannelType, description="Where customers write from.")
ConversationStatus = strawberry.enum(
    d.ConversationStatus, description="Where a conversation stands, derived from its facts and the current time.")
StatusFilter = strawberry.enum(d.StatusFilter, description="Sidebar status filters: statuses plus ONLINE "
                                                           "(web-widget customer online).")
ClosedReason = strawberry.enum(d.ClosedReason, description="Why a conversation closed.")
ConversationView = strawberry.enum(
    d.ConversationView, description="ALL: every open conversation you can see and join. JOINED: those you are in.")
ConversationOrder = strawberry.enum(
    d.ConversationOrder, description="LAST_ACTIVITY_DESC: newest activity first. WAITING_LONGEST: oldest "
                                     "waiting customer first, then the rest.")
SenderKind = strawberry.enum(d.SenderKind, description="Who wrote a message.")
MessageKind = strawberry.enum(d.MessageKind, description="What a message carries.")
ErrorCode = strawberry.enum(d.ErrorCode, description="Machine-readable reason of a UserError.")
EventKind = strawberry.enum(d.EventKind, description="What happened to a conversation.")
NotificationKind = strawberry.enum(d.NotificationKind, description="Why a member was notified.")
DeliveryVia = strawberry.enum(d.DeliveryVia, description="How a message reaches the customer.")
DeliveryStatus = strawberry.enum(d.DeliveryStatus, description="Where a delivery stands.")
