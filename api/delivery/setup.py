"""The delivery worker as a serving process runs it: its transports and the HTTP client they share."""

from __future__ import annotations

from typing import Any

import httpx

from api.channels.custom import CustomTransport
from api.channels.email import EmailTransport
from api.channels.http import quiet_http_logs
from api.channels.line import LineTransport
from api.channels.messenger import MessengerTransport
from api.channels.wechat import WeChatTokens, WeChatTransport
from api.channels.whatsapp import WhatsAppTransport
from api.channels.widget import WidgetTransport
from api.delivery.channel import ChannelTransport
from api.delivery.worker import DeliveryWorker
from domain.delivery import RetryPolicy
from domain.enums import ChannelType, DeliveryVia


def provider_client(timeout_s: float) -> httpx.AsyncClient:
    """One pooled client for every provider call; redirects are never followed (a provider's
    answer can't send our token, or our server, elsewhere)."""
    quiet_http_logs()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        follow_redirects=False,
    )


def wechat_tokens(services: Any, http: httpx.AsyncClient) -> WeChatTokens:
    """WeChat access tokens shared through the database by every instance, sealed like credentials."""
    return WeChatTokens(
        http,
        services.settings.wechat_api_url,
        services.store.provider_tokens,
        services.credentials.box,
        services.clock,
        lease_s=2 * services.settings.provider_timeout_s + 5,
    )


def build_worker(services: Any, http: httpx.AsyncClient, **options: Any) -> DeliveryWorker:
    settings = services.settings
    providers: dict[Any, Any] = {
        ChannelType.WHATSAPP: WhatsAppTransport(http, settings.meta_graph_url),
        ChannelType.FACEBOOK: MessengerTransport(http, settings.meta_graph_url),
        ChannelType.LINE: LineTransport(http, settings.line_api_url, settings.line_data_api_url),
        ChannelType.WECHAT: WeChatTransport(
            http, settings.wechat_api_url, wechat_tokens(services, http), services.files
        ),
        ChannelType.WEB_WIDGET: WidgetTransport(),
    }
    policy = RetryPolicy(max_attempts=settings.delivery_max_attempts, base_s=settings.delivery_backoff_s)
    transports: dict[DeliveryVia, Any] = {
        DeliveryVia.EMAIL: EmailTransport(services),
        DeliveryVia.CHANNEL: ChannelTransport(
            services,
            providers,
            policy,
            CustomTransport(settings.webhook_allow_private, settings.webhook_timeout_s),
        ),
    }
    return DeliveryWorker(services, transports, file_sources=providers, **options)
