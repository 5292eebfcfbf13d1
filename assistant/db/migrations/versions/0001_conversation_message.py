"""Conversations and messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_pseudonym", sa.String(64), nullable=True),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("risk_severity", sa.Integer(), nullable=False),
        sa.Column("risk_state", sa.JSON(), nullable=False),
        sa.Column("needs_followup", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation")),
    )
    op.create_index(
        op.f("ix_conversation_user_pseudonym"), "conversation", ["user_pseudonym"]
    )
    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_pseudonym", sa.String(64), nullable=True),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("platform_message_id", sa.String(128), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_message_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
        sa.UniqueConstraint("channel", "platform_message_id", name="uq_message_platform_id"),
    )
    op.create_index(
        "ix_message_conversation_created", "message", ["conversation_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_message_conversation_created", table_name="message")
    op.drop_table("message")
    op.drop_index(op.f("ix_conversation_user_pseudonym"), table_name="conversation")
    op.drop_table("conversation")
