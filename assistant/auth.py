"""Accounts of the people who review reports, their passwords, TOTP and sessions.

Roles: ``counselor`` (reports of their assigned agencies/wards), ``supervisor``
(every report, statistics), ``admin`` (accounts, statistics; not report
content), ``auditor`` (the audit log, statistics). Passwords are hashed with
Argon2id (argon2-cffi), at least 12 characters and not a common password.
TOTP (pyotp) is required when an account has it, and for every login in
production mode.

Sessions are server-side: a random 256-bit id travels in an HttpOnly,
SameSite=Strict cookie (Secure and ``__Host-`` prefixed in production) and
only its SHA-256 is stored; sessions end after an idle and an absolute
timeout, at logout, and when the account is disabled. Every state-changing
request made with the cookie must carry the session's CSRF token in the
``X-CSRF-Token`` header (returned at login and set in a readable cookie).

IP addresses are never stored: ``client_fingerprint`` keeps a keyed hash.

    AuthError                    (401)
     ├── InvalidCredentials      (401) wrong username, password or TOTP code (one message for all)
     ├── AccountLocked           (429) too many failed logins; try again later
     ├── NotAuthenticated        (401) no session, or an expired one
     ├── CsrfFailed              (403) state-changing request without the session's CSRF token
     ├── AccessDenied            (403) the role may not do this
     └── WeakPassword            (422) the password policy refuses the password
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from ulid import ULID

from assistant.crypto import EncryptedText
from assistant.db.models import Base, utcnow
from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.db import Database
    from assistant.settings import Settings

ROLES: tuple[str, ...] = ("counselor", "supervisor", "admin", "auditor")
Role = Literal["counselor", "supervisor", "admin", "auditor"]

PERMISSIONS: dict[str, frozenset[str]] = {
    "counselor": frozenset({"reports:read", "reports:act"}),
    "supervisor": frozenset({"reports:read", "reports:act", "reports:all", "stats:read"}),
    "admin": frozenset({"accounts:manage", "stats:read"}),
    "auditor": frozenset({"audit:read", "stats:read"}),
}

COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "common_passwords.txt"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# -- errors -------------------------------------------------------------------------
class AuthError(AssistantError):
    status_code = 401
    code = "not_authenticated"


class InvalidCredentials(AuthError):
    code = "invalid_credentials"


class AccountLocked(AuthError):
    status_code = 429
    code = "account_locked"


class NotAuthenticated(AuthError):
    code = "not_authenticated"


class CsrfFailed(AuthError):
    status_code = 403
    code = "csrf_failed"


class AccessDenied(AuthError):
    status_code = 403
    code = "forbidden"


class WeakPassword(AuthError):
    status_code = 422
    code = "weak_password"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; every stored datetime is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def client_fingerprint(key: str, address: str | None) -> str | None:
    """A keyed hash of a client address (never the address): ``h:`` + 24 hex chars.

    The same address maps to the same value under the same key, so an auditor
    can tell requests from one place apart, or check a suspected address with
    the key; without the key the address cannot be recovered.
    """
    if not address:
        return None
    digest = hmac.new(key.encode(), f"client:{address}".encode(), hashlib.sha256).hexdigest()
    return "h:" + digest[:24]


# -- models -------------------------------------------------------------------------
class Account(Base):
    __tablename__ = "account"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=lambda: str(ULID()))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    agencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    wards: Mapped[list[int]] = mapped_column(JSON, default=list)
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText("VARCHAR(64)"))  # encrypted at rest
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthSession(Base):
    __tablename__ = "auth_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    csrf_hash: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- password policy ------------------------------------------------------------------
@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm", "1qaz2wsx3edc4rfv")


def password_problems(password: str, username: str = "", min_length: int = 12) -> list[str]:
    """Why a password is refused (empty when it is acceptable)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    if len(password) > 256:
        problems.append("at most 256 characters")
    lowered = password.lower()
    core = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", lowered)
    squashed = re.sub(r"[\s\W_]+", "", lowered)
    common = common_passwords()
    if lowered in common or core in common or squashed in common or (core and core * 2 == lowered):
        problems.append("not a common password")
    if len(set(password)) < 5:
        problems.append("more different characters")
    if any(lowered in seq * 2 or lowered in seq[::-1] * 2 for seq in _SEQUENCES):
        problems.append("not a keyboard or number sequence")
    if username and len(username) >= 4 and username.lower() in lowered:
        problems.append("not containing the username")
    return problems


def check_password(password: str, username: str = "", min_length: int = 12) -> None:
    problems = password_problems(password, username, min_length)
    if problems:
        raise WeakPassword(
            "Mật khẩu chưa đủ mạnh: cần " + ", ".join(problems) + ".",
            "The password is too weak: it needs " + ", ".join(problems) + ".",
        )


def generate_password() -> str:
    """A random password that passes the policy (about 120 bits)."""
    while True:
        candidate = secrets.token_urlsafe(18)
        if not password_problems(candidate):
            return candidate


# -- principal -------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who is making a request (resolved from the session)."""

    account_id: str
    username: str
    role: str
    agencies: tuple[str, ...] = ()
    wards: tuple[int, ...] = ()
    session_hash: str = ""
    client: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise AccessDenied(
                "Tài khoản của bạn không có quyền thực hiện việc này.",
                f"The role {self.role!r} may not do this ({permission}).",
            )


@dataclass(frozen=True)
class LoginResult:
    token: str
    csrf_token: str
    principal: Principal
    expires_at: datetime


AuditHook = Callable[[Session, str, str | None, str | None, str | None, str | None, dict[str, Any]], None]
"""(session, action, actor_id, actor, role, client, details): writes an audit entry."""


class AuthService:
    """Accounts, logins and sessions (one per instance, on ``services.auth``)."""

    def __init__(self, db: Database, settings: Settings, audit: AuditHook | None = None) -> None:
        self.db = db
        self.settings = settings
        self.auth = settings.auth
        self.hasher = PasswordHasher()
        self._audit = audit
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    # -- accounts --
    def create_account(
        self,
        username: str,
        role: str,
        password: str,
        agencies: list[str] | None = None,
        wards: list[int] | None = None,
        totp: bool = False,
    ) -> tuple[Account, str | None]:
        """Create an account; returns it and the TOTP secret when ``totp`` (shown once)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{2,63}", username):
            raise ValueError("username: 3-64 characters of a-z, 0-9, '.', '_', '-' (lower case)")
        check_password(password, username, self.auth.min_password_length)
        secret = pyotp.random_base32() if totp else None
        account = Account(
            id=str(ULID()),
            username=username,
            password_hash=self.hasher.hash(password),
            role=role,
            agencies=list(agencies or []),
            wards=[int(w) for w in wards or []],
            totp_secret=secret,
            disabled=False,
            failed_logins=0,
        )
        with self.db.session() as session:
            if session.scalar(select(Account.id).where(Account.username == username)) is not None:
                raise ValueError(f"an account named {username!r} exists already")
            session.add(account)
            self._record(session, "AccountCreated", None, "system", None, None, {"username": username, "role": role})
        return account, secret

    def list_accounts(self) -> list[Account]:
        with self.db.session() as session:
            return list(session.scalars(select(Account).order_by(Account.username)))

    def get_account(self, session: Session, username: str) -> Account | None:
        return session.scalar(select(Account).where(Account.username == username))

    def set_disabled(self, username: str, disabled: bool = True) -> None:
        """Disable (or enable) an account; disabling ends its sessions at once."""
        with self.db.session() as session:
            account = self.get_account(session, username)
            if account is None:
                raise ValueError(f"no account named {username!r}")
            account.disabled = disabled
            if disabled:
                session.execute(
                    update(AuthSession)
                    .where(AuthSession.account_id == account.id, AuthSession.ended_at.is_(None))
                    .values(ended_at=_now())
                )
            action = "AccountDisabled" if disabled else "AccountEnabled"
            self._record(session, action, None, "system", None, None, {"username": username})

    def reset_totp(self, username: str) -> str:
        secret = pyotp.random_base32()
        with self.db.session() as session:
            account = self.get_account(session, username)
            if account is None:
                raise ValueError(f"no account named {username!r}")
            account.totp_secret = secret
            account.totp_last_step = None
            self._record(session, "AccountTotpReset", None, "system", None, None, {"username": username})
        return secret

    def totp_uri(self, username: str, secret: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="Ban An Toan Dong Nai")

    # -- login --
    def _fail(self) -> InvalidCredentials:
        return InvalidCredentials(
            "Tên đăng nhập, mật khẩu hoặc mã xác thực không đúng.",
            "Wrong username, password or TOTP code.",
        )

    def _check_totp(self, account: Account, code: str | None) -> bool:
        if account.totp_secret is None:
            return not self.settings.require_totp
        if not code or not re.fullmatch(r"\d{6}", code):
            return False
        totp = pyotp.TOTP(account.totp_secret)
        now = _now()
        for offset in (0, -1, 1):
            at = now + timedelta(seconds=30 * offset)
            step = totp.timecode(at)
            if hmac.compare_digest(totp.at(at), code):
                if account.totp_last_step is not None and step <= account.totp_last_step:
                    return False  # a code is good once: no replay
                account.totp_last_step = step
                return True
        return False

    def verify_credentials(self, session: Session, account: Account, password: str, totp: str | None) -> bool:
        try:
            self.hasher.verify(account.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        if not self._check_totp(account, totp):
            return False
        if self.hasher.check_needs_rehash(account.password_hash):
            account.password_hash = self.hasher.hash(password)
        session.flush()
        return True

    def login(self, username: str, password: str, totp: str | None, client: str | None) -> LoginResult:
        now = _now()
        with self.db.session() as session:
            account = self.get_account(session, username.strip().lower())
            if account is None or account.disabled:
                # Same work as a real check, so timing does not tell which usernames exist.
                with contextlib.suppress(VerificationError):
                    self.hasher.verify(self._dummy_hash, password)
                self._record(session, "LoginFailed", None, username[:64], None, client, {"reason": "unknown"})
                raise self._fail()
            if account.locked_until is not None and _aware(account.locked_until) > now:
                self._record(session, "LoginRefused", account.id, account.username, account.role, client, {})
                raise AccountLocked(
                    "Tài khoản tạm khoá vì đăng nhập sai nhiều lần. Hãy thử lại sau.",
                    "Too many failed logins; the account is locked for a while.",
                )
            if not self.verify_credentials(session, account, password, totp):
                account.failed_logins += 1
                if account.failed_logins >= self.auth.max_failed_logins:
                    account.locked_until = now + timedelta(minutes=self.auth.lockout_minutes)
                    account.failed_logins = 0
                self._record(session, "LoginFailed", account.id, account.username, account.role, client, {})
                # Commit the counter, then refuse.
                session.commit()
                raise self._fail()
            account.failed_logins = 0
            account.locked_until = None
            account.last_login_at = now
            token = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(32)
            expires = now + timedelta(hours=self.auth.session_absolute_hours)
            session.add(
                AuthSession(
                    id_hash=_sha256(token),
                    account_id=account.id,
                    csrf_hash=_sha256(csrf),
                    client=client,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                )
            )
            self._record(session, "LoginSucceeded", account.id, account.username, account.role, client, {})
            principal = self._principal(account, _sha256(token), client)
        return LoginResult(token, csrf, principal, expires)

    def _principal(self, account: Account, session_hash: str, client: str | None) -> Principal:
        return Principal(
            account_id=account.id,
            username=account.username,
            role=account.role,
            agencies=tuple(account.agencies or ()),
            wards=tuple(int(w) for w in account.wards or ()),
            session_hash=session_hash,
            client=client,
            permissions=PERMISSIONS.get(account.role, frozenset()),
        )

    def resolve(self, token: str | None, csrf: str | None, method: str, client: str | None) -> Principal:
        """The principal of a session token; checks timeouts and (for unsafe methods) the CSRF token."""
        if not token or len(token) > 128:
            raise NotAuthenticated("Bạn cần đăng nhập.", "Log in first.")
        now = _now()
        with self.db.session() as session:
            row = session.get(AuthSession, _sha256(token))
            if row is None or row.ended_at is not None:
                raise NotAuthenticated("Bạn cần đăng nhập.", "Log in first.")
            idle = timedelta(minutes=self.auth.session_idle_minutes)
            if _aware(row.expires_at) <= now or _aware(row.last_seen_at) + idle <= now:
                row.ended_at = now
                session.commit()
                raise NotAuthenticated(
                    "Phiên làm việc đã hết hạn. Hãy đăng nhập lại.", "The session has expired; log in again."
                )
            account = session.get(Account, row.account_id)
            if account is None or account.disabled:
                row.ended_at = now
                session.commit()
                raise NotAuthenticated("Bạn cần đăng nhập.", "Log in first.")
            if method.upper() not in SAFE_METHODS and (
                not csrf or not hmac.compare_digest(_sha256(csrf), row.csrf_hash)
            ):
                raise CsrfFailed(
                    "Yêu cầu thiếu mã chống giả mạo (CSRF). Hãy tải lại trang.",
                    "Missing or wrong X-CSRF-Token header for this session.",
                )
            if now - _aware(row.last_seen_at) > timedelta(seconds=30):
                row.last_seen_at = now
            return self._principal(account, row.id_hash, client)

    def logout(self, principal: Principal) -> None:
        with self.db.session() as session:
            row = session.get(AuthSession, principal.session_hash)
            if row is not None and row.ended_at is None:
                row.ended_at = _now()
            self._record(
                session, "LoggedOut", principal.account_id, principal.username, principal.role, principal.client, {}
            )

    def reauthenticate(self, principal: Principal, password: str, totp: str | None) -> None:
        """Check the password (and TOTP) again before a sensitive action such as an export."""
        with self.db.session() as session:
            account = session.get(Account, principal.account_id)
            if account is None or not self.verify_credentials(session, account, password, totp):
                raise InvalidCredentials(
                    "Mật khẩu hoặc mã xác thực không đúng.", "Re-authentication failed: wrong password or code."
                )

    def _record(
        self,
        session: Session,
        action: str,
        actor_id: str | None,
        actor: str | None,
        role: str | None,
        client: str | None,
        details: dict[str, Any],
    ) -> None:
        if self._audit is not None:
            self._audit(session, action, actor_id, actor, role, client, details)


# -- HTTP --------------------------------------------------------------------------------
class LoginThrottle:
    """Failed logins per client, in memory only (never stored), in a sliding window.

    The key is ``client_fingerprint`` (a keyed hash of the address), so no
    address is held even in memory. Per-account locking is ``AuthService``'s;
    this stops one client from trying many accounts.
    """

    def __init__(self, limit: int = 20, window_seconds: float = 900.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def check(self, client: str | None) -> None:
        with self._lock:
            if len(self._recent(client or "-", self._clock())) >= self.limit:
                raise AccountLocked(
                    "Có quá nhiều lần đăng nhập sai từ nơi này. Hãy thử lại sau.",
                    "Too many failed logins from this client; try again later.",
                )

    def failed(self, client: str | None) -> None:
        with self._lock:
            now = self._clock()
            if len(self._failures) > 100_000:  # bounded memory under a flood
                self._failures.clear()
            self._recent(client or "-", now)
            self._failures.setdefault(client or "-", []).append(now)


def login_throttle(request: Request) -> LoginThrottle:
    """The app's per-client throttle (created on first use)."""
    throttle: LoginThrottle | None = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        auth = request.app.state.services.settings.auth
        throttle = LoginThrottle(auth.max_failed_logins_per_client, auth.lockout_minutes * 60)
        request.app.state.login_throttle = throttle
    return throttle


def _auth_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.services.auth
    return service


def cookie_name(secure: bool) -> str:
    return "__Host-assistant_session" if secure else "assistant_session"


def csrf_cookie_name(secure: bool) -> str:
    return "__Host-assistant_csrf" if secure else "assistant_csrf"


def request_client(request: Request) -> str | None:
    key = request.app.state.services.settings.security.pseudonym_key.get_secret_value()
    host = request.client.host if request.client else None
    return client_fingerprint(key, host)


def current_principal(request: Request) -> Principal:
    service = _auth_service(request)
    token = request.cookies.get(cookie_name(service.settings.cookie_secure))
    return service.resolve(
        token, request.headers.get(CSRF_HEADER), request.method, request_client(request)
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def requires(permission: str) -> Callable[[Principal], Principal]:
    """A dependency: the current principal, who must hold ``permission``."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(permission)
        return principal

    return dependency


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp: str | None = Field(default=None, max_length=10, description="6-digit TOTP code when the account has one.")


class AccountOut(BaseModel):
    id: str
    username: str
    role: str
    agencies: list[str]
    wards: list[int]


class LoginResponse(BaseModel):
    account: AccountOut
    csrf_token: str = Field(description="Send it back as the X-CSRF-Token header on every POST/PATCH.")
    expires_at: datetime


def _account_out(p: Principal) -> AccountOut:
    return AccountOut(id=p.account_id, username=p.username, role=p.role, agencies=list(p.agencies), wards=list(p.wards))


router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, response: Response) -> LoginResponse:
    service = _auth_service(request)
    client = request_client(request)
    throttle = login_throttle(request)
    throttle.check(client)
    try:
        result = service.login(body.username, body.password, body.totp, client)
    except InvalidCredentials:
        throttle.failed(client)
        raise
    secure = service.settings.cookie_secure
    max_age = int((result.expires_at - _now()).total_seconds())
    response.set_cookie(
        cookie_name(secure), result.token, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict"
    )
    response.set_cookie(
        csrf_cookie_name(secure), result.csrf_token, max_age=max_age, path="/", secure=secure, httponly=False,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return LoginResponse(account=_account_out(result.principal), csrf_token=result.csrf_token,
                         expires_at=result.expires_at)


@router.post("/logout", status_code=204)
def logout(principal: CurrentPrincipal, request: Request, response: Response) -> Response:
    service = _auth_service(request)
    service.logout(principal)
    secure = service.settings.cookie_secure
    response.status_code = 204
    response.delete_cookie(cookie_name(secure), path="/", secure=secure, httponly=True, samesite="strict")
    response.delete_cookie(csrf_cookie_name(secure), path="/", secure=secure, samesite="strict")
    return response


@router.get("/me", response_model=AccountOut)
def me(principal: CurrentPrincipal, response: Response) -> AccountOut:
    response.headers["Cache-Control"] = "no-store"
    return _account_out(principal)
