"""The web widget: setting a channel up for it, and what a visitor does through it.

A visitor's session is scoped to one channel and one customer (:class:`VisitorSession`);
every use case below reads and writes that customer's own conversation only, whose id
is the customer's. A visitor's message goes through the same path as every channel's
customer messages (:func:`domain.usecases.inbound.receive_customer_message`), after the
same checks as an agent's (text length, files, their number and size). Presence comes
from the widget's connection; typing is told to the other side and never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from domain.delivery import statuses_that_may_become
from domain.entities import Channel, Conversation, Customer, Location, Message, Team, WidgetSettings
from domain.enums import ChannelType, DeliveryStatus, DeliveryVia, ErrorCode, EventKind, MessageKind, SenderKind
from domain.errors import AlreadyStored, Refused, invalid, not_found
from domain.events import Event
from domain.messages import customer_can_see
from domain.ports import AccountStore, ConversationStore, EventSink, FileSaver
from domain.status import Thresholds, customer_online, status_of
from domain.usecases.adapters import OutboundChecks, OutboundRequest, OutboundSealer, plan_outbound
from domain.usecases.delivery import ConversationReader, DeliveryStore, announce
from domain.usecases.inbound import CustomerDetails, InboundMessage, InboundStore, receive_customer_message
from domain.usecases.messaging import MessageDraft, MessagingSettings, Upload, check_uploads
from domain.usecases.onboarding import connect_channel, require_org_admin
from domain.usecases.rooms import load_visible
from domain.validation import clean_email, clean_line, clean_text, is_id
from domain.visibility import Viewer
from domain.widget import (
    MESSAGE_WINDOW_S,
    SESSION_WINDOW_S,
    ChannelChanges,
    RateLimited,
    VisitorDetails,
    VisitorSession,
    WidgetLimits,
    clean_identifier,
    clean_identifier_hash,
    clean_language,
    clean_origins,
    clean_page_url,
    clean_time_zone,
    identified_external_id,
    identity_matches,
    is_visitor_id,
    is_widget_key,
    limit_key,
    new_identity_secret,
    new_visitor_id,
    new_widget_key,
    normalized_origin,
    retry_after_s,
)

UNSET: Any = object()


class IdentitySecrets(Protocol):
    """Seals a channel's identity secret for the store, and opens it to check a hash
    (``api/widget/secrets.py``); the domain never sees a key or a cipher."""

    def seal(self, channel_id: str, secret: str) -> str: ...
    def open(self, channel_id: str, token: str) -> str: ...


class RateCounters(Protocol):
    async def count(self, key: str, now: datetime, window_s: float) -> tuple[int, datetime]:
        """Atomically count one use of ``key``: the count in its window after this one, and
        when that window started."""
        ...


class WidgetStore(InboundStore, Protocol):
    def new_id(self) -> str: ...
    async def widget_channel(self, widget_key: str) -> tuple[Channel, str | None] | None:
        """The channel with this widget key, and its sealed identity secret (None: it has none)."""
        ...

    async def channel(self, channel_id: str) -> Channel | None: ...
    async def org_channel(self, org_id: str, channel_id: str) -> Channel | None: ...
    async def team(self, org_id: str, team_id: str) -> Team | None: ...
    async def update_channel(
        self, org_id: str, channel_id: str, changes: ChannelChanges, now: datetime
    ) -> Channel | None: ...
    async def set_visitor_details(self, customer_id: str, details: VisitorDetails, now: datetime) -> None:
        """Also moves ``last_active_at`` to ``now``."""
        ...

    async def touch_visitor(self, customer_id: str, now: datetime) -> None:
        """``last_active_at`` moves to ``now`` (never back)."""
        ...

    async def visitors_online(self, customer_ids: list[str], online_until: datetime) -> None:
        """The customers (and their conversations' copies) are online at least until ``online_until``."""
        ...

    async def message(self, org_id: str, message_id: str) -> Message | None: ...
    async def refresh_last_message(self, message: Message) -> Conversation | None: ...


# Setting a channel up


async def connect_widget_channel(
    store: AccountStore,
    secrets: IdentitySecrets,
    viewer: Viewer,
    name: str,
    team_id: str,
    now: datetime,
    *,
    allowed_origins: list[str] | None,
    identity_verification: bool,
) -> tuple[Channel, str, str | None]:
    """A WEB_WIDGET channel with its public widget key, its allowed origins and, if asked for,
    an identity secret; returns the channel, its ingest key and the clear secret, both shown
    only this once (the store keeps the secret sealed)."""
    require_org_admin(viewer)
    origins = clean_origins(allowed_origins)
    channel_id = store.new_id()
    secret = new_identity_secret() if identity_verification else None
    channel, key = await connect_channel(
        store,
        viewer,
        ChannelType.WEB_WIDGET,
        name,
        team_id,
        now,
        channel_id=channel_id,
        widget=WidgetSettings(key=new_widget_key(), allowed_origins=origins, identity_verification=secret is not None),
        widget_secret=secrets.seal(channel_id, secret) if secret is not None else None,
    )
    return channel, key, secret


async def update_channel(
    store: WidgetStore,
    secrets: IdentitySecrets,
    viewer: Viewer,
    channel_id: str,
    now: datetime,
    *,
    name: str | None = None,
    allowed_origins: list[str] | None = None,
    rotate_widget_key: bool = False,
    rotate_identity_secret: bool = False,
    disable_identity_verification: bool = False,
    team_id: str | None = None,
    outbound: OutboundRequest | None = None,
    outbound_rules: tuple[OutboundChecks, OutboundSealer] | None = None,
) -> tuple[Channel, str | None, str | None]:
    """Rename a channel, or hand it to another team (``team_id``: its new conversations go there;
    those already open stay where they are, a transfer moves them); for a WEB_WIDGET channel,
    replace its allowed origins, draw a new widget key (the old one stops working), draw a new
    identity secret (returned in clear, only this once; it also turns identity verification on)
    or turn verification off.
    A WEB_WIDGET channel connected before the widget existed gets its widget settings here.
    For a channel served by an adapter, set, change or remove its outbound URL, or draw a new
    outbound secret (:func:`domain.usecases.adapters.plan_outbound`).
    Everything is checked before anything is written. Returns the channel, and the new identity
    secret and outbound secret when one was drawn."""
    require_org_admin(viewer)
    channel = await store.org_channel(viewer.org_id, channel_id) if is_id(channel_id) else None
    if channel is None:
        raise not_found("channel", "id")
    new_name = clean_line(name, "name", required=True) if name is not None else None
    team = await store.team(viewer.org_id, team_id) if team_id is not None and is_id(team_id) else None
    if team_id is not None and team is None:
        raise not_found("team", "teamId")
    widget_asked = allowed_origins is not None or rotate_widget_key or rotate_identity_secret
    if (widget_asked or disable_identity_verification) and channel.type is not ChannelType.WEB_WIDGET:
        raise invalid("Only WEB_WIDGET channels have widget settings.", "id")
    if rotate_identity_secret and disable_identity_verification:
        raise invalid("Either rotate the identity secret or turn verification off, not both.", "rotateIdentitySecret")
    origins = clean_origins(allowed_origins) if allowed_origins is not None else None
    plan = None
    if outbound is not None and outbound.asked:
        if outbound_rules is None:
            raise TypeError("update_channel needs outbound_rules to change an outbound URL")
        plan = await plan_outbound(*outbound_rules, channel, outbound)
    widget = channel.widget
    secret = None
    if widget_asked or disable_identity_verification:
        current = widget or WidgetSettings(key=new_widget_key())
        secret = new_identity_secret() if rotate_identity_secret else None
        verified = (
            True if secret is not None else False if disable_identity_verification else current.identity_verification
        )
        widget = WidgetSettings(
            key=new_widget_key() if rotate_widget_key else current.key,
            allowed_origins=origins if origins is not None else current.allowed_origins,
            identity_verification=verified,
        )
    changes = ChannelChanges(
        name=new_name,
        widget=widget if widget != channel.widget else None,
        identity_secret=secrets.seal(channel.id, secret) if secret is not None else None,
        clear_identity_secret=disable_identity_verification,
        team_id=team.id if team is not None and team.id != channel.team_id else None,
        outbound_url=plan.url if plan else None,
        outbound_secret=plan.sealed_secret if plan else None,
        clear_outbound=plan.clear if plan else False,
    )
    updated = await store.update_channel(viewer.org_id, channel.id, changes, now)
    if updated is None:
        raise not_found("channel", "id")
    return updated, secret, plan.secret if plan else None


# Sessions


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """``POST /widget/v1/sessions`` as the route read it (values not checked yet)."""

    widget_key: str
    origin: str | None
    client_address: str
    visitor_id: str | None = None
    identifier: str | None = None
    identifier_hash: str | None = None
    name: str | None = None
    email: str | None = None
    page_url: str | None = None
    time_zone: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class SessionGrant:
    session: VisitorSession
    customer: Customer
    conversation: Conversation | None


async def start_session(
    store: WidgetStore,
    events: EventSink,
    secrets: IdentitySecrets,
    counters: RateCounters,
    request: SessionRequest,
    location: Location | None,
    now: datetime,
    limits: WidgetLimits,
) -> SessionGrant:
    """A session for one visitor of one widget, in this order of refusals: an unknown widget
    key (UNKNOWN_WIDGET), an origin the channel doesn't allow (ORIGIN_NOT_ALLOWED), too many
    sessions from the client address (RATE_LIMITED), a malformed field (INVALID_INPUT), a
    wrong identity hash (IDENTITY_MISMATCH).

    Without ``identifier``: the customer whose visitor id was given, or else a new customer
    with a fresh, random visitor id (an unknown id is never taken over: ids are the server's
    to draw). With ``identifier`` and its hash: the customer the site calls so, on any
    device; the visitor id is then only echoed (or drawn) for the widget to keep, and never
    leads to that customer, so a shared browser that logs out is anonymous again.
    """
    channel, sealed = await _widget_channel(store, request.widget_key)
    widget = channel.widget
    assert widget is not None  # _widget_channel finds only channels with a widget
    origin = normalized_origin(request.origin) if request.origin else None
    if origin is None or origin not in widget.allowed_origins:
        raise Refused(ErrorCode.ORIGIN_NOT_ALLOWED, "This widget may not be embedded on this site.", "origin")
    await _spend(
        counters,
        limit_key("sessions", request.client_address),
        limits.sessions_per_address_per_hour,
        SESSION_WINDOW_S,
        now,
        "Too many widget sessions from your address. Try again later.",
    )
    identifier = clean_identifier(request.identifier)
    identifier_hash = clean_identifier_hash(request.identifier_hash)
    name = clean_line(request.name, "name")
    email = clean_email(request.email)
    details = VisitorDetails(
        page_url=clean_page_url(request.page_url),
        time_zone=clean_time_zone(request.time_zone),
        language=clean_language(request.language),
        location=location,
    )
    given_visitor = request.visitor_id if is_visitor_id(request.visitor_id) else None
    customer: Customer | None = None
    if identifier is not None or identifier_hash is not None:
        if identifier is None or identifier_hash is None:
            raise invalid("Send `identifier` and `identifierHash` together.", "identifier")
        if sealed is None:
            raise invalid("Identity verification is off for this widget: send no `identifier`.", "identifier")
        if not identity_matches(secrets.open(channel.id, sealed), identifier, identifier_hash):
            raise Refused(ErrorCode.IDENTITY_MISMATCH, "The identifier's hash does not match.", "identifierHash")
        visitor_id = given_visitor or new_visitor_id()
        external_id = identified_external_id(identifier)
        customer = await store.customer_by_external_id(channel.id, external_id)
    else:
        customer = await store.customer_by_external_id(channel.id, given_visitor) if given_visitor else None
        external_id = visitor_id = given_visitor if customer is not None and given_visitor else new_visitor_id()
    conversation = None
    if customer is None:
        customer = await _new_visitor(store, channel, external_id, name, email, details, now)
    else:
        conversation = await store.conversation(channel.org_id, customer.id)
        customer = await _learn_details(store, events, customer, conversation, name, email, now)
        await store.set_visitor_details(customer.id, details, now)
    session = VisitorSession(
        org_id=channel.org_id,
        channel_id=channel.id,
        customer_id=customer.id,
        visitor_id=visitor_id,
        origin=origin,
    )
    return SessionGrant(session=session, customer=customer, conversation=conversation)


async def _widget_channel(store: WidgetStore, widget_key: str) -> tuple[Channel, str | None]:
    found = await store.widget_channel(widget_key) if is_widget_key(widget_key) else None
    if found is None or found[0].widget is None or found[0].type is not ChannelType.WEB_WIDGET:
        raise Refused(ErrorCode.UNKNOWN_WIDGET, "No widget has this key.", "widgetKey")
    if found[0].disabled_at is not None:
        raise Refused(ErrorCode.UNKNOWN_WIDGET, "This widget is disabled.", "widgetKey")
    return found


async def _new_visitor(
    store: WidgetStore,
    channel: Channel,
    external_id: str,
    name: str | None,
    email: str | None,
    details: VisitorDetails,
    now: datetime,
) -> Customer:
    candidate = Customer(
        id=store.new_id(),
        org_id=channel.org_id,
        channel_id=channel.id,
        channel_type=channel.type,
        external_id=external_id,
        name=name,
        email=email,
        last_active_at=now,
        location=details.location,
        created_at=now,
        time_zone=details.time_zone,
        language=details.language,
        page_url=details.page_url,
    )
    try:
        return await store.create_customer(candidate)
    except AlreadyStored as race:  # the same verified user starting two sessions at once
        existing = race.existing
        assert isinstance(existing, Customer)  # the customer store hands back the one that won
        await store.set_visitor_details(existing.id, details, now)
        return existing


async def _learn_details(
    store: WidgetStore,
    events: EventSink,
    customer: Customer,
    conversation: Conversation | None,
    name: str | None,
    email: str | None,
    now: datetime,
) -> Customer:
    """A name or email the page sent that differs from what is on record replaces it."""
    changes = {k: v for k, v in (("name", name), ("email", email)) if v is not None and getattr(customer, k) != v}
    if not changes:
        return customer
    updated = await store.update_customer(customer, changes, now)
    if conversation is not None:
        await _customer_updated(events, conversation, updated, now)
    return updated


async def _customer_updated(events: EventSink, conversation: Conversation, customer: Customer, now: datetime) -> None:
    await events.publish(
        Event(
            kind=EventKind.CUSTOMER_UPDATED,
            at=now,
            conversation=replace(
                conversation,
                customer_name=customer.name,
                customer_email=customer.email,
                customer_phone=customer.phone,
            ),
            owner_before=conversation.owner_id,
        )
    )


async def _spend(counters: RateCounters, key: str, limit: int, window_s: float, now: datetime, message: str) -> None:
    count, started = await counters.count(key, now, window_s)
    if count > limit:
        raise RateLimited(message, retry_after_s(started, window_s, now))


async def spend_message_budget(
    counters: RateCounters, session: VisitorSession, client_address: str, now: datetime, limits: WidgetLimits
) -> None:
    """One message (or profile update) counted against the visitor and the client address."""
    await _spend(
        counters,
        limit_key("visitor", session.customer_id),
        limits.messages_per_visitor_per_minute,
        MESSAGE_WINDOW_S,
        now,
        "You are sending messages too fast. Wait a moment.",
    )
    await _spend(
        counters,
        limit_key("messages", client_address),
        limits.messages_per_address_per_minute,
        MESSAGE_WINDOW_S,
        now,
        "Too many messages from your address. Wait a moment.",
    )


# What a visitor does


async def _visitor(store: WidgetStore, session: VisitorSession) -> tuple[Channel, Customer]:
    """The session's channel and customer; a channel no longer set up for the widget ends it."""
    channel = await store.channel(session.channel_id)
    if channel is None or channel.widget is None or channel.org_id != session.org_id:
        raise Refused(ErrorCode.UNKNOWN_WIDGET, "This widget no longer exists.")
    if channel.disabled_at is not None:
        raise Refused(ErrorCode.UNKNOWN_WIDGET, "This widget is disabled.")
    customer = await store.customer(session.org_id, session.customer_id)
    if customer is None or customer.channel_id != channel.id:
        raise not_found("visitor")
    return channel, customer


async def send_visitor_message(
    store: WidgetStore,
    files: FileSaver,
    events: EventSink,
    counters: RateCounters,
    session: VisitorSession,
    text: str | None,
    uploads: tuple[Upload, ...],
    client_address: str,
    now: datetime,
    t: Thresholds,
    settings: MessagingSettings,
    limits: WidgetLimits,
) -> Message:
    """Text and/or files from the visitor, checked as an agent's message is (text length, at
    most 10 files, each within ``IMBRACE_MAX_UPLOAD_BYTES``), then received like any channel's
    customer message: the first one opens the conversation, a closed one reopens."""
    await spend_message_budget(counters, session, client_address, now, limits)
    text = clean_text(text, required=not uploads)
    draft = MessageDraft(
        conversation_id=session.conversation_id,
        kind=MessageKind.ATTACHMENT if uploads else MessageKind.TEXT,
        text=text,
        uploads=uploads,
    )
    check_uploads(draft, settings)
    channel, customer = await _visitor(store, session)
    attachments = tuple(
        [
            await files.save(
                session.org_id,
                session.conversation_id,
                clean_line(u.filename, "attachments") or "file",
                u.content_type or "application/octet-stream",
                u.data,
            )
            for u in uploads
        ]
    )
    receipt = await receive_customer_message(
        store,
        events,
        channel,
        InboundMessage(customer=CustomerDetails(external_id=customer.external_id), text=text, attachments=attachments),
        now,
        t,
    )
    await store.touch_visitor(customer.id, now)
    stored = await store.message(session.org_id, receipt.message_id)
    assert stored is not None  # just stored; messages are never deleted
    return stored


async def update_visitor_profile(
    store: WidgetStore,
    events: EventSink,
    counters: RateCounters,
    session: VisitorSession,
    client_address: str,
    now: datetime,
    limits: WidgetLimits,
    *,
    name: Any = UNSET,
    email: Any = UNSET,
    page_url: Any = UNSET,
) -> Customer:
    """The visitor's name and email (None clears one), and the page they are on; counted like
    a message. Agents hear of a name or email change (CUSTOMER_UPDATED)."""
    await spend_message_budget(counters, session, client_address, now, limits)
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = clean_line(name, "name")
    if email is not UNSET:
        changes["email"] = clean_email(email)
    page = clean_page_url(page_url) if page_url is not UNSET and page_url is not None else None
    _, customer = await _visitor(store, session)
    await store.set_visitor_details(customer.id, VisitorDetails(page_url=page), now)
    changes = {k: v for k, v in changes.items() if getattr(customer, k) != v}
    if not changes:
        return replace(customer, page_url=page or customer.page_url)
    updated = await store.update_customer(customer, changes, now)
    conversation = await store.conversation(session.org_id, session.conversation_id)
    if conversation is not None:
        await _customer_updated(events, conversation, updated, now)
    return replace(updated, page_url=page or updated.page_url)


def is_agent_message(message: Message) -> bool:
    return message.sender_kind is not SenderKind.CUSTOMER


def widget_delivery(message: Message) -> DeliveryStatus | None:
    """The status of the copy of an agent's message that goes to the widget (the CHANNEL delivery)."""
    return next((d.status for d in message.deliveries if d.via is DeliveryVia.CHANNEL), None)


_NOT_YET_DELIVERED = (DeliveryStatus.QUEUED, DeliveryStatus.SENT)


async def acknowledge_delivered(
    deliveries: DeliveryStore, store: ConversationReader, events: EventSink, messages: list[Message], now: datetime
) -> list[Message]:
    """The visitor's browser has these messages (its stream carried them, or it fetched them):
    each agent message not yet DELIVERED becomes so, and agents hear it (DELIVERY). Returns
    the messages as they are now."""
    allowed = statuses_that_may_become(DeliveryStatus.DELIVERED)
    now_messages = []
    for message in messages:
        if is_agent_message(message) and widget_delivery(message) in _NOT_YET_DELIVERED:
            moved = await deliveries.report_by_id(message.id, DeliveryStatus.DELIVERED, allowed, now)
            if moved is not None:
                await announce(store, events, moved, now)
                message = moved
        now_messages.append(message)
    return now_messages


async def mark_read(
    store: WidgetStore,
    deliveries: DeliveryStore,
    events: EventSink,
    session: VisitorSession,
    up_to_message_id: str,
    now: datetime,
) -> int:
    """The visitor has seen the conversation up to this message: every agent message written by
    then becomes READ (agents hear each, DELIVERY); returns how many moved."""
    message = await store.message(session.org_id, up_to_message_id) if is_id(up_to_message_id) else None
    if message is None or message.conversation_id != session.conversation_id or not customer_can_see(message):
        raise not_found("message", "upToMessageId")
    allowed = statuses_that_may_become(DeliveryStatus.READ)
    moved = 0
    for message_id in reversed(await deliveries.up_to(session.conversation_id, message.created_at, allowed)):
        updated = await deliveries.report_by_id(message_id, DeliveryStatus.READ, allowed, now)
        if updated is not None:
            moved += 1
            await announce(store, events, updated, now)
    await store.touch_visitor(session.customer_id, now)
    return moved


async def set_visitor_typing(
    store: WidgetStore, events: EventSink, session: VisitorSession, typing: bool, now: datetime
) -> bool:
    """Tell the agents the visitor started or stopped typing (nothing is stored, nothing is
    replayed); before the first message there is no conversation and nobody to tell."""
    conversation = await store.conversation(session.org_id, session.conversation_id)
    if typing:
        await store.touch_visitor(session.customer_id, now)
    if conversation is None:
        return False
    await events.publish(_typing(conversation, None, typing, now))
    return True


async def set_member_typing(
    store: ConversationStore, events: EventSink, viewer: Viewer, conversation_id: str, typing: bool, now: datetime
) -> Conversation:
    """Tell the customer's widget (and the other agents) the member started or stopped typing."""
    conversation = await load_visible(store, viewer, conversation_id)
    await events.publish(_typing(conversation, viewer.member_id, typing, now))
    return conversation


def _typing(conversation: Conversation, actor_id: str | None, typing: bool, now: datetime) -> Event:
    return Event(
        kind=EventKind.TYPING,
        conversation=conversation,
        at=now,
        actor_id=actor_id,
        owner_before=conversation.owner_id,
        typing=typing,
    )


# Presence


async def visitor_connected(
    store: WidgetStore,
    events: EventSink,
    session: VisitorSession,
    page_url: str | None,
    now: datetime,
    t: Thresholds,
) -> None:
    """A widget socket opened: the visitor is online for the presence timeout (kept so while a
    socket stays open), active now, on ``page_url`` if the page said; agents hear it (PRESENCE)."""
    online_until = now + timedelta(seconds=t.presence_timeout_s)
    await store.set_visitor_details(session.customer_id, VisitorDetails(page_url=page_url), now)
    await store.visitors_online([session.customer_id], online_until)
    conversation = await store.conversation(session.org_id, session.conversation_id)
    if conversation is not None:
        await _presence(events, replace(conversation, customer_online_until=online_until), now, t)


async def visitor_left(
    store: WidgetStore, events: EventSink, org_id: str, customer_id: str, now: datetime, t: Thresholds
) -> bool:
    """The presence timeout passed since the visitor's last socket closed: unless a socket
    opened since (on any instance), agents hear they went offline (PRESENCE)."""
    customer = await store.customer(org_id, customer_id)
    if customer is None or customer_online(customer.online_until, now):
        return False
    conversation = await store.conversation(org_id, customer_id)
    if conversation is not None:
        await _presence(events, conversation, now, t)
    return True


async def _presence(events: EventSink, conversation: Conversation, now: datetime, t: Thresholds) -> None:
    await events.publish(
        Event(
            kind=EventKind.PRESENCE,
            conversation=conversation,
            at=now,
            owner_before=conversation.owner_id,
            previous_status=status_of(conversation, now, t),
        )
    )


__all__ = [
    "IdentitySecrets",
    "RateCounters",
    "SessionGrant",
    "SessionRequest",
    "WidgetStore",
    "acknowledge_delivered",
    "connect_widget_channel",
    "mark_read",
    "send_visitor_message",
    "set_member_typing",
    "set_visitor_typing",
    "start_session",
    "update_channel",
    "update_visitor_profile",
    "visitor_connected",
    "visitor_left",
]
