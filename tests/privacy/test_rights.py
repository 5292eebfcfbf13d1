"""Rights: consent recorded with the first message, export/delete by the child's code, by staff."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from assistant.auth import AccessDenied, Principal
from assistant.db import Conversation
from assistant.privacy.models import ConsentRecord
from assistant.privacy.service import LegalHold, PrivacyService
from escalation.models import AuditEntry, TipReportRow
from tests.privacy.conftest import KEY_1, add_conversation, add_report, open_db

pytestmark = pytest.mark.integration


def _chat(client: Any, text: str, **extra: Any) -> Any:
    return client.post("/api/v1/chat", json={"text": text, "audience": "child", **extra})


def test_first_message_records_consent(client: Any, services: Any) -> None:
    r = _chat(client, "Làm sao để đặt mật khẩu an toàn?", consent={"notice_version": "1"})
    assert r.status_code == 200
    cid = r.json()["conversation_id"]
    with services.db.session() as s:
        row = s.scalars(sa.select(ConsentRecord).where(ConsentRecord.conversation_id == cid)).one()
        assert (row.notice, row.notice_version, row.channel) == ("privacy-notice-child", "1", "web")
        assert row.given_at is not None


def test_first_message_without_consent_is_refused_when_required(client: Any, services: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.settings.privacy, "require_consent", True)
    r = _chat(client, "xin chào")
    assert r.status_code == 422 and r.json()["error"]["code"] == "consent_required"
    assert _chat(client, "xin chào", consent={"notice_version": "1"}).status_code == 200


def test_child_exports_then_deletes_with_one_time_codes(client: Any, services: Any) -> None:
    r = _chat(client, "Em tên Lê Thị Hoa, làm sao chặn người lạ?", consent={"notice_version": "1"})
    cid = r.json()["conversation_id"]
    code = client.post("/api/v1/privacy/code", json={"conversation_id": cid}).json()["code"]
    export = client.post("/api/v1/privacy/export", json={"code": code})
    assert export.status_code == 200
    body = export.json()
    assert body["messages"][0]["text"] == "Em tên Lê Thị Hoa, làm sao chặn người lạ?"
    assert body["consents"][0]["notice_version"] == "1"
    again = client.post("/api/v1/privacy/export", json={"code": code})
    assert again.status_code == 404 and again.json()["error"]["code"] == "code_invalid"

    code2 = client.post("/api/v1/privacy/code", json={"conversation_id": cid}).json()["code"]
    deleted = client.post("/api/v1/privacy/delete", json={"code": code2.lower().replace("-", "")})
    assert deleted.status_code == 200 and deleted.json()["messages"] == 2
    with services.db.session() as s:
        assert s.get(Conversation, cid) is None
        assert s.scalars(sa.select(AuditEntry.action).where(AuditEntry.object_id == cid)).all() == [
            "ConversationExported", "ConversationDeleted"]
    assert client.post("/api/v1/privacy/code", json={"conversation_id": cid}).status_code == 404


def test_child_cannot_delete_a_conversation_under_legal_hold(client: Any, services: Any) -> None:
    cid = add_conversation(services.db, "em bị dọa")
    add_report(services.db, cid)
    code = client.post("/api/v1/privacy/code", json={"conversation_id": cid}).json()["code"]
    r = client.post("/api/v1/privacy/delete", json={"code": code})
    assert r.status_code == 409 and r.json()["error"]["code"] == "legal_hold"
    with services.db.session() as s:
        assert s.get(Conversation, cid) is not None


def test_staff_routes_need_a_session(client: Any) -> None:
    r = client.post(f"/api/v1/admin/privacy/conversations/{'a' * 32}/delete", json={"reason": "phụ huynh yêu cầu"})
    assert r.status_code in (401, 403)


def _principal(role: str) -> Principal:
    return Principal(account_id="01" + "B" * 24, username=f"{role}1", role=role)


def test_admin_deletes_on_a_parents_request_and_supervisor_overrides_legal_hold(database_url: str) -> None:
    db = open_db(database_url, KEY_1)
    try:
        service = PrivacyService(db, _settings())
        plain = add_conversation(db, "Em tên Nguyễn Văn An, số 0912345678")
        export = service.export_by_admin(_principal("admin"), plain, "Mẹ em yêu cầu bản sao")
        assert export["redacted"] and "0912345678" not in export["messages"][0]["text"]
        assert "Nguyễn Văn An" not in export["messages"][0]["text"]
        with pytest.raises(AccessDenied):
            service.delete_by_admin(_principal("counselor"), plain, "không có quyền")
        service.delete_by_admin(_principal("admin"), plain, "Phụ huynh yêu cầu xóa, đơn số 12")

        held = add_conversation(db, "em bị dọa")
        rid = add_report(db, held)
        with pytest.raises(LegalHold):
            service.delete_by_admin(_principal("admin"), held, "Phụ huynh yêu cầu xóa", override_legal_hold=True)
        with pytest.raises(LegalHold):
            service.delete_by_admin(_principal("supervisor"), held, "Phụ huynh yêu cầu xóa")
        service.delete_by_admin(_principal("supervisor"), held, "Quyết định của giám sát viên", override_legal_hold=True)
        with db.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(Conversation)) == 0
            assert s.get(TipReportRow, rid) is None
            reasons = [a.details.get("reason") for a in s.scalars(
                sa.select(AuditEntry).where(AuditEntry.action == "ConversationDeleted")).all()]
            assert reasons == ["Phụ huynh yêu cầu xóa, đơn số 12", "Quyết định của giám sát viên"]
    finally:
        db.dispose()


def _settings() -> Any:
    from assistant.settings import PrivacySettings

    return PrivacySettings()
