"""Which ways an agent's reply goes out, and what providers later report about it.

The worker that sends (``api/delivery``) and the provider modules (``api/channels``)
carry out what is decided here: a reply on a natively connected channel gets a
CHANNEL delivery (for the web widget: the visitor's history and stream), a web-widget
reply to an offline customer with an email an EMAIL one as well, all QUEUED in the
same write as the message. Status reports only move a
delivery forward (:func:`domain.delivery.may_become`), whatever order they arrive in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.delivery import StatusReport, Watermark, messenger_tag, statuses_that_may_become, wechat_window_open
from domain.entities import Channel, Conversation, Delivery, Message
from domain.enums import ChannelType, DeliveryStatus, DeliveryVia, ErrorCode, EventKind
from domain.errors import Refused
from domain.events import Event
from domain.ports import EventSink
from domain.status import email_fallback_active

# Channels whose replies this server sends itself: the providers' once their credentials are
# set; the web widget once it is set up (its visitors are served by this server).
NATIVE_CHANNELS = frozenset(
    {ChannelType.WHATSAPP, ChannelType.FACEBOOK, ChannelType.LINE, ChannelType.WECHAT, ChannelType.WEB_WIDGET}
)


def sends_natively(channel: Channel | None) -> bool:
    """Whether this server sends the channel's replies: to its provider, its widget visitors, or
    its custom adapter's outbound URL (:mod:`domain.usecases.adapters`)."""
    if channel is not None and channel.outbound_url is not None:
        return True
    if channel is None or channel.type not in NATIVE_CHANNELS:
        return False
    if channel.type is ChannelType.WEB_WIDGET:
        return channel.widget is not None
    return channel.credential_hints is not None


def deliveries_for(conversation: Conversation, channel: Channel | None, now: datetime) -> tuple[Delivery, ...]:
    """The deliveries a new reply is stored with, all QUEUED."""
    ways = []
    if sends_natively(channel):
        ways.append(Delivery(via=DeliveryVia.CHANNEL, status=DeliveryStatus.QUEUED, at=now))
    if email_fallback_active(conversation, now):
        ways.append(Delivery(via=DeliveryVia.EMAIL, status=DeliveryStatus.QUEUED, at=now))
    return tuple(ways)


def check_messenger_window(conversation: Conversation, now: datetime) -> None:
    """Messenger refuses a page's message more than 7 days after the person last wrote:
    say so before storing a reply that could never be delivered."""
    last_wrote = conversation.customer_last_wrote_at
    if conversation.channel_type is ChannelType.FACEBOOK and messenger_tag(last_wrote, now) is None:
        raise Refused(
            ErrorCode.MESSENGER_WINDOW_CLOSED,
            "More than 7 days since the customer wrote: Messenger accepts no message until they write again.",
            "kind",
        )


def check_wechat_window(conversation: Conversation, now: datetime) -> None:
    """WeChat takes an official account's customer service message only within 48 h of the
    customer's last message: say so before storing a reply that could never be delivered."""
    last_wrote = conversation.customer_last_wrote_at
    if conversation.channel_type is ChannelType.WECHAT and not wechat_window_open(last_wrote, now):
        raise Refused(
            ErrorCode.WECHAT_WINDOW_CLOSED,
            "More than 48 hours since the customer wrote: WeChat accepts no message until they write again.",
            "kind",
        )


class DeliveryStore(Protocol):
    async def report_by_provider_id(
        self,
        channel_id: str,
        provider_message_id: str,
        status: DeliveryStatus,
        allowed_from: tuple[DeliveryStatus, ...],
        at: datetime,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> Message | None: ...
    async def report_by_id(
        self, message_id: str, status: DeliveryStatus, allowed_from: tuple[DeliveryStatus, ...], at: datetime
    ) -> Message | None: ...
    async def up_to(
        self, conversation_id: str, up_to: datetime, allowed_from: tuple[DeliveryStatus, ...], limit: int = 200
    ) -> list[str]: ...


class ConversationReader(Protocol):
    async def customer_id_by_external_id(self, channel_id: str, external_id: str) -> str | None: ...
    async def refresh_last_message(self, message: Message) -> Conversation | None: ...


async def record_status(
    deliveries: DeliveryStore,
    store: ConversationReader,
    events: EventSink,
    channel: Channel,
    report: StatusReport,
    now: datetime,
) -> Message | None:
    """A provider's status for one message it took; None when it changes nothing (unknown
    message, a repeat, or a report behind what is already known)."""
    updated = await deliveries.report_by_provider_id(
        channel.id,
        report.provider_message_id,
        report.status,
        statuses_that_may_become(report.status),
        report.at or now,
        report.error_code,
        report.error_message,
    )
    if updated is not None:
        await announce(store, events, updated, now)
    return updated


async def record_watermark(
    deliveries: DeliveryStore,
    store: ConversationReader,
    events: EventSink,
    channel: Channel,
    mark: Watermark,
    now: datetime,
) -> list[Message]:
    """Every reply to ``mark.recipient`` written by the watermark reached ``mark.status``."""
    conversation_id = await store.customer_id_by_external_id(channel.id, mark.recipient)
    if conversation_id is None:
        return []
    allowed = statuses_that_may_become(mark.status)
    moved = []
    for message_id in reversed(await deliveries.up_to(conversation_id, mark.up_to, allowed)):
        updated = await deliveries.report_by_id(message_id, mark.status, allowed, now)
        if updated is not None:
            moved.append(updated)
            await announce(store, events, updated, now)
    return moved


async def announce(store: ConversationReader, events: EventSink, message: Message, now: datetime) -> None:
    """A delivery changed: the conversation's copy of the message shows it, and subscribers hear it."""
    conversation = await store.refresh_last_message(message)
    if conversation is not None:
        await events.publish(
            Event(
                kind=EventKind.DELIVERY,
                conversation=conversation,
                at=now,
                message_id=message.id,
            )
        )
