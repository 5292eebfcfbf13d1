"""Claiming outbox rows: many workers, each row handled by one at a time.

A claim is a lease: the worker writes its id, a fresh ``claim_token`` and
``claimed_until = now + lease`` on the rows it takes, commits, and delivers
outside any transaction. A worker that dies (even by SIGKILL) leaves its rows
claimed until the lease runs out; then any worker may take them again. The
result of a delivery is written only while the token still matches, so a
worker whose lease was taken over cannot overwrite the new owner's state.

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks due rows that no
  other transaction is claiming, then one UPDATE sets the lease. Any number
  of workers, no double claims, no waiting on each other.
- SQLite: a single ``UPDATE ... WHERE id IN (SELECT ... due ... LIMIT n)``.
  SQLite runs one writer at a time and evaluates the statement atomically,
  so two workers can never both claim a row; the rows of this claim are then
  read back by their token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from escalation.models import OutboxMessage


@dataclass(frozen=True)
class Claim:
    outbox_id: int
    token: str


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return (
        OutboxMessage.status == "pending",
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


def claim(session: Session, worker_id: str, batch: int, lease_seconds: float, now: datetime) -> list[Claim]:
    """Claim up to ``batch`` due rows for ``worker_id``; the caller commits."""
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=lease_seconds)
    due = select(OutboxMessage.id).where(*_due(now)).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.scalars(due.limit(batch).with_for_update(skip_locked=True)))
        if not ids:
            return []
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(claimed_by=worker_id, claim_token=token, claimed_until=until)
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(due.limit(batch).scalar_subquery()), *_due(now))
            .values(claimed_by=worker_id, claim_token=token, claimed_until=until)
            .execution_options(synchronize_session=False)
        )
        ids = list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.claim_token == token)))
    return [Claim(i, token) for i in sorted(ids)]


def still_owned(item: OutboxMessage, token: str) -> bool:
    """The claim of ``token`` still holds (the lease was not taken over) and the row is not done."""
    return item.claim_token == token and item.status == "pending"
