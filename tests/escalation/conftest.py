"""Fixtures of the escalation tests: a migrated database (SQLite and PostgreSQL),
settings with short backoffs, the service, accounts, a real webhook receiver."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy.orm import Session

from assistant.auth import AuthService
from assistant.db import Conversation, Database, Message
from assistant.risk.base import RiskAssessment
from assistant.settings import Settings
from escalation import audit
from escalation.example_receiver import ReceiverStore, serve
from escalation.service import EscalationService

SECRET = "whsec_dGVzdC1zZWNyZXQtdGVzdC1zZWNyZXQtdGVzdC0xMjM0"
PASSWORD = "correct horse battery 42"

FAST = {
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.2,
    "worker_poll_seconds": 0.02,
    "lease_seconds": 2.0,
    "alert_after_attempts": 3,
    "max_attempts": 6,
}


def make_settings(tmp_path: Path, database_url: str, **escalation: Any) -> Settings:
    return Settings(
        mode="test",
        data_dir=tmp_path,
        database={"url": database_url},
        escalation={**FAST, **escalation},
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture()
def esc_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture()
def esc_db(esc_settings: Settings) -> Iterator[Database]:
    db = Database(esc_settings.database_url, esc_settings.database)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture()
def esc(esc_db: Database, esc_settings: Settings) -> EscalationService:
    return EscalationService(esc_db, esc_settings)


@pytest.fixture()
def auth(esc_db: Database, esc_settings: Settings) -> AuthService:
    return AuthService(esc_db, esc_settings, audit=audit.auth_hook)


def assessment(severity: int = 3, primary: str = "sexual_abuse", **scores: float) -> RiskAssessment:
    categories = {primary: 0.9, **scores}
    return RiskAssessment(severity, primary, categories, ["test_signal"], "test-model")


Disclose = Callable[..., tuple[str, str | None]]


@pytest.fixture()
def disclose(esc_db: Database, esc: EscalationService) -> Disclose:
    """Store a user message as ChatService would, calling the hook inside the same transaction."""

    def run(
        text: str,
        risk: RiskAssessment | None = None,
        conversation_id: str | None = None,
        audience: str = "child",
        channel: str = "web",
    ) -> tuple[str, str | None]:
        risk = risk or assessment()
        with esc_db.session() as s:
            conv = s.get(Conversation, conversation_id) if conversation_id else None
            if conv is None:
                conv = Conversation(channel=channel, audience=audience, risk_severity=0, risk_state={},
                                    needs_followup=False)
                s.add(conv)
                s.flush()
            conv.risk_severity = max(conv.risk_severity, risk.severity)  # as ChatService does before its hooks
            msg = Message(conversation_id=conv.id, role="user", channel=channel, audience=audience, text=text,
                          severity=risk.severity, categories=risk.categories)
            s.add(msg)
            s.add(Message(conversation_id=conv.id, role="assistant", channel=channel, audience=audience,
                          text="Cảm ơn em đã kể. Em hãy gọi 111."))
            s.flush()
            esc.on_turn(s, conv, msg, risk)
            report = esc._open_report(s, conv.id)
            return conv.id, report.id if report else None

    return run


@dataclasses.dataclass
class Accounts:
    auth: AuthService
    totp: dict[str, str] = dataclasses.field(default_factory=dict)

    def create(self, username: str, role: str, agencies: list[str] | None = None, wards: list[int] | None = None,
               totp: bool = False) -> str:
        account, secret = self.auth.create_account(username, role, PASSWORD, agencies, wards, totp=totp)
        if secret:
            self.totp[username] = secret
        return account.id

    def code(self, username: str) -> str:
        return pyotp.TOTP(self.totp[username]).now()


@pytest.fixture()
def accounts(auth: AuthService) -> Accounts:
    return Accounts(auth)


@pytest.fixture()
def receiver() -> Iterator[tuple[ReceiverStore, str]]:
    """A real HTTP receiver on 127.0.0.1 that verifies Standard Webhooks signatures."""
    store = ReceiverStore([SECRET])
    server = serve(store)
    yield store, f"http://127.0.0.1:{server.server_address[1]}/webhook"
    server.shutdown()
    server.server_close()


def webhook(url: str, secrets: list[str] | None = None) -> dict[str, Any]:
    return {"sink": "webhook", "url": url, "secrets": secrets or [SECRET], "timeout_seconds": 2}


def session_count(db: Database, stmt: Any) -> int:
    with db.session() as s:
        return int(s.scalar(stmt) or 0)


def in_session(db: Database, fn: Callable[[Session], Any]) -> Any:
    with db.session() as s:
        return fn(s)
