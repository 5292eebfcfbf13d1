"""Errors of the service, mapped to HTTP status by one handler in ``app.py``.

    AssistantError
     ├── InputError            (422) bad user input, with a Vietnamese + English message
     │    └── MessageTooLong   (422)
     ├── NotFound              (404)
     └── NotReady              (503) a dependency (database, index) is not ready
"""

from __future__ import annotations


class AssistantError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message_vi: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_vi = message_vi
        self.message_en = message_en

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message_vi, "message_en": self.message_en}


class InputError(AssistantError):
    status_code = 422
    code = "invalid_input"


class MessageTooLong(InputError):
    code = "message_too_long"


class NotFound(AssistantError):
    status_code = 404
    code = "not_found"


class NotReady(AssistantError):
    status_code = 503
    code = "not_ready"
