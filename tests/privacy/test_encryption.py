"""Encryption at rest: ciphertext in the raw rows, rotation, the 0004 migration, production keys."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from assistant.channels.models import ChannelCredential, ChannelUser
from assistant.crypto import DEV_DATA_KEY, ENCRYPTED_COLUMNS, DecryptionFailed
from assistant.db import Message
from assistant.db.session import downgrade, upgrade
from assistant.privacy.keys import rotate_all
from assistant.settings import Settings
from escalation.models import OutboxMessage, ReportNote, TipReportRow
from tests.privacy.conftest import KEY_1, KEY_2, add_conversation, add_report, open_db

pytestmark = pytest.mark.integration

SECRET = "em bị anh Trần Văn Hải đe dọa tung ảnh"


def _fill(db: object) -> str:
    from assistant.auth import Account
    from assistant.db import Database

    assert isinstance(db, Database)
    cid = add_conversation(db, SECRET)
    add_report(db, cid)
    with db.session() as s:
        s.add(Account(id="01" + "A" * 24, username="admin1", password_hash="x", role="admin",
                      totp_secret="JBSWY3DPEHPK3PXP"))
        s.add(ChannelUser(channel="zalo", user_pseudonym="p" * 64, platform_user_id="8412345678901234",
                          replies_since_user_message=0, quota_notice_sent=False))
        s.add(ChannelCredential(channel="zalo", access_token="ACCESS-TOKEN-123", refresh_token="REFRESH-456",
                                seed_fingerprint="f" * 64))
        s.add(OutboxMessage(kind="alert", event_type="x", destination="d", dedupe_key="k1", message_id="m",
                            payload={"excerpt": SECRET}))
    return cid


def _raw(db: object, table: str, column: str) -> list[str]:
    with db.engine.connect() as conn:  # type: ignore[attr-defined]
        return [r[0] for r in conn.execute(sa.text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"))]


def test_sensitive_columns_hold_only_ciphertext(database_url: str) -> None:
    db = open_db(database_url, KEY_1)
    try:
        _fill(db)
        plaintexts = [SECRET, "Nguyễn Văn Tư", "0912345678", "JBSWY3DPEHPK3PXP", "8412345678901234",
                      "ACCESS-TOKEN-123", "REFRESH-456"]
        for table, _keys, column in ENCRYPTED_COLUMNS:
            for value in _raw(db, table, column):
                assert isinstance(value, str) and value.startswith("gAAAAA"), (table, column, value)
                assert not any(p in value for p in plaintexts)
        with db.session() as s:
            texts = s.scalars(sa.select(Message.text)).all()
            assert f"{SECRET} 0" in texts
            assert s.scalars(sa.select(ChannelUser)).one().platform_user_id == "8412345678901234"
            assert s.scalars(sa.select(OutboxMessage)).one().payload == {"excerpt": SECRET}
            assert "Nguyễn Văn Tư" in s.scalars(sa.select(TipReportRow)).one().content["incident"]["description"]
    finally:
        db.dispose()


def test_rotation_reencrypts_with_the_first_key(database_url: str) -> None:
    old = open_db(database_url, KEY_1)
    _fill(old)
    old.dispose()
    both = open_db(database_url, KEY_2, KEY_1)
    try:
        counts = rotate_all(both)
        assert counts["message.text"] == 2 and counts["tip_report.content"] == 1
        assert rotate_all(both)["message.text"] == 0  # already under the first key
    finally:
        both.dispose()
    new_only = open_db(database_url, KEY_2)
    try:
        with new_only.session() as s:
            assert f"{SECRET} 0" in s.scalars(sa.select(Message.text)).all()
            assert s.scalars(sa.select(ReportNote)).one().text.startswith("Đã gọi")
    finally:
        new_only.dispose()
    old_only = open_db(database_url, KEY_1)
    try:
        with pytest.raises(DecryptionFailed), old_only.session() as s:
            s.scalars(sa.select(Message.text)).all()
    finally:
        old_only.dispose()


def test_migration_0004_encrypts_existing_rows_and_downgrade_decrypts(database_url: str) -> None:
    from assistant.crypto import Keyring
    from assistant.db import Database

    db = Database(database_url, keyring=Keyring([KEY_1]))
    try:
        upgrade(db.engine, "0003")
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO conversation (id, channel, audience, created_at, updated_at, risk_severity, "
                "risk_state, needs_followup) VALUES ('c' || '0000000000000000000000000000000', 'web', 'child', "
                ":t, :t, 0, '{}', false)"), {"t": "2026-01-01 00:00:00+00"})
            conn.execute(sa.text(
                "INSERT INTO message (conversation_id, role, channel, audience, text, created_at) "
                "VALUES ('c0000000000000000000000000000000', 'user', 'web', 'child', :x, :t)"),
                {"x": SECRET, "t": "2026-01-01 00:00:00+00"})
        upgrade(db.engine, "0004")
        (raw,) = _raw(db, "message", "text")
        assert raw.startswith("gAAAAA") and SECRET not in raw
        with db.session() as s:
            assert s.scalars(sa.select(Message.text)).one() == SECRET
        downgrade(db.engine, "0003")
        assert _raw(db, "message", "text") == [SECRET]
    finally:
        db.dispose()


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_production_refuses_to_start_without_data_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # no .env file
    with pytest.raises(ValueError, match="ASSISTANT_SECURITY__DATA_KEYS"):
        _settings(mode="production", security={"pseudonym_key": "k" * 40})
    with pytest.raises(ValueError, match="development key"):
        _settings(mode="production", security={"pseudonym_key": "k" * 40, "data_keys": [DEV_DATA_KEY]})
    with pytest.raises(ValueError, match="not a Fernet key"):
        _settings(security={"data_keys": "not-a-key"})
    s = _settings(mode="production", security={"pseudonym_key": "k" * 40, "data_keys": f"{KEY_2},{KEY_1}"})
    assert s.security.keyring().keys == [KEY_2, KEY_1]
