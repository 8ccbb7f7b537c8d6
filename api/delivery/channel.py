"""The CHANNEL transport: a reply goes to the customer through their channel's provider.

It gathers what a provider module needs (the channel's decrypted credentials, the
customer's provider id, signed public links to stored files, the Messenger window
that applies now, whether WeChat's 48 h window is still open) into a
:class:`domain.delivery.Outgoing`, and hands it to the module for the channel's type.
A channel with an ``outbound_url`` sends through its custom adapter instead (:mod:`api.channels.custom`).
Neither Meta nor WeChat offers an idempotency key, so a send whose outcome is unknown (a
worker killed mid-request, a dropped connection) is sent again: at-least-once
(``resend_when_unknown``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from api.channels.custom import AdapterTarget
from domain.delivery import (
    Failed,
    Outcome,
    Outgoing,
    OutgoingFile,
    RetryPolicy,
    Sent,
    messenger_tag,
    wechat_window_open,
)
from domain.entities import Message
from domain.enums import ChannelType, DeliveryVia, ErrorCode

# Channels whose provider refuses replies some time after the customer last wrote.
WINDOWED = frozenset({ChannelType.FACEBOOK, ChannelType.WECHAT})


class Provider(Protocol):
    async def send(self, credentials: Any, outgoing: Outgoing) -> Outcome: ...


def needs_credentials(provider: Provider) -> bool:
    """Providers reached through a third party need the channel's credentials; the web widget,
    whose visitors this server serves itself, says it doesn't (``needs_credentials = False``)."""
    return getattr(provider, "needs_credentials", True)


class ChannelTransport:
    via = DeliveryVia.CHANNEL
    label = "channel"
    resend_when_unknown = True
    unknown_reason = ""

    def __init__(
        self,
        services: Any,
        providers: Mapping[ChannelType, Provider],
        policy: RetryPolicy,
        adapter: Provider | None = None,
    ) -> None:
        self.services = services
        self.providers = providers
        self.policy = policy
        self.adapter = adapter  # custom adapters' outbound URLs (api/channels/custom.py)

    @property
    def attempt_timeout_s(self) -> float:
        # several files are several requests
        return 4 * self.services.settings.provider_timeout_s + 5

    async def deliver(self, message: Message, mark_sending: Callable[[str], Awaitable[bool]]) -> Outcome:
        store = self.services.store
        channel_id = message.channel_id
        if channel_id is None:  # replies stored before they carried their channel
            conversation = await store.conversation(message.org_id, message.conversation_id)
            channel_id = conversation.channel_id if conversation else None
        loaded = await self.services.credentials.load(channel_id) if channel_id else None
        if loaded is None:
            return Failed("The channel no longer exists.")
        channel, credentials = loaded
        if channel.disabled_at is not None:  # nothing goes out of a disabled channel; no retry
            return Failed("The channel was disabled before this reply went out.", ErrorCode.CHANNEL_DISABLED.value)
        if channel.outbound_url is not None:
            return await self._to_adapter(message, channel.id)
        provider = self.providers.get(channel.type)
        if provider is None:
            return Failed(f"{channel.type.value} replies are not sent by this server.")
        if credentials is None and needs_credentials(provider):
            return Failed("The channel has no provider credentials: connect it to deliver replies.")
        # a conversation's id is its customer's
        recipient = await store.external_id_of(message.org_id, message.conversation_id)
        if recipient is None:
            return Failed("The customer no longer exists.")
        now = self.services.clock()
        tag = None
        if channel.type in WINDOWED:  # the window that applies now, not when the reply was written
            conversation = await store.conversation(message.org_id, message.conversation_id)
            if conversation is None:
                return Failed("The conversation no longer exists.")
            last_wrote = conversation.customer_last_wrote_at
            if channel.type is ChannelType.FACEBOOK and (tag := messenger_tag(last_wrote, now)) is None:
                return Failed(
                    "More than 7 days since the customer wrote: Messenger accepts no message.",
                    ErrorCode.MESSENGER_WINDOW_CLOSED.value,
                )
            if channel.type is ChannelType.WECHAT and not wechat_window_open(last_wrote, now):
                return Failed(
                    "More than 48 hours since the customer wrote: WeChat accepts no customer service message.",
                    ErrorCode.WECHAT_WINDOW_CLOSED.value,
                )
        outgoing = Outgoing(
            message_id=message.id,
            kind=message.kind,
            recipient=recipient,
            text=message.text,
            files=self._files(message, now),
            template=message.template_call,
            messenger_tag=tag,
        )
        # No "sending" mark: whatever the outcome, an interrupted send is sent again.
        return await provider.send(credentials, outgoing)

    async def _to_adapter(self, message: Message, channel_id: str) -> Outcome:
        """A channel served by a custom adapter: the reply goes to its outbound URL, whatever the
        channel's type (the adapter keeps the platform's rules)."""
        if self.adapter is None:
            return Failed("Custom adapters' replies are not sent by this server.")
        found = await self.services.credentials.outbound_secret(channel_id)
        if found is None or found[0].outbound_url is None or found[1] is None:
            return Failed("The channel no longer has an outbound URL.")
        channel, secret = found
        recipient = await self.services.store.external_id_of(message.org_id, message.conversation_id)
        if recipient is None:
            return Failed("The customer no longer exists.")
        outgoing = Outgoing(
            message_id=message.id,
            kind=message.kind,
            recipient=recipient,
            text=message.text,
            files=self._files(message, self.services.clock()),
            template=message.template_call,
            conversation_id=message.conversation_id,
            created_at=message.created_at,
        )
        return await self.adapter.send(AdapterTarget(channel.outbound_url, secret), outgoing)

    def sent_fields(self, message: Message, sent: Sent) -> dict[str, Any]:
        """The provider's id, by which its later status reports find the message."""
        if not message.channel_id or not sent.reports_by_id:
            return {}
        return self.services.store.deliveries.sent_fields(
            message.channel_id, message.conversation_id, sent.provider_message_id
        )

    def _files(self, message: Message, now: Any) -> tuple[OutgoingFile, ...]:
        """Stored files as signed, expiring absolute links the provider fetches without our token;
        a conference link as it is."""
        base = self.services.settings.public_url.rstrip("/")
        links = self.services.links
        files = []
        for a in message.attachments:
            url = base + links.path(a.file_id, now) if a.file_id and links else a.url
            files.append(OutgoingFile(url=url, mime_type=a.mime_type, name=a.name, file_id=a.file_id))
        return tuple(files)
