"""The visitor's schema on ``/widget/graphql``: small, separate from the agents', and scoped to
the session's own customer and conversation.

Every field reads through the session (:class:`domain.widget.VisitorSession`): there is
no argument naming a conversation or a customer, so a visitor can only ever reach their
own. Members appear by name only (``agentName``); nothing internal (emails, other
conversations, deliveries' errors) is shown.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.file_uploads import Upload
from strawberry.types import Info

from api.graphql.mutations import read_uploads
from api.graphql.subscriptions import message_of
from api.graphql.types import message_cursor, message_seq_from_cursor, stored_int
from api.hub import DispatchedEvent
from domain.entities import Customer
from domain.entities import Message as Message_
from domain.enums import DeliveryStatus as Status
from domain.enums import ErrorCode, EventKind, SenderKind
from domain.errors import Refused, invalid
from domain.usecases import widget
from domain.widget import RateLimited


@strawberry.enum(description="Who wrote a message in the widget's conversation.")
class WidgetSender(Enum):
    VISITOR = strawberry.enum_value("VISITOR", description="The visitor (you).")
    AGENT = strawberry.enum_value("AGENT", description="A member of the team behind the widget.")


@strawberry.enum(name="DeliveryStatus", description="How far an agent's message has got to the visitor.")
class WidgetDeliveryStatus(Enum):
    SENT = strawberry.enum_value("SENT", description="Stored and on its way to the visitor's widget.")
    DELIVERED = strawberry.enum_value(
        "DELIVERED", description="The visitor's browser has it (its stream carried it, or it fetched it)."
    )
    READ = strawberry.enum_value("READ", description="The visitor has seen it (`markRead`).")


@strawberry.enum(description="What a widget event carries.")
class WidgetEventKind(Enum):
    MESSAGE = strawberry.enum_value(
        "MESSAGE", description="A new message in the conversation: an agent's, or the visitor's own (from any tab)."
    )
    TYPING = strawberry.enum_value(
        "TYPING",
        description="An agent started or stopped typing (`typing`, `agentName`); never replayed, and over after "
        "6 s without a repeat.",
    )
    DELIVERY = strawberry.enum_value(
        "DELIVERY", description="An agent's message changed status (`message.status`: DELIVERED, READ)."
    )


@strawberry.enum(description="Why a widget mutation was refused.")
class WidgetErrorCode(Enum):
    INVALID_INPUT = strawberry.enum_value("INVALID_INPUT", description="An input breaks a rule; `field` names it.")
    NOT_FOUND = strawberry.enum_value("NOT_FOUND", description="No such message in your conversation.")
    PAYLOAD_TOO_LARGE = strawberry.enum_value(
        "PAYLOAD_TOO_LARGE", description="A file is larger than the server allows (`IMBRACE_MAX_UPLOAD_BYTES`)."
    )
    RATE_LIMITED = strawberry.enum_value(
        "RATE_LIMITED",
        description="Too many messages from you or your address: wait `retryAfterSeconds` "
        "(`IMBRACE_WIDGET_MESSAGES_PER_MINUTE`, `IMBRACE_WIDGET_MESSAGES_PER_ADDRESS_PER_MINUTE`).",
    )
    UNKNOWN_WIDGET = strawberry.enum_value(
        "UNKNOWN_WIDGET", description="The widget's channel is gone: start a new session."
    )


@strawberry.type(description="An expected refusal: what went wrong, and in which input field.")
class WidgetError:
    code: WidgetErrorCode = strawberry.field(description="Machine-readable reason.")
    message: str = strawberry.field(description="Human-readable explanation.")
    field: str | None = strawberry.field(default=None, description="The input field at fault, if any.")
    retry_after_seconds: int | None = strawberry.field(default=None, description="RATE_LIMITED: when to try again.")


def widget_error(refused: Refused) -> WidgetError:
    code = WidgetErrorCode.__members__.get(refused.code.value, WidgetErrorCode.INVALID_INPUT)
    retry = refused.retry_after_s if isinstance(refused, RateLimited) else None
    return WidgetError(code=code, message=refused.message, field=refused.field, retry_after_seconds=retry)


async def run(payload: Any, action: Any) -> Any:
    """A use case's refusal becomes ``errors``, and every other payload field stays null."""
    try:
        return payload(**await action(), errors=[])
    except Refused as refused:
        return payload(errors=[widget_error(refused)])


@strawberry.type(description="A file attached to a message.")
class WidgetAttachment:
    url: str = strawberry.field(
        description="Where to get it: a signed link to this server (relative; resolve it against the server's "
        "URL) that opens the file without a token until it expires (`IMBRACE_PUBLIC_FILE_TTL_S`), or an "
        "absolute URL (a conference link)."
    )
    name: str | None = strawberry.field(default=None, description="File name.")
    mime_type: str | None = strawberry.field(default=None, description="Media type.")
    size: int | None = strawberry.field(default=None, description="Size in bytes.")


@strawberry.type(description="A message of the visitor's conversation.")
class WidgetMessage:
    entity: strawberry.Private[Message_]

    @strawberry.field(description="Message id (pass it to `markRead`).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Who wrote it.")
    def sender(self) -> WidgetSender:
        return WidgetSender.VISITOR if self.entity.sender_kind is SenderKind.CUSTOMER else WidgetSender.AGENT

    @strawberry.field(description="The agent's display name, for agents' messages.")
    async def agent_name(self, info: Info) -> str | None:
        member_id = self.entity.sender_member_id
        return await info.context.member_names.load(member_id) if member_id else None

    @strawberry.field(description="Text, or a file's caption.")
    def text(self) -> str | None:
        return self.entity.text

    @strawberry.field(description="Files and links.")
    def attachments(self, info: Info) -> list[WidgetAttachment]:
        links, now = info.context.services.links, info.context.now
        return [
            WidgetAttachment(
                url=links.path(a.file_id, now) if a.file_id and links else a.url,
                name=a.name,
                mime_type=a.mime_type,
                size=a.size,
            )
            for a in self.entity.attachments
        ]

    @strawberry.field(description="When the server received it.")
    def created_at(self) -> datetime:
        return self.entity.created_at

    @strawberry.field(description="For agents' messages: SENT, DELIVERED or READ; null for the visitor's own.")
    def status(self) -> WidgetDeliveryStatus | None:
        if not widget.is_agent_message(self.entity):
            return None
        status = widget.widget_delivery(self.entity)
        if status is Status.READ:
            return WidgetDeliveryStatus.READ
        if status is Status.DELIVERED:
            return WidgetDeliveryStatus.DELIVERED
        return WidgetDeliveryStatus.SENT


@strawberry.type(description="One message of a page, with its cursor.")
class WidgetMessageEdge:
    cursor: str = strawberry.field(description="Opaque position of this message.")
    node: WidgetMessage = strawberry.field(description="The message.")


@strawberry.type(description="Paging information.")
class WidgetPageInfo:
    has_previous_page: bool = strawberry.field(description="Older messages precede this page.")
    start_cursor: str | None = strawberry.field(description="Pass as `before` for older messages.")


@strawberry.type(description="A page of the visitor's messages, oldest first.")
class WidgetMessageConnection:
    edges: list[WidgetMessageEdge] = strawberry.field(description="Messages, chronological.")
    page_info: WidgetPageInfo = strawberry.field(description="`hasPreviousPage`/`startCursor` lead to older messages.")
    event_cursor: str = strawberry.field(
        description="Where the event stream stood just before this page was read: subscribe with "
        "`widgetEvents(after: eventCursor)` to miss nothing since (a message may then come twice: keep one per id)."
    )


@strawberry.type(description="The visitor this session speaks for.")
class Visitor:
    entity: strawberry.Private[Customer]
    visitor_id_value: strawberry.Private[str]

    @strawberry.field(description="The visitor's id, kept by the widget (in `localStorage`) for the next session.")
    def visitor_id(self) -> str:
        return self.visitor_id_value

    @strawberry.field(description="Name, as the visitor or the site gave it.")
    def name(self) -> str | None:
        return self.entity.name

    @strawberry.field(description="Email, as the visitor or the site gave it; replies go there while offline.")
    def email(self) -> str | None:
        return self.entity.email

    @strawberry.field(description="The visitor's conversation (null until their first message).")
    async def conversation_id(self, info: Info) -> strawberry.ID | None:
        ctx = info.context
        found = await ctx.services.store.conversation(ctx.session.org_id, ctx.session.conversation_id)
        return strawberry.ID(found.id) if found else None


async def _visitor(info: Info) -> Visitor:
    ctx = info.context
    customer = await ctx.services.store.customer(ctx.session.org_id, ctx.session.customer_id)
    if customer is None:
        raise Refused(ErrorCode.UNKNOWN_WIDGET, "This session's visitor no longer exists.")
    return Visitor(entity=customer, visitor_id_value=ctx.session.visitor_id)


@strawberry.type(
    description="What the visitor reads. Every field needs the session token (`Authorization: Bearer <token>`, "
    "from `POST /widget/v1/sessions`) and answers for the session's own visitor and conversation only."
)
class Query:
    @strawberry.field(description="The visitor this session speaks for.")
    async def visitor(self, info: Info) -> Visitor:
        return await _visitor(info)

    @strawberry.field(
        description="The visitor's messages, oldest first (the newest `last` before `before`). Agents' messages "
        "read here become DELIVERED."
    )
    async def messages(
        self,
        info: Info,
        last: Annotated[
            int, strawberry.argument(description="How many messages, 0 to 100 (`INVALID_INPUT` otherwise).")
        ] = 30,
        before: Annotated[
            str | None, strawberry.argument(description="`startCursor` of the page you have: only older messages.")
        ] = None,
    ) -> WidgetMessageConnection:
        if last < 0 or last > 100:
            raise invalid("`last` must be between 0 and 100.", "last")
        ctx = info.context
        services = ctx.services
        before_seq = message_seq_from_cursor(before) if before else None
        cursor = str(services.hub.dispatched_id) if services.hub is not None else "0"
        found = await services.store.messages_page(ctx.session.conversation_id, last, before_seq)
        has_previous = len(found) > last
        page = list(reversed(found[:last]))
        store = services.store
        page = await widget.acknowledge_delivered(store.deliveries, store, services.events, page, ctx.now)
        edges = [WidgetMessageEdge(cursor=message_cursor(m.seq), node=WidgetMessage(entity=m)) for m in page]
        return WidgetMessageConnection(
            edges=edges,
            page_info=WidgetPageInfo(has_previous_page=has_previous, start_cursor=edges[0].cursor if edges else None),
            event_cursor=cursor,
        )


@strawberry.input(description="A message from the visitor: text, files, or both.")
class WidgetSendMessageInput:
    text: str | None = strawberry.field(default=None, description="Text (at most 4,096 characters), or a caption.")
    attachments: list[Upload] | None = strawberry.field(
        default=None,
        description="Files (at most 10, each within `IMBRACE_MAX_UPLOAD_BYTES`), sent as a GraphQL multipart request.",
    )


@strawberry.input(description="Changes to the visitor's details; omitted fields are kept, null clears.")
class UpdateProfileInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="Name.")
    email: str | None = strawberry.field(
        default=strawberry.UNSET, description="Email: while the visitor is offline, agents' replies go there too."
    )
    page_url: str | None = strawberry.field(
        default=strawberry.UNSET, description="The URL of the page the visitor is on now (shown to agents)."
    )


@strawberry.input(description="What the visitor has seen.")
class MarkReadInput:
    up_to_message_id: strawberry.ID = strawberry.field(
        description="The newest message the visitor has seen: it and every agent message before it become READ."
    )


@strawberry.input(description="Whether the visitor is typing.")
class SetTypingInput:
    typing: bool = strawberry.field(
        description="True while typing (repeat it every few seconds; it counts as over after 6 s), false when done."
    )


@strawberry.type(description="Result of `sendMessage`.")
class WidgetSendMessagePayload:
    message: WidgetMessage | None = strawberry.field(default=None, description="The stored message.")
    errors: list[WidgetError] = strawberry.field(description="Why it was refused, if it was.")


@strawberry.type(description="Result of `updateProfile`.")
class UpdateProfilePayload:
    visitor: Visitor | None = strawberry.field(default=None, description="The visitor after the change.")
    errors: list[WidgetError] = strawberry.field(description="Why it was refused, if it was.")


@strawberry.type(description="Result of `markRead`.")
class MarkReadPayload:
    marked: int | None = strawberry.field(default=None, description="How many agent messages became READ.")
    errors: list[WidgetError] = strawberry.field(description="Why it was refused, if it was.")


@strawberry.type(description="Result of `setTyping`.")
class SetTypingPayload:
    typing: bool | None = strawberry.field(default=None, description="What the agents were told.")
    errors: list[WidgetError] = strawberry.field(description="Why it was refused, if it was.")


def _unset(value: Any) -> Any:
    return widget.UNSET if value is strawberry.UNSET else value


@strawberry.type(
    description="What the visitor does, over HTTP or the WebSocket alike. Refusals come back in each payload's "
    "`errors`."
)
class Mutation:
    @strawberry.mutation(
        description="Send a message to the team: text and/or files (multipart), checked as an agents' message is. "
        "The first one opens the conversation. Errors: INVALID_INPUT, PAYLOAD_TOO_LARGE, RATE_LIMITED "
        "(`IMBRACE_WIDGET_MESSAGES_PER_MINUTE` per visitor, `IMBRACE_WIDGET_MESSAGES_PER_ADDRESS_PER_MINUTE` per "
        "address), UNKNOWN_WIDGET."
    )
    async def send_message(
        self, info: Info, input: Annotated[WidgetSendMessageInput, strawberry.argument(description="The message.")]
    ) -> WidgetSendMessagePayload:
        ctx = info.context
        s = ctx.services

        async def action():
            uploads = await read_uploads(input.attachments, s.settings.messaging.max_upload_bytes)
            message = await widget.send_visitor_message(
                s.store,
                s.files,
                s.events,
                s.store.rate_limits,
                ctx.session,
                input.text,
                uploads,
                ctx.client_address,
                ctx.now,
                s.settings.thresholds,
                s.settings.messaging,
                s.settings.widget_limits,
            )
            return {"message": WidgetMessage(entity=message)}

        return await run(WidgetSendMessagePayload, action)

    @strawberry.mutation(
        description="Change the visitor's name, email or current page (counted like a message). "
        "Errors: INVALID_INPUT, RATE_LIMITED, UNKNOWN_WIDGET."
    )
    async def update_profile(
        self, info: Info, input: Annotated[UpdateProfileInput, strawberry.argument(description="The changes.")]
    ) -> UpdateProfilePayload:
        ctx = info.context
        s = ctx.services

        async def action():
            customer = await widget.update_visitor_profile(
                s.store,
                s.events,
                s.store.rate_limits,
                ctx.session,
                ctx.client_address,
                ctx.now,
                s.settings.widget_limits,
                name=_unset(input.name),
                email=_unset(input.email),
                page_url=_unset(input.page_url),
            )
            return {"visitor": Visitor(entity=customer, visitor_id_value=ctx.session.visitor_id)}

        return await run(UpdateProfilePayload, action)

    @strawberry.mutation(
        description="The visitor has seen the conversation up to a message: agents' messages up to it become "
        "READ, and the agents see it. Errors: NOT_FOUND (no such message in your conversation)."
    )
    async def mark_read(
        self, info: Info, input: Annotated[MarkReadInput, strawberry.argument(description="Up to where.")]
    ) -> MarkReadPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            marked = await widget.mark_read(
                s.store, s.store.deliveries, s.events, ctx.session, str(input.up_to_message_id), ctx.now
            )
            return {"marked": marked}

        return await run(MarkReadPayload, action)

    @strawberry.mutation(
        description="Tell the agents the visitor started or stopped typing; nothing is stored. Errors: none "
        "(before the first message there is nobody to tell yet)."
    )
    async def set_typing(
        self, info: Info, input: Annotated[SetTypingInput, strawberry.argument(description="Typing or not.")]
    ) -> SetTypingPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            session = ctx.session
            if s.typing is None or s.typing.should_tell(session.conversation_id, None, input.typing):
                told = await widget.set_visitor_typing(s.store, s.events, session, input.typing, ctx.now)
                if not told and s.typing is not None:
                    s.typing.forget(session.conversation_id, None)
            return {"typing": input.typing}

        return await run(SetTypingPayload, action)


@strawberry.type(description="Something that happened in the visitor's conversation.")
class WidgetEvent:
    cursor: str = strawberry.field(
        description="The event's position: pass the last one you received as `after` when reconnecting."
    )
    kind: WidgetEventKind = strawberry.field(description="What happened.")
    message: WidgetMessage | None = strawberry.field(default=None, description="For MESSAGE and DELIVERY.")
    typing: bool | None = strawberry.field(default=None, description="For TYPING: started (true) or stopped.")
    agent_name: str | None = strawberry.field(default=None, description="For TYPING: who.")


class _Stream:
    """What one visitor's stream keeps between events: agents' names."""

    def __init__(self, info: Info) -> None:
        self.info = info
        self.names: dict[str, str | None] = {}

    async def agent_name(self, member_id: str) -> str | None:
        if member_id not in self.names:
            ctx = self.info.context
            found = await ctx.services.store.member(ctx.session.org_id, member_id)
            self.names[member_id] = found.name if found else None
        return self.names[member_id]

    async def event_of(self, dispatched: DispatchedEvent) -> WidgetEvent | None:
        """What the visitor is told of a stored event, if anything."""
        ctx = self.info.context
        doc = dispatched.doc
        kind = doc.get("kind")
        cursor = str(doc["_id"])
        if kind == EventKind.TYPING.value:
            actor = doc.get("actor_id")
            if not actor:  # the visitor's own
                return None
            return WidgetEvent(
                cursor=cursor,
                kind=WidgetEventKind.TYPING,
                typing=bool(doc.get("typing")),
                agent_name=await self.agent_name(actor),
            )
        if kind not in _MESSAGE_KINDS or not doc.get("message_id"):
            return None
        message = await message_of(dispatched, ctx.services.store)
        if message is None or message.conversation_id != ctx.session.conversation_id:
            return None
        if kind == EventKind.DELIVERY.value:
            if not widget.is_agent_message(message):
                return None
            return WidgetEvent(cursor=cursor, kind=WidgetEventKind.DELIVERY, message=WidgetMessage(entity=message))
        return WidgetEvent(cursor=cursor, kind=WidgetEventKind.MESSAGE, message=WidgetMessage(entity=message))

    async def delivered(self, event: WidgetEvent) -> None:
        """The event reached the visitor's browser (its next one is being asked for)."""
        if event.message is None:
            return
        services = self.info.context.services
        await widget.acknowledge_delivered(
            services.store.deliveries, services.store, services.events, [event.message.entity], services.clock()
        )


_MESSAGE_KINDS = (EventKind.MESSAGE.value, EventKind.CREATED.value, EventKind.REOPENED.value, EventKind.DELIVERY.value)


@strawberry.type(
    description="The visitor's live stream, over WebSocket (`graphql-transport-ws` on `/widget/graphql`; "
    '`connection_init` payload `{"token": "<session token>"}`). While a socket is open the visitor counts as online.'
)
class Subscription:
    @strawberry.subscription(
        description="Agents' messages (and the visitor's own, from any tab), agents' typing, and status changes of "
        "agents' messages. Pass `after` (the last `cursor` you received, or `eventCursor` of `messages`) to get "
        "what you missed first: nothing is lost across a reconnect (typing is never replayed)."
    )
    async def widget_events(
        self,
        info: Info,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The last cursor you received: the events after it are replayed first (kept for "
                "`IMBRACE_EVENT_RETENTION_S`), then the live ones; omitted: live events only."
            ),
        ] = None,
    ) -> AsyncGenerator[WidgetEvent, None]:
        start = None
        if after is not None:
            start = stored_int(after)
            if start is None:
                raise invalid("`after` must be a cursor of this stream.", "after")
        ctx = info.context
        session = ctx.session
        hub = ctx.services.hub
        stream = _Stream(info)
        subscription = hub.subscribe(session.org_id, conversation_id=session.conversation_id)
        try:
            frontier = hub.dispatched_id
            backlog = (
                await hub.replay_conversation(session.org_id, session.conversation_id, start, frontier)
                if start is not None
                else []
            )
            last = frontier
            for dispatched in backlog:
                ctx.refresh(ctx.services.clock())
                event = await stream.event_of(dispatched)
                if event is not None:
                    yield event
                    await stream.delivered(event)
            while True:
                dispatched = await subscription.queue.get()
                if subscription.overflowed:
                    return  # too far behind: the widget reconnects with `after`
                if dispatched.doc["_id"] <= last:
                    continue
                last = dispatched.doc["_id"]
                ctx.refresh(ctx.services.clock())
                event = await stream.event_of(dispatched)
                if event is not None:
                    yield event
                    await stream.delivered(event)
        finally:
            hub.unsubscribe(subscription)
