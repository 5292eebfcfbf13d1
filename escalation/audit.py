"""The append-only audit log: who did what to which object, when, and from where.

Every read, list, edit, export and state change of a report, and every login,
is one ``audit_log`` row written in the same transaction as the action (a read
that cannot be recorded fails). The API offers no way to change or delete a
row, and the database refuses it too: migration 0002 installs triggers that
abort any UPDATE or DELETE (and TRUNCATE on PostgreSQL) of ``audit_log``. In
production the application's database role should not own the table either,
so it cannot drop those triggers.

"From where" is ``client``: a keyed hash of the client address
(``assistant.auth.client_fingerprint``), never the address itself (issue 9).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from assistant.auth import Principal
from assistant.db.models import utcnow
from assistant.logs import request_id_var
from escalation.models import AuditEntry

SYSTEM = "system"


def record(
    session: Session,
    action: str,
    principal: Principal | None,
    object_type: str,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    rid = request_id_var.get()
    entry = AuditEntry(
        at=at or utcnow(),
        actor_id=principal.account_id if principal else None,
        actor=principal.username if principal else SYSTEM,
        actor_role=principal.role if principal else None,
        action=action,
        object_type=object_type,
        object_id=object_id,
        client=principal.client if principal else None,
        request_id=None if rid == "-" else rid[:64],
        details=details or {},
    )
    session.add(entry)
    return entry


def auth_hook(
    session: Session,
    action: str,
    actor_id: str | None,
    actor: str | None,
    role: str | None,
    client: str | None,
    details: dict[str, Any],
) -> None:
    """The ``AuthService`` audit hook: logins, logouts and account changes."""
    rid = request_id_var.get()
    session.add(
        AuditEntry(
            at=utcnow(),
            actor_id=actor_id,
            actor=(actor or SYSTEM)[:64],
            actor_role=role,
            action=action,
            object_type="account",
            object_id=actor_id,
            client=client,
            request_id=None if rid == "-" else rid[:64],
            details=details,
        )
    )


def entries(
    session: Session,
    object_type: str | None = None,
    object_id: str | None = None,
    actions: Sequence[str] | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
    before_id: int | None = None,
) -> list[AuditEntry]:
    query = select(AuditEntry)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    if actions:
        query = query.where(AuditEntry.action.in_(list(actions)))
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if since:
        query = query.where(AuditEntry.at >= since)
    if before_id:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))
