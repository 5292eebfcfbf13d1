"""Encryption at rest: Fernet (AES-128-CBC + HMAC-SHA256) column types for SQLAlchemy.

``EncryptedText`` and ``EncryptedJSON`` store a Fernet token (text) in place of
the value. The keys come from ``security.data_keys`` (``ASSISTANT_SECURITY__DATA_KEYS``,
a JSON list or comma-separated): the FIRST key encrypts, every key decrypts, so
a new key is put first, ``python -m assistant keys rotate`` re-encrypts every row
with it, and the old key is then removed.

The keyring belongs to the engine (it rides on ``engine.dialect``), not to a
global: two instances with different keys in one process never mix. An engine
built without a keyring uses the DEVELOPMENT key, derived from a public string,
that protects nothing; the settings refuse to start in production without real
keys.

Errors::

    AssistantError > CryptoError > DecryptionFailed
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from assistant.errors import AssistantError

DEV_KEY_SEED = b"DEVELOPMENT ONLY - child-safety assistant data key - protects nothing"
DEV_DATA_KEY = base64.urlsafe_b64encode(hashlib.sha256(DEV_KEY_SEED).digest()).decode()
"""The clearly-marked development/test key (public: never use it in production)."""

_ATTR = "_assistant_keyring"


class CryptoError(AssistantError):
    status_code = 500
    code = "crypto_error"


class DecryptionFailed(CryptoError):
    """A stored value could not be decrypted with any configured key."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def valid_key(key: str) -> bool:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return False
    return True


def key_id(key: str) -> str:
    """A short, non-secret fingerprint of a key (for logs and the CLI)."""
    return hashlib.sha256(b"key-id:" + key.encode()).hexdigest()[:8]


class Keyring:
    """The data keys of one instance: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.keys = list(keys)
        self._fernet = MultiFernet([Fernet(k.encode()) for k in self.keys])
        self.dev = self.keys == [DEV_DATA_KEY]

    @classmethod
    def development(cls) -> Keyring:
        return cls([DEV_DATA_KEY])

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise DecryptionFailed(
                "Không giải mã được dữ liệu.",
                "stored value cannot be decrypted with any key in security.data_keys "
                "(ASSISTANT_SECURITY__DATA_KEYS): a key is missing or the value is not encrypted",
            ) from exc

    def rotate(self, token: str) -> str:
        """The same value encrypted with the first key (no-op in meaning)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise DecryptionFailed(
                "Không giải mã được dữ liệu.", "value cannot be decrypted with any configured key"
            ) from exc

    def is_primary(self, token: str) -> bool:
        """Whether ``token`` is already encrypted with the first key."""
        try:
            Fernet(self.keys[0].encode()).decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True


def attach_keyring(engine: Engine, keyring: Keyring) -> None:
    setattr(engine.dialect, _ATTR, keyring)


def keyring_of(dialect: Dialect) -> Keyring:
    keyring: Keyring | None = getattr(dialect, _ATTR, None)
    if keyring is None:
        keyring = Keyring.development()
        setattr(dialect, _ATTR, keyring)
    return keyring


class _Declared(UserDefinedType[str]):
    """A column type rendered as ``spec``, without value processing (SQLite only)."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **_kw: Any) -> str:
        return self.spec


class _Encrypted:
    """SQLite keeps the declared type a column had before migration 0004 (SQLite does
    not constrain text by declared type, and rebuilding a table there would cascade
    deletes); every other database stores TEXT."""

    def __init__(self, sqlite_declared: str | None = None) -> None:
        super().__init__()
        self.sqlite_declared = sqlite_declared

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite" and self.sqlite_declared:
            return dialect.type_descriptor(_Declared(self.sqlite_declared))
        return Text()


class EncryptedText(_Encrypted, TypeDecorator[str]):
    """A text column stored as a Fernet token. Not searchable: compare only to NULL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).decrypt(value)


class EncryptedJSON(_Encrypted, TypeDecorator[Any]):
    """A JSON document stored as a Fernet token of its UTF-8 serialisation."""

    impl = Text
    cache_ok = True

    def __init__(self, sqlite_declared: str | None = "JSON") -> None:
        super().__init__(sqlite_declared)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(keyring_of(dialect).decrypt(value))


# Every encrypted column: (table, primary key columns, column). The migration,
# the rotation command and the tests read this one list.
ENCRYPTED_COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("message", ("id",), "text"),
    ("tip_report", ("id",), "content"),
    ("tip_report", ("id",), "decision"),
    ("report_note", ("id",), "text"),
    ("outbox", ("id",), "payload"),
    ("account", ("id",), "totp_secret"),
    ("channel_user", ("id",), "platform_user_id"),
    ("channel_event", ("id",), "text"),
    ("channel_event", ("id",), "payload"),
    ("channel_credential", ("channel",), "access_token"),
    ("channel_credential", ("channel",), "refresh_token"),
)
