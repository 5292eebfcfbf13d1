"""Alembic environment: the engine comes from ``config.attributes['engine']``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import assistant.auth  # noqa: F401 - registers the account and session tables
import assistant.channels.models  # noqa: F401 - registers the channel tables on Base.metadata
import assistant.privacy.models  # noqa: F401 - consent records and rights codes
import escalation.models  # noqa: F401 - registers the escalation tables
from assistant.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:  # pragma: no cover - guarded by assistant.db.session
        raise RuntimeError("run migrations through assistant.db.upgrade(engine)")
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
