"""Accounts, passwords, TOTP and server-side sessions."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from assistant.auth import (
    Account,
    AccountLocked,
    AuthService,
    AuthSession,
    CsrfFailed,
    InvalidCredentials,
    NotAuthenticated,
    WeakPassword,
    check_password,
    client_fingerprint,
    generate_password,
    password_problems,
)
from assistant.db import Database
from assistant.db.models import utcnow
from assistant.settings import Settings
from escalation import audit

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery 42"


@pytest.mark.unit
@pytest.mark.parametrize(
    "password",
    ["short1!", "password2024!", "Matkhau123456", "123456789012", "aaaaaaaaaaaaaaaa", "qwertyuiopas",
     "anhyeuem12345", "ababababababab", "P@ssw0rd!2026"],
)
def test_weak_passwords_are_refused(password: str) -> None:
    assert password_problems(password), password
    with pytest.raises(WeakPassword):
        check_password(password)


@pytest.mark.unit
def test_strong_passwords_pass_and_username_is_not_allowed_inside() -> None:
    assert password_problems(PASSWORD) == []
    assert password_problems("Đồng-Nai sông xanh 1975") == []
    assert "not containing the username" in password_problems("hello nguyenvana 2026", "nguyenvana")
    for _ in range(20):
        assert password_problems(generate_password()) == []


@pytest.mark.unit
def test_client_addresses_are_kept_only_as_keyed_hashes() -> None:
    a = client_fingerprint("key-1", "203.0.113.7")
    assert a and a.startswith("h:") and "203" not in a
    assert a == client_fingerprint("key-1", "203.0.113.7") != client_fingerprint("key-2", "203.0.113.7")
    assert client_fingerprint("key-1", None) is None


@pytest.fixture()
def service(tmp_path: Path, database_url: str) -> Iterator[AuthService]:
    settings = Settings(mode="test", data_dir=tmp_path, database={"url": database_url},
                        auth={"session_idle_minutes": 30, "session_absolute_hours": 12, "max_failed_logins": 3},
                        _env_file=None)  # type: ignore[call-arg]
    db = Database(settings.database_url, settings.database)
    db.upgrade()
    yield AuthService(db, settings, audit=audit.auth_hook)
    db.dispose()


@pytest.mark.integration
def test_passwords_are_stored_as_argon2id_hashes(service: AuthService) -> None:
    service.create_account("tvv1", "counselor", PASSWORD)
    with service.db.session() as s:
        account = s.scalar(sa.select(Account).where(Account.username == "tvv1"))
        assert account is not None
        assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
    with pytest.raises(ValueError, match="exists"):
        service.create_account("tvv1", "counselor", PASSWORD)
    with pytest.raises(ValueError, match="role"):
        service.create_account("tvv2", "root", PASSWORD)
    with pytest.raises(WeakPassword):
        service.create_account("tvv3", "counselor", "password1234")


@pytest.mark.integration
def test_session_ids_are_random_stored_hashed_and_time_out(service: AuthService) -> None:
    service.create_account("tvv1", "counselor", PASSWORD)
    one = service.login("tvv1", PASSWORD, None, "h:1")
    two = service.login("tvv1", PASSWORD, None, "h:1")
    assert one.token != two.token and len(one.token) >= 43  # 256 bits, url-safe
    with service.db.session() as s:
        stored = s.scalars(sa.select(AuthSession.id_hash)).all()
    assert one.token not in stored and len(stored) == 2
    assert service.resolve(one.token, None, "GET", None).username == "tvv1"
    with pytest.raises(CsrfFailed):
        service.resolve(one.token, None, "POST", None)
    assert service.resolve(one.token, one.csrf_token, "POST", None).role == "counselor"
    with pytest.raises(CsrfFailed):
        service.resolve(one.token, two.csrf_token, "POST", None)  # another session's token
    # Idle timeout.
    with service.db.session() as s:
        s.execute(sa.update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    with pytest.raises(NotAuthenticated, match="expired"):
        service.resolve(one.token, None, "GET", None)
    # Absolute timeout, even when active.
    three = service.login("tvv1", PASSWORD, None, None)
    with service.db.session() as s:
        s.execute(sa.update(AuthSession).where(AuthSession.ended_at.is_(None))
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(NotAuthenticated):
        service.resolve(three.token, None, "GET", None)


@pytest.mark.integration
def test_repeated_failures_lock_the_account_for_a_while(service: AuthService) -> None:
    service.create_account("tvv1", "counselor", PASSWORD)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            service.login("tvv1", "not the password 1", None, None)
    with pytest.raises(AccountLocked):
        service.login("tvv1", PASSWORD, None, None)
    with service.db.session() as s:
        failures = s.scalar(sa.select(sa.func.count()).select_from(audit.AuditEntry)
                            .where(audit.AuditEntry.action == "LoginFailed"))
    assert failures == 3


@pytest.mark.integration
def test_totp_enforced_when_required(service: AuthService) -> None:
    service.create_account("tvv1", "counselor", PASSWORD)
    _, secret = service.create_account("tvv2", "counselor", PASSWORD, totp=True)
    assert secret
    service.settings = service.settings.model_copy(update={"auth": service.settings.auth.model_copy(
        update={"require_totp": True})})
    with pytest.raises(InvalidCredentials):
        service.login("tvv1", PASSWORD, None, None)  # no TOTP set up: refused where TOTP is required
    assert service.login("tvv2", PASSWORD, pyotp.TOTP(secret).now(), None).principal.username == "tvv2"
    assert service.totp_uri("tvv2", secret).startswith("otpauth://totp/")


@pytest.mark.unit
def test_production_requires_totp_and_secure_cookies() -> None:
    settings = Settings(mode="production", security={"pseudonym_key": "k" * 40, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]}, _env_file=None)  # type: ignore[call-arg]
    assert settings.require_totp and settings.cookie_secure
    with pytest.raises(ValueError, match="require_totp"):
        Settings(mode="production", security={"pseudonym_key": "k" * 40, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]}, auth={"require_totp": False},
                 _env_file=None)  # type: ignore[call-arg]


def run_cli(args: list[str], data_dir: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "assistant", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120, check=False)


@pytest.mark.integration
def test_users_cli_create_list_disable(tmp_path: Path) -> None:
    r = run_cli(["users", "create", "--role", "counselor", "--username", "tvv.bienhoa", "--ward", "26068"],
                tmp_path, stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "created counselor tvv.bienhoa" in r.stdout and "password" not in r.stdout
    r = run_cli(["users", "create", "--role", "supervisor", "--username", "gs1", "--totp"], tmp_path)
    assert r.returncode == 0, r.stderr
    generated = next(line for line in r.stdout.splitlines() if line.startswith("password (shown once): "))
    assert not password_problems(generated.split(": ", 1)[1])
    assert "TOTP secret (shown once)" in r.stdout and "otpauth://" in r.stdout
    r = run_cli(["users", "create", "--role", "counselor", "--username", "weak"], tmp_path, stdin="password123\n")
    assert r.returncode == 2 and "too weak" in r.stderr
    r = run_cli(["users", "disable", "--username", "tvv.bienhoa"], tmp_path)
    assert r.returncode == 0
    listing = run_cli(["users", "list"], tmp_path).stdout
    assert "tvv.bienhoa\tcounselor\tdisabled" in listing and "gs1\tsupervisor\tactive\ttotp=yes" in listing
