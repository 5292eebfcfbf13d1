"""Privacy: encryption at rest of the sensitive columns, consent records, rights codes.

Every column listed in ``assistant.crypto.ENCRYPTED_COLUMNS`` becomes TEXT
(PostgreSQL; SQLite keeps its declared type, which does not constrain text, and
rebuilding ``tip_report`` there would cascade deletes) and its existing rows are
encrypted with the first data key of the engine. Downgrade decrypts them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from assistant.crypto import ENCRYPTED_COLUMNS, keyring_of

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Types the columns had before this revision (PostgreSQL downgrade restores them).
_OLD_TYPES: dict[tuple[str, str], str] = {
    ("tip_report", "content"): "JSON",
    ("outbox", "payload"): "JSON",
    ("account", "totp_secret"): "VARCHAR(64)",
    ("channel_user", "platform_user_id"): "VARCHAR(128)",
}


def _recode(encrypt: bool) -> None:
    bind = op.get_bind()
    keyring = keyring_of(bind.dialect)
    for table, keys, column in ENCRYPTED_COLUMNS:
        pk = ", ".join(keys)
        rows = bind.execute(sa.text(f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
        where = " AND ".join(f"{k} = :k{i}" for i, k in enumerate(keys))
        stmt = sa.text(f"UPDATE {table} SET {column} = :v WHERE {where}")
        for row in rows:
            value = row[-1]
            if encrypt:
                if not isinstance(value, str):  # JSON read back as a Python object
                    value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
                new = keyring.encrypt(value)
            else:
                new = keyring.decrypt(value)
            params = {f"k{i}": row[i] for i in range(len(keys))}
            bind.execute(stmt, {"v": new, **params})


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table, column in _OLD_TYPES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT USING {column}::text")
    _recode(encrypt=True)

    op.create_table(
        "consent_record",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("notice", sa.String(32), nullable=False),
        sa.Column("notice_version", sa.String(16), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_consent_record_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_record")),
    )
    op.create_index(op.f("ix_consent_record_conversation_id"), "consent_record", ["conversation_id"])
    op.create_table(
        "rights_code",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_rights_code_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_rights_code")),
    )
    op.create_index(op.f("ix_rights_code_conversation_id"), "rights_code", ["conversation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rights_code_conversation_id"), table_name="rights_code")
    op.drop_table("rights_code")
    op.drop_index(op.f("ix_consent_record_conversation_id"), table_name="consent_record")
    op.drop_table("consent_record")
    _recode(encrypt=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for (table, column), old in _OLD_TYPES.items():
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {old} USING {column}::{old.split('(')[0].lower()}")
