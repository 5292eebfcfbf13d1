"""Database: SQLAlchemy 2.0 models, engine/session factory and Alembic migrations."""

from assistant.db.models import Base, Conversation, Message
from assistant.db.session import Database, current_revision, downgrade, make_engine, upgrade

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
