"""Where a provider calls this server: one function, so each channel type's webhook path is decided once."""

from __future__ import annotations

from domain.entities import Channel
from domain.enums import ChannelType

# The native webhook's path prefix per channel type; other types (the web widget, and
# those not connected natively yet) are reached through ``/channels/{id}/inbound``.
WEBHOOK_PATHS: dict[ChannelType, str] = {
    ChannelType.WHATSAPP: "/webhooks/whatsapp",
    ChannelType.FACEBOOK: "/webhooks/messenger",
    ChannelType.LINE: "/webhooks/line",
    ChannelType.WECHAT: "/webhooks/wechat",
}


def webhook_url(public_url: str, channel: Channel) -> str | None:
    """The absolute URL to paste into the provider's dashboard, or None for a type without a native webhook."""
    path = WEBHOOK_PATHS.get(channel.type)
    if path is None:
        return None
    return f"{public_url.rstrip('/')}{path}/{channel.id}"
