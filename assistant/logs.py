"""Structured JSON logs with a request id.

Message text is never logged at INFO or above; ``log_text`` adds it only at
DEBUG and never in production mode.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from assistant.settings import LoggingSettings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


CONTENT_FIELDS = frozenset(
    {"text", "message_text", "body", "payload", "reply", "excerpt", "narrative", "description", "note",
     "transcript", "platform_user_id", "totp_secret", "access_token", "refresh_token"}
)
"""Extra fields that would carry message text or secrets: dropped from every record in production."""


class ContentFilter(logging.Filter):
    """Production: drops content fields from ``extra`` and redacts personal data in the message.

    Defence in depth: the code never logs message text at INFO or above; this
    filter catches a mistake (a new ``extra={"text": ...}``, a phone number in an
    error message) before it reaches the log store.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from assistant.privacy.pii import redact

        for name in CONTENT_FIELDS & record.__dict__.keys():
            setattr(record, name, "[redacted]")
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(settings: LoggingSettings, production: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.json_format:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    handler.addFilter(RequestIdFilter())
    if production:
        handler.addFilter(ContentFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_assistant", False):
            root.removeHandler(old)
    handler._assistant = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.level)
    for noisy in ("httpx", "chromadb", "urllib3", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(settings.level)))
