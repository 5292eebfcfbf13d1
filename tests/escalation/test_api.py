"""The review API over HTTP, on SQLite and PostgreSQL: login, roles and objects, every action, audit, stats."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from assistant.auth import AuthService
from assistant.conversations import ChatService
from assistant.db import Database
from escalation import audit
from escalation.example_receiver import ReceiverStore
from escalation.models import AuditEntry, OutboxMessage, TipReportRow
from escalation.service import EscalationService
from escalation.worker import DeliveryWorker
from tests.escalation.conftest import PASSWORD, Accounts, make_settings, webhook

pytestmark = pytest.mark.integration

CHILD_ABUSE = "chú hàng xóm ở phường Biên Hòa sờ vào chỗ kín của em, em 12 tuổi"
BIEN_HOA = 26068


@dataclasses.dataclass
class Env:
    client: TestClient
    db: Database
    esc: EscalationService
    auth: AuthService
    accounts: Accounts
    settings: Any
    store: ReceiverStore

    def login(self, username: str, totp: str | None = None) -> dict[str, str]:
        self.client.cookies.clear()
        r = self.client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD, "totp": totp})
        assert r.status_code == 200, r.text
        return {"X-CSRF-Token": r.json()["csrf_token"]}

    def chat(self, text: str, conversation_id: str | None = None, audience: str = "child") -> str:
        body: dict[str, Any] = {"text": text, "audience": audience}
        if conversation_id:
            body["conversation_id"] = conversation_id
        r = self.client.post("/api/v1/chat", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["conversation_id"])

    def reports(self) -> list[TipReportRow]:
        with self.db.session() as s:
            return list(s.scalars(sa.select(TipReportRow).order_by(TipReportRow.created_at)))


@contextmanager
def build_env(
    tmp_path: Path, database_url: str, services: Any, receiver: tuple[ReceiverStore, str], run_worker: bool = False
) -> Iterator[Env]:
    """The real app (shared pipeline and models) on a database of its own."""
    from assistant.app import create_app

    store, url = receiver
    settings = make_settings(tmp_path, database_url, endpoints={"city_police": webhook(url),
                                                                 "hotline_111": webhook(url)})
    db = Database(settings.database_url, settings.database)
    db.upgrade()
    esc = EscalationService(db, settings)
    auth = AuthService(db, settings, audit=audit.auth_hook)
    chat = ChatService(db, services.pipeline, settings.chat.history_turns, hooks=[esc.on_turn])
    svc = dataclasses.replace(services, settings=settings, db=db, chat=chat, escalation=esc, auth=auth, channels=None)
    accounts = Accounts(auth)
    accounts.create("sup", "supervisor")
    accounts.create("c-bienhoa", "counselor", wards=[BIEN_HOA])
    accounts.create("c-police", "counselor", agencies=["city_police"])
    accounts.create("c-other", "counselor", wards=[26041])
    accounts.create("admin1", "admin")
    accounts.create("audit1", "auditor")
    try:
        with TestClient(create_app(services=svc, run_worker=run_worker)) as client:
            yield Env(client, db, esc, auth, accounts, settings, store)
    finally:
        db.dispose()


@pytest.fixture()
def env(tmp_path: Path, database_url: str, services: Any, receiver: tuple[ReceiverStore, str]) -> Iterator[Env]:
    with build_env(tmp_path, database_url, services, receiver) as e:
        yield e


def test_disclosure_through_chat_creates_one_pending_report_and_a_second_appends(env: Env) -> None:
    cid = env.chat(CHILD_ABUSE)
    (report,) = env.reports()
    assert report.status == "pending_review" and report.conversation_id == cid
    with env.db.session() as s:
        rows = s.execute(sa.select(OutboxMessage.kind, OutboxMessage.destination)
                         .where(OutboxMessage.report_id == report.id)).all()
    assert [tuple(r) for r in rows] == [("alert", "counselors")]
    env.chat("chú ấy còn nhắn zalo số 0912 345 678 bảo em không được kể với ai, chú dọa đánh em", cid)
    (again,) = env.reports()
    assert again.id == report.id and again.version > report.version
    assert len(again.content["evidence"]["items"]) >= 2
    assert "+84912345678" in again.content["reported_person"]["phone_numbers"]
    print("checked: POST /api/v1/chat -> exactly one pending_review report + outbox alert; second disclosure appended")


def test_every_report_endpoint_needs_a_session(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    for method, path in (("get", "/api/v1/reports"), ("get", f"/api/v1/reports/{rid}"),
                         ("post", f"/api/v1/reports/{rid}/approve"), ("get", "/api/v1/stats"),
                         ("get", "/api/v1/audit")):
        r = env.client.request(method.upper(), path)
        assert r.status_code == 401, (path, r.text)


def test_login_sets_a_hardened_session_cookie_and_logout_ends_it(env: Env) -> None:
    r = env.client.post("/api/v1/auth/login", json={"username": "sup", "password": PASSWORD})
    assert r.status_code == 200
    cookie = r.headers.get_list("set-cookie")[0]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    assert env.client.get("/api/v1/auth/me").json()["role"] == "supervisor"
    assert env.client.post("/api/v1/auth/logout", headers=csrf).status_code == 204
    env.client.cookies.clear()
    # The old cookie does not work after logout either.
    token = cookie.split(";")[0].split("=", 1)[1]
    env.client.cookies.set("assistant_session", token)
    assert env.client.get("/api/v1/auth/me").status_code == 401


def test_wrong_password_and_unknown_user_get_the_same_answer(env: Env) -> None:
    a = env.client.post("/api/v1/auth/login", json={"username": "sup", "password": "wrong password 123"})
    b = env.client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong password 123"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_totp_is_required_when_the_account_has_it(env: Env) -> None:
    env.accounts.create("c-totp", "counselor", wards=[BIEN_HOA], totp=True)
    r = env.client.post("/api/v1/auth/login", json={"username": "c-totp", "password": PASSWORD})
    assert r.status_code == 401
    r = env.client.post("/api/v1/auth/login", json={"username": "c-totp", "password": PASSWORD, "totp": "000000"})
    assert r.status_code == 401
    code = env.accounts.code("c-totp")
    assert env.client.post("/api/v1/auth/login", json={"username": "c-totp", "password": PASSWORD,
                                                       "totp": code}).status_code == 200
    # The same code cannot be replayed.
    env.client.cookies.clear()
    assert env.client.post("/api/v1/auth/login", json={"username": "c-totp", "password": PASSWORD,
                                                       "totp": code}).status_code == 401


def test_state_changing_request_without_csrf_token_is_refused(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    env.login("sup")
    r = env.client.post(f"/api/v1/reports/{rid}/approve")
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = env.client.post(f"/api/v1/reports/{rid}/approve", headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert env.reports()[0].status == "pending_review"


def test_counselors_see_only_their_wards_and_agencies(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    for user, visible in (("c-bienhoa", True), ("c-police", True), ("c-other", False), ("sup", True)):
        env.login(user)
        listed = env.client.get("/api/v1/reports").json()
        assert (rid in [i["id"] for i in listed["items"]]) is visible, user
        r = env.client.get(f"/api/v1/reports/{rid}")
        assert r.status_code == (200 if visible else 403), user
    for user in ("admin1", "audit1"):
        env.login(user)
        assert env.client.get(f"/api/v1/reports/{rid}").status_code == 403
        assert env.client.get("/api/v1/reports").status_code == 403
    with env.db.session() as s:
        denied = s.scalars(sa.select(AuditEntry.actor).where(AuditEntry.action == "TipReportAccessDenied")).all()
    assert denied == ["c-other"]
    print("checked: ward counselor and police counselor see it, another ward's counselor gets 403 (audited)")


def test_list_filters(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    env.chat("em muốn chết, em đã chuẩn bị thuốc rồi")
    env.login("sup")

    def ids(**params: Any) -> int:
        r = env.client.get("/api/v1/reports", params=params)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    assert ids() == 2
    assert ids(status="pending_review") == 2 and ids(status="sent") == 0
    assert ids(ward=BIEN_HOA) == 1 and ids(age_min=12, age_max=12) == 1 and ids(age_min=13) == 0
    assert ids(category="self_harm") == 1 and ids(severity=4) + ids(severity=3) == 2
    items = env.client.get("/api/v1/reports").json()["items"]
    assert items[0]["urgent"] or items[0]["severity"] >= items[1]["severity"]
    assert env.client.get("/api/v1/reports", params={"status": "nonsense"}).status_code == 422


def test_read_shows_context_and_every_read_is_audited(env: Env) -> None:
    cid = env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    env.login("c-bienhoa")
    r = env.client.get(f"/api/v1/reports/{rid}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["report"]["meta"]["id"] == rid
    assert [m["role"] for m in body["conversation"]] == ["user", "assistant"]
    assert body["conversation"][0]["text"] == CHILD_ABUSE
    assert body["routing"]["agencies"][0]["code"] == "city_police"
    assert cid not in json.dumps(body["report"])  # the chat's access key is not in the report
    env.client.get(f"/api/v1/reports/{rid}")
    with env.db.session() as s:
        reads = s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "TipReportRead")).all()
    assert len(reads) == 2 and all(e.actor == "c-bienhoa" and e.object_id == rid for e in reads)
    assert all(e.client and e.client.startswith("h:") and "testclient" not in e.client for e in reads)


def test_edit_validates_and_rejects_malformed_or_stale_edits(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    csrf = env.login("c-bienhoa")
    good = {"version": 1, "incident": {"description": "Trẻ 12 tuổi kể bị hàng xóm xâm hại."},
            "reported_person": {"phone_numbers": ["+84912345678"]}, "child": {"gender": "female"}}
    r = env.client.patch(f"/api/v1/reports/{rid}", json=good, headers=csrf)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    bad_edits = [
        ({"version": 2, "child": {"age": 40}}, 422),
        ({"version": 2, "reported_person": {"phone_numbers": ["123"]}}, 422),
        ({"version": 2, "reported_person": {"profile_urls": ["javascript:alert(1)"]}}, 422),
        ({"version": 2, "incident": {"categories": ["sexual_abuse"], "primary_category": "scam"}}, 422),
        ({"version": 2, "incident": {"ward_code": 1}}, 422),
        ({"version": 2, "incident": {"description": ""}}, 422),
        ({"version": 2, "status": "closed"}, 422),
        ({"version": 2, "meta": {"id": "x"}}, 422),
        ({"version": 2}, 422),
        ({"version": 1, "child": {"age": 12}}, 409),
        ("not json", 422),
    ]
    for edit, code in bad_edits:
        r = env.client.patch(f"/api/v1/reports/{rid}", json=edit, headers=csrf)
        assert r.status_code == code, (edit, r.text)
    (row,) = env.reports()
    assert row.version == 2 and row.content["incident"]["description"].startswith("Trẻ 12 tuổi")
    print(f"checked: 1 valid edit applied, {len(bad_edits)} malformed or stale edits rejected, nothing changed")


def test_approve_delivers_to_the_agencies_and_the_report_is_sent(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    csrf = env.login("c-police")
    r = env.client.post(f"/api/v1/reports/{rid}/approve", headers=csrf)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert env.client.patch(f"/api/v1/reports/{rid}", json={"version": 2, "child": {"age": 11}},
                            headers=csrf).status_code == 409
    worker = DeliveryWorker(env.db, env.settings, env.esc)
    for _ in range(50):
        worker.run_once()
        if env.reports()[0].status == "sent":
            break
    assert env.reports()[0].status == "sent"
    assert f"{rid}.v2" in env.store.received
    assert env.client.post(f"/api/v1/reports/{rid}/approve", headers=csrf).status_code == 409
    r = env.client.post(f"/api/v1/reports/{rid}/acknowledge", json={"agency": "city_police", "reference": "CA-1"},
                        headers=csrf)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    r = env.client.post(f"/api/v1/reports/{rid}/close", json={"reason": "x"}, headers=csrf)
    assert r.status_code == 422
    r = env.client.post(f"/api/v1/reports/{rid}/close", json={"reason": "Công an đã thụ lý vụ việc"}, headers=csrf)
    assert r.status_code == 200 and r.json()["status"] == "closed"
    history = [h["status"] for h in env.client.get(f"/api/v1/reports/{rid}").json()["report"]["handling"]["history"]]
    assert history == ["pending_review", "approved", "sent", "acknowledged", "closed"]


def test_dismiss_needs_a_reason_and_frees_the_conversation(env: Env) -> None:
    cid = env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    csrf = env.login("sup")
    assert env.client.post(f"/api/v1/reports/{rid}/dismiss", json={}, headers=csrf).status_code == 422
    r = env.client.post(f"/api/v1/reports/{rid}/dismiss", json={"reason": "Học sinh kể về bài tập kịch"},
                        headers=csrf)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    env.chat("chú hàng xóm lại sờ vào người em hôm nay", cid)
    assert [r.status for r in env.reports()] == ["dismissed", "pending_review"]


def test_assign_notes_merge(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    env.chat("chú hàng xóm phường Biên Hòa sờ vào chỗ kín của con gái tôi", audience="parent")
    first, second = (r.id for r in env.reports())
    csrf = env.login("c-bienhoa")
    assert env.client.post(f"/api/v1/reports/{first}/assign", json={"username": "c-other"},
                           headers=csrf).status_code == 422  # cannot see it
    r = env.client.post(f"/api/v1/reports/{first}/assign", json={"username": "c-bienhoa"}, headers=csrf)
    assert r.status_code == 200 and r.json()["assigned_to"] == "c-bienhoa"
    r = env.client.post(f"/api/v1/reports/{first}/notes", json={"text": "Đã gọi lại cho gia đình."}, headers=csrf)
    assert r.status_code == 201
    r = env.client.post(f"/api/v1/reports/{second}/merge", json={"into": first}, headers=csrf)
    assert r.status_code == 200 and r.json()["status"] == "merged"
    doc = env.client.get(f"/api/v1/reports/{first}").json()["report"]
    assert doc["handling"]["assigned_to"] == "c-bienhoa" and doc["handling"]["notes"][0]["by"] == "c-bienhoa"
    assert len(doc["evidence"]["items"]) == 2
    assert env.client.get("/api/v1/reports", params={"assigned": "me"}).json()["total"] == 1


def test_export_json_and_pdf_need_the_password_again_and_are_audited(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    rid = env.reports()[0].id
    csrf = env.login("c-bienhoa")
    r = env.client.post(f"/api/v1/reports/{rid}/export", json={"format": "json", "password": "wrong password 1"},
                        headers=csrf)
    assert r.status_code == 401
    r = env.client.post(f"/api/v1/reports/{rid}/export", json={"format": "json", "password": PASSWORD}, headers=csrf)
    assert r.status_code == 200 and r.json()["meta"]["id"] == rid
    assert "attachment" in r.headers["content-disposition"] and r.headers["cache-control"] == "no-store"
    r = env.client.post(f"/api/v1/reports/{rid}/export", json={"format": "pdf", "password": PASSWORD}, headers=csrf)
    assert r.status_code == 200 and r.content.startswith(b"%PDF") and len(r.content) > 2000
    with env.db.session() as s:
        exports = s.scalars(sa.select(AuditEntry.details).where(AuditEntry.action == "TipReportExported")).all()
    assert [e["format"] for e in exports] == ["json", "pdf"]


def test_audit_log_is_append_only_in_the_database_and_readable_by_auditors_only(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    env.login("sup")
    env.client.get("/api/v1/reports")
    for statement in ("UPDATE audit_log SET actor = 'someone'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), env.db.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert env.client.get("/api/v1/audit").status_code == 403
    env.login("audit1")
    r = env.client.get("/api/v1/audit")
    assert r.status_code == 200
    actions = {i["action"] for i in r.json()["items"]}
    assert {"TipReportCreated", "TipReportsListed", "LoginSucceeded"} <= actions
    for method in ("PATCH", "DELETE", "PUT"):
        assert env.client.request(method, "/api/v1/audit").status_code == 405
    print("checked: UPDATE and DELETE of audit_log refused by the database; API offers GET only, to auditors")


def test_statistics(env: Env) -> None:
    env.chat(CHILD_ABUSE)
    env.chat("em muốn chết, em đã chuẩn bị thuốc rồi")
    rid = env.reports()[0].id
    csrf = env.login("sup")
    env.client.post(f"/api/v1/reports/{rid}/dismiss", json={"reason": "Không phải trẻ em, đã xác minh"},
                    headers=csrf)
    r = env.client.get("/api/v1/stats")
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["total"] == 2 and sum(stats["by_category"].values()) == 2
    assert stats["by_ward"].get("Phường Biên Hòa") == 1 and stats["by_channel"] == {"web": 2}
    assert stats["minutes_to_review"]["count"] == 1
    assert stats["within_12h"]["handled_in_time"] == 1 and stats["within_12h"]["open_within_deadline"] == 1
    assert stats["within_12h"]["share"] == 1.0
    env.login("c-bienhoa")
    assert env.client.get("/api/v1/stats").status_code == 403


def test_disabled_account_loses_its_sessions(env: Env) -> None:
    env.login("c-bienhoa")
    assert env.client.get("/api/v1/auth/me").status_code == 200
    env.auth.set_disabled("c-bienhoa")
    assert env.client.get("/api/v1/auth/me").status_code == 401


def test_serve_runs_the_delivery_worker_in_its_own_process(
    tmp_path: Path, database_url: str, services: Any, receiver: tuple[ReceiverStore, str]
) -> None:
    import time

    with build_env(tmp_path, database_url, services, receiver, run_worker=True) as e:
        e.chat("em muốn tự tử")
        rid = e.reports()[0].id
        csrf = e.login("sup")
        assert e.client.post(f"/api/v1/reports/{rid}/approve", headers=csrf).status_code == 200
        deadline = time.time() + 15
        while e.reports()[0].status != "sent" and time.time() < deadline:
            time.sleep(0.05)
        assert e.reports()[0].status == "sent"
    print("checked: with run_worker (what `serve` does), an approved report is delivered without a separate worker")
