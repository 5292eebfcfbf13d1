from __future__ import annotations

import pytest
import sqlalchemy as sa

from assistant.db import Conversation, Database, Message
from assistant.db.session import current_revision, downgrade, head_revision

pytestmark = pytest.mark.integration


def test_migrations_up_down_up(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.upgrade()
        assert current_revision(db.engine) == head_revision()
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"conversation", "message", "alembic_version"} <= tables
        downgrade(db.engine, "base")
        assert current_revision(db.engine) is None
        assert not {"conversation", "message"} & set(sa.inspect(db.engine).get_table_names())
        db.upgrade()
        assert db.is_current()
    finally:
        db.dispose()


def test_models_match_migrations(database_url: str) -> None:
    """Autogenerate finds nothing to change: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from assistant.db.models import Base

    db = Database(database_url)
    try:
        db.upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.dispose()


def test_failed_unit_of_work_writes_nothing(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.upgrade()
        with pytest.raises(RuntimeError), db.session() as s:
            conv = Conversation(channel="web", audience="child", risk_severity=0, risk_state={}, needs_followup=False)
            s.add(conv)
            s.flush()
            s.add(Message(conversation_id=conv.id, role="user", channel="web", audience="child", text="x"))
            s.flush()
            raise RuntimeError("crash mid-write")
        with db.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(Message)) == 0
            assert s.scalar(sa.select(sa.func.count()).select_from(Conversation)) == 0
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/wal.sqlite3")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_platform_message_id_is_unique_per_channel(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.upgrade()
        with db.session() as s:
            conv = Conversation(channel="zalo", audience="child", risk_severity=0, risk_state={}, needs_followup=False)
            s.add(conv)
            s.flush()
            s.add(Message(conversation_id=conv.id, role="user", channel="zalo", audience="child", text="a", platform_message_id="m1"))
        with pytest.raises(sa.exc.IntegrityError), db.session() as s:
            conv_id = s.scalars(sa.select(Conversation.id)).one()
            s.add(Message(conversation_id=conv_id, role="user", channel="zalo", audience="child", text="b", platform_message_id="m1"))
    finally:
        db.dispose()
