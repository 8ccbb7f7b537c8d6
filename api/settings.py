"""Configuration, read once from the environment (see README's table)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from domain.status import Thresholds
from domain.usecases.messaging import MessagingSettings


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


@dataclass(frozen=True)
class Settings:
    mongodb_uri: str | None = None
    database: str = "imbrace"
    data_dir: Path = Path(".imbrace")
    jwt_secret: str | None = None
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
    introspection: bool = True
    allow_batching: bool = False
    login_max_failures: int = 5
    login_window_s: float = 900
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
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    metrics: bool = True
    metrics_token: str | None = None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls) -> "Settings":
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
        return cls(
            mongodb_uri=os.environ.get("MONGODB_URI") or None,
            database=os.environ.get("IMBRACE_DATABASE", "imbrace"),
            data_dir=Path(os.environ.get("IMBRACE_DATA_DIR", ".imbrace")),
            jwt_secret=os.environ.get("IMBRACE_JWT_SECRET") or None,
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
            introspection=_bool("IMBRACE_INTROSPECTION", True),
            allow_batching=_bool("IMBRACE_ALLOW_BATCHING", False),
            login_max_failures=_int("IMBRACE_LOGIN_MAX_FAILURES", 5),
            login_window_s=_float("IMBRACE_LOGIN_WINDOW_S", 900),
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
            argon2_time_cost=_int("IMBRACE_ARGON2_TIME_COST", 3),
            argon2_memory_kib=_int("IMBRACE_ARGON2_MEMORY_KIB", 65536),
            metrics=_bool("IMBRACE_METRICS", True),
            metrics_token=os.environ.get("IMBRACE_METRICS_TOKEN") or None,
        )
