"""Database: SQLAlchemy 2.0 models, engine/session factory and Alembic migrations."""

from assistant.db.models import Base, Conversation, Message
from assistant.db.session import Database, make_engine, upgrade, downgrade, current_revision

__all__ = [
    "Base",
    "Conversation",
    "Database",
    "Message",
    "current_revision",
    "downgrade",
    "make_engine",
    "upgrade",
]
