"""Configuration, read once from the environment (see README's table)."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from domain.status import Thresholds
from domain.throttle import ThrottlePolicy
from domain.usecases.messaging import MessagingSettings
from domain.widget import WidgetLimits


class SettingsError(ValueError):
    """A setting the server can't run with; the message names it, on one line."""


def _float(name: str, default: float) -> float:
    """A positive, finite number: zero, negative or non-numeric durations and limits are mistakes."""
    raw = os.environ.get(name)
    if raw is None:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw.strip()[:40]!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name} must be greater than 0, got {raw.strip()[:40]!r}.")
    return value


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw.strip()[:40]!r}.") from None
    if value <= 0:
        raise SettingsError(f"{name} must be greater than 0, got {raw.strip()[:40]!r}.")
    return value


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in _TRUE


_TRUE = ("1", "true", "yes", "on")


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


@dataclass(frozen=True)
class Settings:
    mongodb_uri: str | None = None
    database: str = "imbrace"
    data_dir: Path = Path(".imbrace")
    jwt_secret: str | None = None
    # 32 bytes in base64 or base64url: the AES-GCM key of what is encrypted at rest
    # (``api/secrets.py``). None: generated once into ``data_dir``, outside production.
    secret_key: str | None = None
    jwt_ttl_s: int = 12 * 3600
    env: str = "development"
    thresholds: Thresholds = field(default_factory=Thresholds)
    messaging: MessagingSettings = field(default_factory=MessagingSettings)
    sweep_interval_s: float = 1.0
    event_retention_s: float = 86400
    legacy_ws: bool = False
    allowed_origins: tuple[str, ...] = ()
    max_subscriptions_per_connection: int = 50
    ws_keepalive_s: float = 15
    shared_execution: bool = True
    ws_compression: bool = False
    max_body_bytes: int = 1024 * 1024
    max_query_depth: int = 12
    max_query_tokens: int = 2000
    max_aliases: int = 30
    # The biggest real screen (50 conversations with their nested fields, and a chat pane of
    # messages(last: 100)) counts 500 nodes: twentyfold room. GitHub allows 500,000 with pages
    # nested four or five deep; ours nest two deep (conversations > messages), so 100 × 100
    # is already the most one path can ask for.
    max_query_nodes: int = 10_000
    request_timeout_s: float = 10
    # None: decided by ``env`` (see the properties below).
    introspection: bool | str | None = None
    graphiql: bool | None = None
    allow_batching: bool = False
    login_max_failures: int = 5
    login_window_s: float = 900
    login_max_failures_per_address: int = 20
    login_email_delay_after: int = 20
    login_email_max_delay_s: float = 60
    trusted_proxies: tuple[str, ...] = ()
    public_file_ttl_s: float = 7 * 86400
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "support@localhost"
    smtp_timeout_s: float = 10
    email_max_attempts: int = 8
    email_backoff_s: float = 2
    public_url: str = "http://localhost:8000"
    meta_graph_url: str = "https://graph.facebook.com/v21.0"
    line_api_url: str = "https://api.line.me"
    line_data_api_url: str = "https://api-data.line.me"
    wechat_api_url: str = "https://api.weixin.qq.com"
    provider_timeout_s: float = 10
    delivery_concurrency: int = 32
    delivery_max_attempts: int = 10
    delivery_backoff_s: float = 1
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    metrics: bool = True
    metrics_token: str | None = None
    widget_session_ttl_s: int = 86400
    widget_sessions_per_hour: int = 120
    widget_messages_per_minute: int = 20
    widget_messages_per_address_per_minute: int = 60
    # A geoip2fast data file with cities (its project publishes them); None: the country
    # database bundled with geoip2fast, IPv4 and IPv6.
    geoip_data_file: str | None = None
    # integrators' webhooks (api/webhooks/)
    webhook_disable_after_s: float = 5 * 86400
    webhook_allow_private: bool = False
    webhook_timeout_s: float = 10

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def login_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            window_s=self.login_window_s,
            max_per_pair=self.login_max_failures,
            max_per_address=self.login_max_failures_per_address,
            email_delay_after=self.login_email_delay_after,
            email_max_delay_s=self.login_email_max_delay_s,
        )

    @property
    def widget_limits(self) -> WidgetLimits:
        return WidgetLimits(
            sessions_per_address_per_hour=self.widget_sessions_per_hour,
            messages_per_visitor_per_minute=self.widget_messages_per_minute,
            messages_per_address_per_minute=self.widget_messages_per_address_per_minute,
        )

    def validate(self) -> Settings:
        """Refuses combinations that make no sense, naming the setting (see ``SettingsError``)."""
        t = self.thresholds
        if t.soon_after_s >= t.overdue_after_s:
            raise SettingsError(
                f"IMBRACE_SOON_AFTER_S ({t.soon_after_s:g}) must be less than "
                f"IMBRACE_OVERDUE_AFTER_S ({t.overdue_after_s:g})."
            )
        from api.secrets import configured_key  # it raises this module's SettingsError

        configured_key(self.secret_key, self.production)
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(
                    f"IMBRACE_TRUSTED_PROXIES: {proxy[:60]!r} is not an IP address or CIDR range."
                ) from None
        return self

    @property
    def introspection_policy(self) -> str:
        """Who may introspect the schema: "public", "authenticated" or "off".

        Production defaults to "authenticated": the team's own tools keep working with a
        token, while an anonymous caller can't map the whole API.
        """
        value = self.introspection
        if value is None:
            return "authenticated" if self.production else "public"
        if isinstance(value, str):
            value = value.strip().lower()
            if value == "authenticated":
                return "authenticated"
            return "public" if value in _TRUE else "off"
        return "public" if value else "off"

    @property
    def hide_suggestions(self) -> bool:
        """Whether to leave "Did you mean …" out of errors: it reveals the schema piece by
        piece, so it goes wherever an anonymous caller can't read the schema by introspection."""
        return self.production or self.introspection_policy != "public"

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.production) if self.graphiql is None else self.graphiql

    @classmethod
    def from_env(cls) -> Settings:
        thresholds = Thresholds(
            soon_after_s=_float("IMBRACE_SOON_AFTER_S", 180),
            overdue_after_s=_float("IMBRACE_OVERDUE_AFTER_S", 300),
            auto_close_after_s=_float("IMBRACE_AUTO_CLOSE_AFTER_S", 86400),
            presence_timeout_s=_float("IMBRACE_PRESENCE_TIMEOUT_S", 60),
        )
        messaging = MessagingSettings(
            max_upload_bytes=_int("IMBRACE_MAX_UPLOAD_BYTES", 25 * 1024 * 1024),
            conference_base_url=os.environ.get("IMBRACE_CONFERENCE_BASE_URL", "https://meet.jit.si/"),
            whatsapp_window_s=_float("IMBRACE_WHATSAPP_WINDOW_S", 86400),
        )
        settings = cls(
            mongodb_uri=os.environ.get("MONGODB_URI") or None,
            database=os.environ.get("IMBRACE_DATABASE", "imbrace"),
            data_dir=Path(os.environ.get("IMBRACE_DATA_DIR", ".imbrace")),
            jwt_secret=os.environ.get("IMBRACE_JWT_SECRET") or None,
            secret_key=os.environ.get("IMBRACE_SECRET_KEY") or None,
            jwt_ttl_s=_int("IMBRACE_JWT_TTL_S", 12 * 3600),
            env=os.environ.get("IMBRACE_ENV", "development"),
            thresholds=thresholds,
            messaging=messaging,
            sweep_interval_s=_float("IMBRACE_SWEEP_INTERVAL_S", 1.0),
            event_retention_s=_float("IMBRACE_EVENT_RETENTION_S", 86400),
            legacy_ws=_bool("IMBRACE_LEGACY_WS", False),
            allowed_origins=_list("IMBRACE_ALLOWED_ORIGINS"),
            max_subscriptions_per_connection=_int("IMBRACE_MAX_SUBSCRIPTIONS_PER_CONNECTION", 50),
            ws_keepalive_s=_float("IMBRACE_WS_KEEPALIVE_S", 15),
            shared_execution=_bool("IMBRACE_SHARED_EXECUTION", True),
            ws_compression=_bool("IMBRACE_WS_COMPRESSION", False),
            max_body_bytes=_int("IMBRACE_MAX_BODY_BYTES", 1024 * 1024),
            max_query_depth=_int("IMBRACE_MAX_QUERY_DEPTH", 12),
            max_query_tokens=_int("IMBRACE_MAX_QUERY_TOKENS", 2000),
            max_aliases=_int("IMBRACE_MAX_ALIASES", 30),
            max_query_nodes=_int("IMBRACE_MAX_QUERY_NODES", 10_000),
            request_timeout_s=_float("IMBRACE_REQUEST_TIMEOUT_S", 10),
            introspection=os.environ.get("IMBRACE_INTROSPECTION") or None,
            graphiql=_bool("IMBRACE_GRAPHIQL", False) if os.environ.get("IMBRACE_GRAPHIQL") else None,
            allow_batching=_bool("IMBRACE_ALLOW_BATCHING", False),
            login_max_failures=_int("IMBRACE_LOGIN_MAX_FAILURES", 5),
            login_window_s=_float("IMBRACE_LOGIN_WINDOW_S", 900),
            login_max_failures_per_address=_int("IMBRACE_LOGIN_MAX_FAILURES_PER_ADDRESS", 20),
            login_email_delay_after=_int("IMBRACE_LOGIN_EMAIL_DELAY_AFTER", 20),
            login_email_max_delay_s=_float("IMBRACE_LOGIN_EMAIL_MAX_DELAY_S", 60),
            trusted_proxies=_list("IMBRACE_TRUSTED_PROXIES"),
            public_file_ttl_s=_float("IMBRACE_PUBLIC_FILE_TTL_S", 7 * 86400),
            smtp_host=os.environ.get("IMBRACE_SMTP_HOST", "localhost"),
            smtp_port=_int("IMBRACE_SMTP_PORT", 25),
            smtp_username=os.environ.get("IMBRACE_SMTP_USERNAME") or None,
            smtp_password=os.environ.get("IMBRACE_SMTP_PASSWORD") or None,
            smtp_starttls=_bool("IMBRACE_SMTP_STARTTLS", False),
            smtp_from=os.environ.get("IMBRACE_SMTP_FROM", "support@localhost"),
            smtp_timeout_s=_float("IMBRACE_SMTP_TIMEOUT_S", 10),
            email_max_attempts=_int("IMBRACE_EMAIL_MAX_ATTEMPTS", 8),
            email_backoff_s=_float("IMBRACE_EMAIL_BACKOFF_S", 2),
            public_url=os.environ.get("IMBRACE_PUBLIC_URL", "http://localhost:8000"),
            meta_graph_url=os.environ.get("IMBRACE_META_GRAPH_URL", "https://graph.facebook.com/v21.0").rstrip("/"),
            line_api_url=os.environ.get("IMBRACE_LINE_API_URL", "https://api.line.me").rstrip("/"),
            line_data_api_url=os.environ.get("IMBRACE_LINE_DATA_API_URL", "https://api-data.line.me").rstrip("/"),
            wechat_api_url=os.environ.get("IMBRACE_WECHAT_API_URL", "https://api.weixin.qq.com").rstrip("/"),
            provider_timeout_s=_float("IMBRACE_PROVIDER_TIMEOUT_S", 10),
            delivery_concurrency=_int("IMBRACE_DELIVERY_CONCURRENCY", 32),
            delivery_max_attempts=_int("IMBRACE_DELIVERY_MAX_ATTEMPTS", 10),
            delivery_backoff_s=_float("IMBRACE_DELIVERY_BACKOFF_S", 1),
            argon2_time_cost=_int("IMBRACE_ARGON2_TIME_COST", 3),
            argon2_memory_kib=_int("IMBRACE_ARGON2_MEMORY_KIB", 65536),
            metrics=_bool("IMBRACE_METRICS", True),
            metrics_token=os.environ.get("IMBRACE_METRICS_TOKEN") or None,
            widget_session_ttl_s=_int("IMBRACE_WIDGET_SESSION_TTL_S", 86400),
            widget_sessions_per_hour=_int("IMBRACE_WIDGET_SESSIONS_PER_HOUR", 120),
            widget_messages_per_minute=_int("IMBRACE_WIDGET_MESSAGES_PER_MINUTE", 20),
            widget_messages_per_address_per_minute=_int("IMBRACE_WIDGET_MESSAGES_PER_ADDRESS_PER_MINUTE", 60),
            geoip_data_file=os.environ.get("IMBRACE_GEOIP_DATA_FILE") or None,
            webhook_disable_after_s=_float("IMBRACE_WEBHOOK_DISABLE_AFTER_S", 5 * 86400),
            webhook_allow_private=_bool("IMBRACE_WEBHOOK_ALLOW_PRIVATE", False),
            webhook_timeout_s=_float("IMBRACE_WEBHOOK_TIMEOUT_S", 10),
        )
        return settings.validate()
