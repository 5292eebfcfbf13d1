"""Zalo OA and Messenger channels: channel users, the webhook event inbox, OA tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_user",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_pseudonym", sa.String(64), nullable=False),
        sa.Column("platform_user_id", sa.String(128), nullable=True),
        sa.Column("audience", sa.String(16), nullable=True),
        sa.Column("audience_asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("conversation_id", sa.String(32), nullable=True),
        sa.Column("last_user_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_platform_message_id", sa.String(128), nullable=True),
        sa.Column("replies_since_user_message", sa.Integer(), nullable=False),
        sa.Column("quota_notice_sent", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_channel_user_conversation_id_conversation"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_user")),
        sa.UniqueConstraint("channel", "user_pseudonym", name="uq_channel_user_pseudonym"),
    )
    op.create_table(
        "channel_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("event_key", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_pseudonym", sa.String(64), nullable=False),
        sa.Column("platform_message_id", sa.String(128), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("attachment_types", sa.JSON(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(255), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_event")),
        sa.UniqueConstraint("channel", "event_key", name="uq_channel_event_key"),
    )
    op.create_index("ix_channel_event_status_received", "channel_event", ["status", "received_at"])
    op.create_table(
        "channel_credential",
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seed_fingerprint", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_credential")),
    )


def downgrade() -> None:
    op.drop_table("channel_credential")
    op.drop_index("ix_channel_event_status_received", table_name="channel_event")
    op.drop_table("channel_event")
    op.drop_table("channel_user")
