"""Channels: the privacy notice shown to, and accepted by, each Zalo/Messenger user.

``channel_user`` gets the version of the notice last shown and when, and the
version accepted and when. Each of the user's conversations then carries a
``consent_record`` copied from it (see docs/privacy.md, "Rights and consent").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("notice_version", "notice_shown_at", "consent_version", "consent_at")


def upgrade() -> None:
    with op.batch_alter_table("channel_user") as batch:
        batch.add_column(sa.Column("notice_version", sa.String(16), nullable=True))
        batch.add_column(sa.Column("notice_shown_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("consent_version", sa.String(16), nullable=True))
        batch.add_column(sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_user") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
