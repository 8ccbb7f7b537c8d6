"""Realtime: conversation events, new messages, notifications.

Each subscription follows the process's :class:`api.hub.EventHub`, which hands
it only the events of teams it may see. Every event is judged with the
domain's rules (visibility, the list filter, status at the event's moment), so
what arrives over WebSocket is exactly what the list query would show. Work
that is the same for many subscribers is done once per event, and kept on the
:class:`api.hub.DispatchedEvent` all of them receive: decoding the stored
event, judging it per (visibility, filter), loading its message, and executing
the selection (:mod:`api.graphql.sharing`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.auth import reload_viewer
from api.graphql.enums import ConversationStatus, EventKind
from api.graphql.inputs import ConversationFilter
from api.graphql.multiplex import GroupRoot, Resume
from api.graphql.notifications import Notification, load_notification
from api.graphql.queries import to_domain_filter
from api.graphql.types import App, Conversation, Member, Message, Moment, stored_int
from api.hub import DispatchedEvent
from api.store import codec
from api.store.events import TEAMS_CHANGED, is_conversation_event
from domain import listing
from domain.entities import Conversation as Conversation_
from domain.entities import Message as Message_
from domain.enums import EventKind as Kind
from domain.errors import invalid
from domain.events import GONE, Event, Gone, delivered_kind, judgment_key, visible_now
from domain.visibility import Viewer, can_see


@strawberry.type(description="Something that happened to a conversation you can see.")
class ConversationEvent:
    event: strawberry.Private[Event]
    delivered_kind: strawberry.Private[Kind]
    shared_results: strawberry.Private[dict] = strawberry.field(default_factory=dict)

    @strawberry.field(description="Event id, monotonic: pass the last one as `after` when reconnecting.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.event.id))

    @strawberry.field(description="What happened. HIDDEN: the conversation is no longer visible to you.")
    def kind(self) -> EventKind:
        return self.delivered_kind

    @strawberry.field(description="The conversation's id (always present, also for HIDDEN).")
    def conversation_id(self) -> strawberry.ID:
        return strawberry.ID(self.event.conversation.id)

    @strawberry.field(description="The conversation after the change (null for HIDDEN).")
    def conversation(self) -> Conversation | None:
        if self.delivered_kind is Kind.HIDDEN:
            return None
        return Conversation(
            entity=self.event.conversation, as_of=Moment(at=self.event.at, status=self.event.new_status)
        )

    @strawberry.field(description="Status before the change.")
    def previous_status(self) -> ConversationStatus | None:
        return None if self.delivered_kind is Kind.HIDDEN else self.event.previous_status

    @strawberry.field(description="Who made the change (null for customers, timers and apps).")
    async def actor(self, info: Info) -> Member | None:
        if not self.event.actor_id or self.event.by_app or self.delivered_kind is Kind.HIDDEN:
            return None
        found = await info.context.loaders.member.load(self.event.actor_id)
        return Member(entity=found) if found else None

    @strawberry.field(description="The app (an API key's integration) that made the change; null otherwise.")
    async def app(self, info: Info) -> App | None:
        if not self.event.actor_id or not self.event.by_app or self.delivered_kind is Kind.HIDDEN:
            return None
        found = await info.context.loaders.app.load(self.event.actor_id)
        return App.of(found) if found else None

    @strawberry.field(
        description="The message, for MESSAGE (also an internal note), CREATED and REOPENED events; for READ, "
        "the message read up to."
    )
    async def message(self, info: Info) -> Message | None:
        if not self.event.message_id or self.delivered_kind is Kind.HIDDEN:
            return None
        found = await info.context.services.store.message(self.event.conversation.org_id, self.event.message_id)
        return Message(entity=found) if found else None

    @strawberry.field(description="When it happened.")
    def at(self) -> datetime:
        return self.event.at

    @strawberry.field(description="For TRANSFERRED: the note the admin wrote, if any (null for HIDDEN).")
    def note(self) -> str | None:
        return None if self.delivered_kind is Kind.HIDDEN else self.event.note

    @strawberry.field(
        description="For TYPING: whether `actor` (a member), or the web-widget visitor when `actor` is null, "
        "started (true) or stopped (false) typing; null for other kinds."
    )
    def typing(self) -> bool | None:
        return self.event.typing if self.delivered_kind is Kind.TYPING else None


def judged(dispatched: DispatchedEvent, context, flt: listing.ConversationFilter) -> Kind | None:
    """What this subscriber receives, judged once per (visibility, filter) for each event."""
    visibility = context.visibility()
    key = judgment_key(visibility, context.viewer, flt)
    verdicts = dispatched.verdicts
    if key not in verdicts:
        verdicts[key] = delivered_kind(
            context.viewer, visibility, flt, dispatched.event, context.services.settings.thresholds
        )
    return verdicts[key]


def payload(dispatched: DispatchedEvent, kind: Kind) -> ConversationEvent:
    """One payload object per (event, delivered kind): its ``shared_results`` let
    subscribers with the same operation, variables and visibility share an execution."""
    payloads = dispatched.payloads
    if kind not in payloads:
        payloads[kind] = ConversationEvent(event=dispatched.event, delivered_kind=kind)
    return payloads[kind]


async def message_of(dispatched: DispatchedEvent, store) -> Message_ | None:
    """The event's message, read once for every subscriber of this process."""
    if dispatched.message is None:
        doc = dispatched.doc
        dispatched.message = asyncio.ensure_future(store.message(doc["org_id"], doc["message_id"]))
    return await asyncio.shield(dispatched.message)


async def line_of(dispatched: DispatchedEvent, store) -> Message_ | None:
    """The system line the event's change wrote, read once for every subscriber of this process."""
    if dispatched.line is None:
        doc = dispatched.doc
        dispatched.line = asyncio.ensure_future(store.message(doc["org_id"], doc["line_id"]))
    return await asyncio.shield(dispatched.line)


MESSAGE_KINDS = frozenset(k.value for k in (Kind.MESSAGE, Kind.CREATED, Kind.REOPENED, Kind.DELIVERY))


def _reader_here(root, viewer: Viewer, reader: str | None) -> bool:
    """A READ event goes to its reader's subscriptions only: this stream's member, or one
    of the members a shared stream serves (:class:`api.graphql.multiplex.GroupRoot`)."""
    if isinstance(root, GroupRoot):
        return reader in root.member_ids()
    return reader == viewer.member_id


class OneEvent:
    """Root value that runs a subscription for one stored event and ends (an integrator's
    webhook, :mod:`api.webhooks.execution`): the same resolvers judge and render it, so a
    webhook's payload is what a live subscriber with its visibility would receive.
    ``dispatched`` None checks the document and yields nothing."""

    def __init__(self, dispatched: DispatchedEvent | None, now_state: Conversation_ | Gone | None) -> None:
        self.dispatched = dispatched
        self.now_state = now_state


def _parse_after(after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    value = stored_int(str(after))
    if value is None:
        raise invalid("`after` must be an event id.", "after")
    return value


async def follow(
    info: Info, after: int | None, notifications: bool = False
) -> AsyncGenerator[tuple[DispatchedEvent, Viewer, Conversation_ | Gone | None], None]:
    """Stored events after ``after`` (if given), then live ones: no gap, no duplicate.

    Yields (the event as dispatched, current viewer, the conversation now): team changes
    refresh the viewer before the next event is judged. "The conversation now"
    is what it has become since the event, when that is known to differ (None
    otherwise): for replayed events, its stored state, read once for the whole
    backlog; for live ones, the newest event this process has dispatched. An
    event is never delivered in full to a viewer who may not see the
    conversation now (:func:`domain.events.visible_now`). With
    ``notifications``, only events that notify the viewer (and team changes).
    A stream shared by a group of subscribers (:mod:`api.graphql.multiplex`)
    instead stops at a team change, and its members are regrouped, resuming
    right after it.
    """
    ctx = info.context
    root = info.root_value
    if isinstance(root, OneEvent):
        if root.dispatched is not None and is_conversation_event(root.dispatched.doc):
            yield root.dispatched, ctx.viewer, root.now_state
        return
    hub = ctx.services.hub
    grouped = isinstance(root, GroupRoot)
    if isinstance(root, Resume) and after is None:
        after = root.resume_after
        ctx.refresh(await reload_viewer(ctx.services.store, ctx.services.api_keys, ctx.viewer), ctx.services.clock())
        if ctx.viewer is None:
            return
    elif grouped and after is None:
        after = root.start_after
    viewer = ctx.viewer
    if notifications:
        subscription = hub.subscribe(viewer.org_id, frozenset(), member_id=viewer.member_id)
    else:
        subscription = hub.subscribe(viewer.org_id, ctx.visibility().team_ids)

    def follow_teams() -> None:
        if not notifications:
            hub.follow_teams(subscription, ctx.visibility().team_ids)

    try:
        frontier = hub.dispatched_id
        backlog = await hub.replay(viewer.org_id, after, frontier) if after is not None else []
        current = await _conversations_now(ctx, backlog) if backlog and not notifications else {}
        last = frontier
        for dispatched in backlog:
            doc = dispatched.doc
            if doc["kind"] != TEAMS_CHANGED and not is_conversation_event(doc):
                continue  # news for the instances (a revoked API key), not for subscribers
            viewer = await _judge_viewer(ctx, doc, viewer, follow_teams)
            if viewer is None:
                return
            yield dispatched, viewer, current.get((doc.get("conversation") or {}).get("_id", ""), GONE)
        while True:
            dispatched = await subscription.queue.get()
            doc = dispatched.doc
            if subscription.overflowed:
                return
            if doc["_id"] <= last or doc["org_id"] != viewer.org_id:
                continue
            last = doc["_id"]
            if grouped and doc["kind"] == TEAMS_CHANGED:
                root.resume_after = doc["_id"]
                return
            viewer = await _judge_viewer(ctx, doc, viewer, follow_teams)
            if viewer is None:
                return
            newer = hub.newer_state(doc)
            yield dispatched, viewer, codec.conversation(newer) if newer is not None else None
    finally:
        hub.unsubscribe(subscription)


async def _conversations_now(ctx, backlog: list[DispatchedEvent]) -> dict[str, Conversation_]:
    """The stored state of every conversation a replayed backlog names, in one query."""
    ids = list({d.doc["conversation"]["_id"] for d in backlog if d.doc.get("conversation")})
    found = await ctx.services.store.conversations_by_ids(ctx.viewer.org_id, ids)
    return {c.id: c for c in found}


async def _judge_viewer(ctx, doc: dict, viewer, follow_teams):
    if doc["kind"] == TEAMS_CHANGED:
        viewer = await reload_viewer(ctx.services.store, ctx.services.api_keys, viewer)
        ctx.refresh(viewer, ctx.services.clock())
        if viewer is not None:
            follow_teams()
        return viewer
    ctx.refresh(viewer, ctx.services.clock())
    return viewer


@strawberry.type(
    description="The root of realtime streams, over WebSocket (`graphql-transport-ws`). "
    'Authenticate in `connection_init` with `{"authorization": "Bearer <token>"}` (a member\'s token, or an '
    "API key); a bad or missing token closes the socket with code 4403, and an expired token or a revoked API "
    "key closes it with 4401."
)
class Subscription:
    @strawberry.subscription(
        description="Changes to conversations you can see that match the filter. "
        "Pass `after` (last event id) to resume without gaps."
    )
    async def conversation_events(
        self,
        info: Info,
        filter: Annotated[
            ConversationFilter | None,
            strawberry.argument(
                description="Only events of conversations this filter would list at the event's moment (a "
                "CLOSED event also reaches lists that showed the conversation before); omitted: "
                "every open conversation you can see."
            ),
        ] = None,
        after: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="The last event id you received: the events after it are replayed first (they are "
                "kept for `IMBRACE_EVENT_RETENTION_S`), then the live ones; omitted: live events "
                "only."
            ),
        ] = None,
    ) -> AsyncGenerator[ConversationEvent, None]:
        flt = to_domain_filter(filter)
        root = info.root_value
        async for dispatched, viewer, now_state in follow(info, _parse_after(after)):
            doc = dispatched.doc
            if not is_conversation_event(doc):
                continue  # not about a conversation: a team change, notifications only (NOTIFIED)
            if doc["kind"] == Kind.READ.value and not _reader_here(root, viewer, doc.get("actor_id")):
                continue
            kind = judged(dispatched, info.context, flt)
            if kind is not None and visible_now(info.context.visibility(), kind, now_state):
                if doc["kind"] == Kind.READ.value and isinstance(root, GroupRoot):
                    root.only_for = doc.get("actor_id")  # the group writes it to the reader's operations only
                yield payload(dispatched, kind)

    @strawberry.subscription(
        description="New messages (and delivery updates) in one conversation, or in every "
        "conversation you can see when `conversationId` is omitted: customers' and members' messages, "
        "internal notes, and the system lines joins, leaves, grabs, closes and reopens write into the history."
    )
    async def message_added(
        self,
        info: Info,
        conversation_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only this conversation's messages; omitted: those of every conversation you can see."
            ),
        ] = None,
    ) -> AsyncGenerator[Message, None]:
        async for dispatched, _viewer, now_state in follow(info, None):
            doc = dispatched.doc
            if not (doc.get("message_id") and doc["kind"] in MESSAGE_KINDS) and not doc.get("line_id"):
                continue
            event = dispatched.event
            if conversation_id is not None and event.conversation.id != str(conversation_id):
                continue
            visibility = info.context.visibility()
            if not can_see(visibility, event.conversation) or not visible_now(visibility, event.kind, now_state):
                continue
            if doc.get("message_id") and doc["kind"] in MESSAGE_KINDS:
                found = await message_of(dispatched, info.context.services.store)
                if found is not None:
                    yield Message(entity=found)
            if doc.get("line_id"):  # after the message: a reopen's line follows the message that reopened it
                line = await line_of(dispatched, info.context.services.store)
                if line is not None:
                    yield Message(entity=line)

    @strawberry.subscription(description="Your notifications as they are created.")
    async def notification_received(self, info: Info) -> AsyncGenerator[Notification, None]:
        async for dispatched, viewer, _now_state in follow(info, None, notifications=True):
            notification_id = (dispatched.doc.get("notified") or {}).get(viewer.member_id)
            if notification_id:
                found = await load_notification(info.context, notification_id)
                if found is not None:
                    yield found
