"""Access control of the console over HTTP (SQLite and PostgreSQL): throttling, session
fixation, CSRF, IDOR, XSS, re-authentication for exports, disabled accounts, TOTP."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from assistant.auth import LoginThrottle
from tests.console.conftest import NON_URGENT, PASSWORD, ConsoleEnv, console_env

pytestmark = pytest.mark.integration

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>"><svg onload=alert(2)>'


def login(client: TestClient, username: str, totp: str | None = None, password: str = PASSWORD) -> Any:
    return client.post("/console/login", data={"username": username, "password": password, "totp": totp or ""},
                       follow_redirects=False)


def csrf(client: TestClient) -> str:
    return str(client.cookies.get("assistant_csrf"))


def chat(client: TestClient, text: str) -> str:
    r = client.post("/api/v1/chat", json={"text": text, "audience": "child"})
    assert r.status_code == 200, r.text
    return str(r.json()["conversation_id"])


def test_pages_need_a_session_and_send_no_store(env: ConsoleEnv, client: TestClient) -> None:
    for path in ("/console/queue", "/console/stats", "/console/audit", "/console/accounts", "/console/reports/X"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), path
    chat(client, NON_URGENT)
    rid = env.reports()[0].id
    assert login(client, "sup").status_code == 303
    r = client.get(f"/console/reports/{rid}")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    print("checked: every page redirects to login without a session; report page is no-store with a strict CSP")


def test_brute_force_is_throttled_per_account_and_per_client(tmp_path: Path, database_url: str,
                                                             services: Any) -> None:
    with console_env(tmp_path, database_url, services, max_failed_logins=3, max_failed_logins_per_client=6) as env, \
            TestClient(env.app, base_url="http://127.0.0.1") as client:
        for _ in range(3):
            assert login(client, "sup", password="wrong password 1234").status_code == 401
        r = login(client, "sup")  # the right password, but the account is locked now
        assert r.status_code == 429 and "tạm khoá" in r.text
        for name in ("nobody-1", "nobody-2", "audit1"):
            assert login(client, name, password="wrong password 1234").status_code == 401
        r = login(client, "admin1")  # a different account, same client: the client is throttled
        assert r.status_code == 429 and "quá nhiều lần" in r.text
        # The API login shares the per-client throttle.
        r = client.post("/api/v1/auth/login", json={"username": "admin1", "password": PASSWORD})
        assert r.status_code == 429
    print("checked: 3 failures lock the account (429 with the right password); 6 failures from one client "
          "throttle every account, on the console and the API")


def test_login_throttle_keeps_only_hashed_keys_in_memory_and_forgets() -> None:
    throttle = LoginThrottle(limit=2, window_seconds=60)
    now = [1000.0]
    throttle._clock = lambda: now[0]
    throttle.failed("h:abc")
    throttle.failed("h:abc")
    with pytest.raises(Exception, match="Too many"):
        throttle.check("h:abc")
    now[0] += 61
    throttle.check("h:abc")
    assert list(throttle._failures) == []


def test_session_fixation_a_preset_cookie_is_never_adopted(env: ConsoleEnv, client: TestClient) -> None:
    fixed = "attacker-chosen-session-id-0123456789abcdef"
    client.cookies.set("assistant_session", fixed)
    r = login(client, "sup")
    assert r.status_code == 303
    issued = re.search(r"assistant_session=([^;]+)", r.headers["set-cookie"])
    assert issued and issued.group(1) != fixed and len(issued.group(1)) >= 22  # >= 128 bits, url-safe base64
    assert "HttpOnly" in r.headers["set-cookie"] and "samesite=strict" in r.headers["set-cookie"].lower()
    first = issued.group(1)
    with TestClient(env.app, base_url="http://127.0.0.1") as attacker:
        attacker.cookies.set("assistant_session", fixed)
        assert attacker.get("/api/v1/auth/me").status_code == 401
    # Logging in again from the same browser gives a new id and ends the previous session.
    r = login(client, "sup")
    second = re.search(r"assistant_session=([^;]+)", r.headers["set-cookie"])
    assert second and second.group(1) != first
    with TestClient(env.app, base_url="http://127.0.0.1") as old:
        old.cookies.set("assistant_session", first)
        assert old.get("/api/v1/auth/me").status_code == 401
    print("checked: pre-set cookie ignored, new random id at every login, the previous session ended")


def test_csrf_is_required_on_every_console_post(env: ConsoleEnv, client: TestClient) -> None:
    chat(client, NON_URGENT)
    rid = env.reports()[0].id
    login(client, "sup")
    for path, data in ((f"/console/reports/{rid}/approve", {}), (f"/console/reports/{rid}/note", {"text": "x"}),
                       ("/console/logout", {}), ("/console/accounts/create", {"username": "zz1", "role": "admin"})):
        assert client.post(path, data=data, follow_redirects=False).status_code == 403, path
        bad = {**data, "csrf_token": "not-the-token"}
        assert client.post(path, data=bad, follow_redirects=False).status_code == 403, path
    assert env.reports()[0].status == "pending_review"
    r = client.post(f"/console/reports/{rid}/note", data={"text": "gọi lại cho phụ huynh", "csrf_token": csrf(client)},
                    follow_redirects=False)
    assert r.status_code == 303
    print("checked: approve, note, logout, account creation refused (403) without or with a wrong CSRF token")


def test_idor_other_ward_and_unknown_ids(env: ConsoleEnv, client: TestClient) -> None:
    chat(client, NON_URGENT)  # Phường Biên Hòa
    rid = env.reports()[0].id
    login(client, "c-longkhanh")
    token = csrf(client)
    assert rid not in client.get("/console/queue").text
    r = client.get(f"/console/reports/{rid}")
    assert r.status_code == 403 and "Không có quyền" in r.text and "sờ vào" not in r.text
    for action in ("approve", "note", "assign", "dismiss", "export"):
        r = client.post(f"/console/reports/{rid}/{action}",
                        data={"csrf_token": token, "text": "x", "reason": "không phải", "password": PASSWORD})
        assert r.status_code == 403, action
    assert client.get(f"/api/v1/reports/{rid}").status_code == 403
    for bogus in ("01AAAAAAAAAAAAAAAAAAAAAAAA", "../../api/v1/stats", "1 OR 1=1", rid[:-1]):
        assert client.get(f"/console/reports/{bogus}").status_code in (404, 403), bogus
    (row,) = env.reports()
    assert row.status == "pending_review"
    # Roles: a counselor has no statistics, audit or account pages.
    for path in ("/console/stats", "/console/audit", "/console/accounts"):
        assert client.get(path).status_code == 403, path
    print("checked: another ward's counselor gets 403 on read and every action; unknown ids 404; role pages 403")


def test_xss_in_chat_text_and_report_fields_is_rendered_inert(env: ConsoleEnv, client: TestClient) -> None:
    cid = chat(client, NON_URGENT)
    client.post("/api/v1/chat", json={"text": "chú ấy nhắn " + XSS, "audience": "child", "conversation_id": cid})
    rid = env.reports()[0].id
    login(client, "sup")
    page = client.get(f"/console/reports/{rid}").text
    version = re.search(r'name="version" value="(\d+)"', page)
    assert version
    form = {"csrf_token": csrf(client), "version": version.group(1), "description": "Mô tả " + XSS,
            "when": XSS[:200], "severity": "3"}
    r = client.post(f"/console/reports/{rid}/edit", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(f"/console/reports/{rid}").text
    assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    # A malformed edit is refused with a message next to the form (and changes nothing).
    bad = {"csrf_token": csrf(client), "version": str(int(version.group(1)) + 1), "age": "200",
           "description": "x"}
    r = client.post(f"/console/reports/{rid}/edit", data=bad)
    assert r.status_code == 422 and "Tuổi" in r.text
    print("checked: script/img/svg payloads from chat text and edited fields are escaped; bad age refused (422)")


def test_dismiss_needs_a_reason_and_export_needs_the_password_again(env: ConsoleEnv, client: TestClient) -> None:
    chat(client, NON_URGENT)
    rid = env.reports()[0].id
    code = pyotp.TOTP(env.accounts.totp["c-bienhoa"]).now()
    assert login(client, "c-bienhoa", code).status_code == 303
    token = csrf(client)
    r = client.post(f"/console/reports/{rid}/dismiss", data={"csrf_token": token, "reason": ""})
    assert r.status_code == 422 and "lý do" in r.text
    r = client.post(f"/console/reports/{rid}/export", data={"csrf_token": token, "password": "wrong password 99"})
    assert r.status_code == 401 and "Content-Disposition" not in r.headers
    r = client.post(f"/console/reports/{rid}/export",
                    data={"csrf_token": token, "password": PASSWORD, "format": "json", "totp": code})
    assert r.status_code == 401  # the same TOTP code cannot be used twice
    following = pyotp.TOTP(env.accounts.totp["c-bienhoa"]).at(time.time() + 30)  # the next step: unused
    r = client.post(f"/console/reports/{rid}/export",
                    data={"csrf_token": token, "password": PASSWORD, "format": "json", "totp": following})
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    assert r.json()["meta"]["id"] == rid
    r = client.post(f"/console/reports/{rid}/dismiss", data={"csrf_token": token, "reason": "Báo nhầm, trẻ đùa"},
                    follow_redirects=False)
    assert r.status_code == 303 and env.reports()[0].status == "dismissed"
    print("checked: dismiss without reason 422; export refused without the password and with a replayed code")


def test_totp_is_enforced_in_production_mode(tmp_path: Path, database_url: str, services: Any) -> None:
    with console_env(tmp_path, database_url, services, require_totp=True) as env, \
            TestClient(env.app, base_url="http://127.0.0.1") as client:
        assert login(client, "sup").status_code == 401  # no TOTP set up: no login at all
        assert login(client, "c-bienhoa").status_code == 401  # TOTP set up, code missing
        code = pyotp.TOTP(env.accounts.totp["c-bienhoa"]).now()
        assert login(client, "c-bienhoa", code).status_code == 303
    print("checked: with TOTP required, accounts without it or without a code cannot log in")


def test_admin_creates_and_disables_accounts_and_disabling_ends_sessions(env: ConsoleEnv,
                                                                          client: TestClient) -> None:
    with TestClient(env.app, base_url="http://127.0.0.1") as victim:
        assert login(victim, "sup").status_code == 303
        assert victim.get("/console/queue").status_code == 200
        login(client, "admin1")
        r = client.post("/console/accounts/create",
                        data={"csrf_token": csrf(client), "username": "c-new", "role": "counselor",
                              "ward": "26068", "totp": "on"})
        assert r.status_code == 201
        password = re.search(r'id="new-password">([^<]+)<', r.text)
        secret = re.search(r'id="new-totp">([A-Z2-7]+)<', r.text)
        assert password and secret
        r = client.post("/console/accounts/disable", data={"csrf_token": csrf(client), "username": "sup"},
                        follow_redirects=False)
        assert r.status_code == 303
        r = victim.get("/console/queue", follow_redirects=False)
        assert r.status_code == 303 and "/console/login" in r.headers["location"]
        # The new account can log in with what was shown once.
        with TestClient(env.app, base_url="http://127.0.0.1") as new:
            r = login(new, "c-new", pyotp.TOTP(secret.group(1)).now(), password=password.group(1))
            assert r.status_code == 303
        # Reports are not an admin's business; the audit log is an auditor's.
        assert client.get("/console/queue").status_code == 403
        login(client, "audit1")
        page = client.get("/console/audit?action=AccountDisabledInConsole")
        assert page.status_code == 200 and "admin1" in page.text
    print("checked: admin creates an account (password and TOTP shown once), disabling ends its live session")


def test_idle_and_absolute_timeouts_end_the_session(env: ConsoleEnv, client: TestClient) -> None:
    import sqlalchemy as sa

    from assistant.auth import AuthSession
    from assistant.db.models import utcnow

    login(client, "sup")
    assert client.get("/console/queue").status_code == 200
    with env.db.session() as s:
        s.execute(sa.update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    r = client.get("/console/queue", follow_redirects=False)
    assert r.status_code == 303 and "/console/login" in r.headers["location"]
    login(client, "sup")
    with env.db.session() as s:
        s.execute(sa.update(AuthSession).where(AuthSession.ended_at.is_(None))
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/console/queue", follow_redirects=False).status_code == 303
    print("checked: a session idle for 31 minutes, or past its absolute lifetime, is refused")
