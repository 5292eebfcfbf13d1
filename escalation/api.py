"""The review API (``/api/v1/reports``, ``/api/v1/stats``, ``/api/v1/audit``).

Every endpoint needs a session (``POST /api/v1/auth/login``); every POST and
PATCH also needs the session's ``X-CSRF-Token``. Roles and objects are checked
on the server for every call; every read, list, edit and export is written to
the audit log. Answers carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from assistant.auth import Principal, requires
from assistant.db.models import utcnow
from escalation import audit, stats
from escalation.schemas import Category, Status, TipReportUpdate
from escalation.service import EscalationService, ReportFilters, aware

router = APIRouter(prefix="/api/v1", tags=["reports"])


def get_escalation(request: Request) -> EscalationService:
    service: EscalationService = request.app.state.services.escalation
    return service


Escalation = Annotated[EscalationService, Depends(get_escalation)]
Reader = Annotated[Principal, Depends(requires("reports:read"))]
Actor = Annotated[Principal, Depends(requires("reports:act"))]


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


class ReasonBody(BaseModel):
    reason: str = Field(min_length=5, max_length=2000, description="Why (required for dismiss and close).")


class AssignBody(BaseModel):
    username: str | None = Field(default=None, max_length=64, description="Empty to unassign.")


class MergeBody(BaseModel):
    into: str = Field(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="The report that stays.")


class AcknowledgeBody(BaseModel):
    agency: str = Field(min_length=1, max_length=64)
    reference: str | None = Field(default=None, max_length=200, description="The agency's case number.")


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ExportBody(BaseModel):
    format: Literal["json", "pdf"] = "json"
    password: str = Field(min_length=1, max_length=256, description="Exporting needs the password again.")
    totp: str | None = Field(default=None, max_length=10)


def _path_id(report_id: str) -> str:
    return report_id.strip().upper()


@router.get("/reports")
def list_reports(
    principal: Reader,
    service: Escalation,
    response: Response,
    status: Annotated[list[Status] | None, Query()] = None,
    severity: Annotated[int | None, Query(ge=0, le=4)] = None,
    category: Category | None = None,
    ward: Annotated[int | None, Query(ge=1)] = None,
    age_min: Annotated[int | None, Query(ge=0, le=17)] = None,
    age_max: Annotated[int | None, Query(ge=0, le=17)] = None,
    urgent: bool | None = None,
    assigned: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The queue: urgent first, then by severity, then the longest waiting."""
    _no_store(response)
    return service.list_reports(
        principal,
        ReportFilters(
            status=tuple(status or ()), severity=severity, category=category, ward=ward, age_min=age_min,
            age_max=age_max, urgent=urgent, assigned=assigned, limit=limit, offset=offset,
        ),
    )


@router.get("/reports/{report_id}")
def read_report(report_id: str, principal: Reader, service: Escalation, response: Response) -> dict[str, Any]:
    """The structured report with its conversation context (the read is audited)."""
    _no_store(response)
    return service.read(principal, _path_id(report_id))


@router.patch("/reports/{report_id}")
def edit_report(
    report_id: str, body: TipReportUpdate, principal: Actor, service: Escalation, response: Response
) -> dict[str, Any]:
    """Edit fields (validated; ``version`` must be the version read)."""
    _no_store(response)
    return service.edit(principal, _path_id(report_id), body)


@router.post("/reports/{report_id}/approve")
def approve(report_id: str, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.approve(principal, _path_id(report_id))


@router.post("/reports/{report_id}/dismiss")
def dismiss(report_id: str, body: ReasonBody, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.dismiss(principal, _path_id(report_id), body.reason)


@router.post("/reports/{report_id}/close")
def close(report_id: str, body: ReasonBody, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.close(principal, _path_id(report_id), body.reason)


@router.post("/reports/{report_id}/merge")
def merge(report_id: str, body: MergeBody, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.merge(principal, _path_id(report_id), body.into)


@router.post("/reports/{report_id}/assign")
def assign(report_id: str, body: AssignBody, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.assign(principal, _path_id(report_id), body.username)


@router.post("/reports/{report_id}/acknowledge")
def acknowledge(report_id: str, body: AcknowledgeBody, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.acknowledge(principal, _path_id(report_id), body.agency, body.reference)


@router.post("/reports/{report_id}/redeliver")
def redeliver(report_id: str, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.redeliver(principal, _path_id(report_id))


@router.post("/reports/{report_id}/notes", status_code=201)
def add_note(report_id: str, body: NoteBody, principal: Actor, service: Escalation) -> dict[str, Any]:
    return service.add_note(principal, _path_id(report_id), body.text)


@router.post("/reports/{report_id}/export")
def export(report_id: str, body: ExportBody, principal: Reader, request: Request, service: Escalation) -> Response:
    """One report as JSON or PDF; asks for the password (and TOTP) again; audited."""
    request.app.state.services.auth.reauthenticate(principal, body.password, body.totp)
    data, media_type, filename = service.export(principal, _path_id(report_id), body.format)
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/stats", tags=["stats"])
def get_stats(
    principal: Annotated[Principal, Depends(requires("stats:read"))],
    service: Escalation,
    response: Response,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Counts by category, severity, ward, month and channel; response times; share within 12 hours."""
    _no_store(response)
    with service.db.session() as session:
        result = stats.compute(session, utcnow(), aware(since) if since else None, aware(until) if until else None)
        audit.record(session, "StatisticsRead", principal, "stats", None, {})
    return result


@router.get("/audit", tags=["audit"])
def get_audit(
    principal: Annotated[Principal, Depends(requires("audit:read"))],
    service: Escalation,
    response: Response,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The audit log, newest first (read-only: there is no way to change it)."""
    _no_store(response)
    with service.db.session() as session:
        rows = audit.entries(session, object_id=object_id, actor=actor, actions=[action] if action else None,
                             limit=limit, before_id=before_id)
        items = [
            {"id": e.id, "at": aware(e.at).isoformat(), "actor": e.actor, "role": e.actor_role, "action": e.action,
             "object_type": e.object_type, "object_id": e.object_id, "client": e.client,
             "request_id": e.request_id, "details": e.details}
            for e in rows
        ]
        audit.record(session, "AuditLogRead", principal, "audit_log", None, {"count": len(items)})
    return {"items": items}
