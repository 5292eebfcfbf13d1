"""Errors of the escalation part, mapped to HTTP status by the app's one handler.

    EscalationError                       (500) base; a Vietnamese + English message
     ├── ReportNotFound                   (404)
     ├── Forbidden                        (403) role or object not allowed for this account
     ├── IllegalTransition                (409) the state machine refuses the move
     ├── StaleReport                      (409) edited by someone else since it was read
     ├── InvalidReportEdit                (422) a malformed edit (field-level problems attached)
     ├── RoutingConfigError               (500) routing.yaml is missing or invalid
     └── DeliveryError                          raised by a ``DeliverySink``
          ├── DeliveryRejected                  the receiver refused it for good (4xx): no retry
          └── DeliveryUnavailable               network error, timeout, 5xx, 408, 429: retry later
"""

from __future__ import annotations

from typing import Any

from assistant.errors import AssistantError


class EscalationError(AssistantError):
    status_code = 500
    code = "escalation_error"

    def __init__(self, message_vi: str, message_en: str | None = None) -> None:
        super().__init__(message_vi, message_en or message_vi)


class ReportNotFound(EscalationError):
    status_code = 404
    code = "report_not_found"


class Forbidden(EscalationError):
    status_code = 403
    code = "forbidden"


class IllegalTransition(EscalationError):
    status_code = 409
    code = "illegal_transition"


class StaleReport(EscalationError):
    status_code = 409
    code = "stale_report"


class InvalidReportEdit(EscalationError):
    status_code = 422
    code = "invalid_report_edit"

    def __init__(self, message_vi: str, message_en: str, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(message_vi, message_en)
        self.fields = fields or []

    def to_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {**super().to_dict(), "fields": self.fields}


class RoutingConfigError(EscalationError):
    code = "routing_config_error"


class DeliveryError(EscalationError):
    code = "delivery_error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message, message)
        self.status = status


class DeliveryRejected(DeliveryError):
    code = "delivery_rejected"


class DeliveryUnavailable(DeliveryError):
    code = "delivery_unavailable"
