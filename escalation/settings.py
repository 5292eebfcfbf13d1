"""The ``escalation`` section of the settings (``ASSISTANT_ESCALATION__...``).

Endpoints are keyed by agency code from ``routing.yaml`` (``city_police``,
``hotline_111``, ``ward_focal_point``, ``school``) and by the two alert groups
``counselors`` and ``on_call``. An agency without an endpoint gets a file drop
under ``<data_dir>/outbox/<agency>/`` outside production; production refuses
to start without one (see ``EscalationService.check_config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

ESCALATION_DIR = Path(__file__).resolve().parent
DEFAULT_ROUTING_FILE = ESCALATION_DIR / "data" / "routing.yaml"

ALERT_GROUPS = ("counselors", "on_call")


class EndpointSettings(BaseModel):
    """Where one agency (or alert group) receives deliveries."""

    sink: Literal["webhook", "email", "file"] = "file"
    url: str | None = Field(default=None, description="Webhook URL (https in production).")
    secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Webhook signing secrets (``whsec_<base64>`` or raw); every one signs, for rotation.",
    )
    email_to: list[str] = Field(default_factory=list, description="Recipients of the e-mail notice.")
    directory: Path | None = Field(default=None, description="File-drop folder.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _complete(self) -> EndpointSettings:
        if self.sink == "webhook":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("a webhook endpoint needs an http(s) url")
            if not self.secrets:
                raise ValueError("a webhook endpoint needs at least one signing secret")
        if self.sink == "email" and not self.email_to:
            raise ValueError("an email endpoint needs email_to")
        return self


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    from_addr: str = "ban-an-toan@localhost"
    timeout_seconds: float = Field(default=10.0, gt=0)


class EscalationSettings(BaseModel):
    """Tip reports, routing, the outbox worker and its sinks."""

    routing_file: Path = DEFAULT_ROUTING_FILE
    endpoints: dict[str, EndpointSettings] = Field(default_factory=dict)
    smtp: SmtpSettings = SmtpSettings()
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base of the console links sent in e-mail notices and alerts.",
    )
    worker_in_serve: bool = Field(
        default=True,
        description="Run the delivery worker as a background thread of `serve` (one-command default).",
    )
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    batch_size: int = Field(default=10, ge=1, le=500)
    lease_seconds: float = Field(default=60.0, gt=0, description="A claimed row is re-claimable after this.")
    backoff_base_seconds: float = Field(default=5.0, gt=0)
    backoff_cap_seconds: float = Field(default=900.0, gt=0)
    alert_after_attempts: int = Field(
        default=5, ge=1, description="Failed attempts before counselors are alerted (report back to the queue)."
    )
    max_attempts: int = Field(default=30, ge=1, description="Then the row stops retrying until redelivered.")
    urgent_review_minutes: float = Field(default=15.0, gt=0)
    excerpt_chars: int = Field(default=500, ge=50, le=2000)
    context_messages: int = Field(default=20, ge=1, le=200, description="Messages shown around a report.")

    def endpoint(self, name: str) -> EndpointSettings | None:
        return self.endpoints.get(name)

    def production_problems(self) -> list[str]:
        problems = []
        for name, ep in self.endpoints.items():
            if ep.sink == "webhook":
                if ep.url and not ep.url.startswith("https://"):
                    problems.append(f"escalation.endpoints.{name}.url must use https in production")
                for secret in ep.secrets:
                    value = secret.get_secret_value()
                    if len(value) < 32:
                        problems.append(
                            f"escalation.endpoints.{name}.secrets must be random secrets of 32+ characters"
                        )
                        break
        return problems
