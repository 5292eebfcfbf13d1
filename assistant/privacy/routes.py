"""HTTP routes of the rights requests.

Child (no account; the conversation id is the widget's bearer secret):

    POST /api/v1/privacy/code    {conversation_id}  -> {code, expires_at}   shown once in the widget
    POST /api/v1/privacy/export  {code}             -> the conversation (unredacted: it is the child's own)
    POST /api/v1/privacy/delete  {code}             -> {deleted}; 409 when a report holds it

Staff (session + CSRF; admin or supervisor), on a parent's request, reason recorded:

    POST /api/v1/admin/privacy/conversations/{id}/export  {reason}
    POST /api/v1/admin/privacy/conversations/{id}/delete  {reason, override_legal_hold}
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from assistant.auth import CurrentPrincipal
from assistant.errors import NotReady
from assistant.privacy.service import PrivacyService

router = APIRouter(tags=["privacy"])


def get_privacy(request: Request) -> PrivacyService:
    service: PrivacyService | None = getattr(request.app.state.services, "privacy", None)
    if service is None:
        raise NotReady("Dịch vụ chưa sẵn sàng.", "privacy service not configured")
    return service


Privacy = Annotated[PrivacyService, Depends(get_privacy)]
ConversationId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class CodeOut(BaseModel):
    code: str
    expires_at: str


class CodeUse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=10, max_length=16, pattern=r"^[0-9A-Za-z-]+$")


class ParentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=5, max_length=500, description="The parent's request, as recorded.")


class ParentDeletion(ParentRequest):
    override_legal_hold: bool = Field(
        default=False, description="Supervisors only: also delete a report under legal hold."
    )


@router.post("/api/v1/privacy/code", response_model=CodeOut)
def issue_code(body: CodeRequest, privacy: Privacy) -> CodeOut:
    code, expires = privacy.issue_code(body.conversation_id)
    return CodeOut(code=code, expires_at=expires.isoformat())


@router.post("/api/v1/privacy/export")
def export_by_code(body: CodeUse, privacy: Privacy) -> dict[str, Any]:
    return privacy.export_by_code(body.code)


@router.post("/api/v1/privacy/delete")
def delete_by_code(body: CodeUse, privacy: Privacy) -> dict[str, Any]:
    return privacy.delete_by_code(body.code)


@router.post("/api/v1/admin/privacy/conversations/{conversation_id}/export")
def export_by_admin(
    conversation_id: ConversationId, body: ParentRequest, principal: CurrentPrincipal, privacy: Privacy
) -> dict[str, Any]:
    return privacy.export_by_admin(principal, conversation_id, body.reason)


@router.post("/api/v1/admin/privacy/conversations/{conversation_id}/delete")
def delete_by_admin(
    conversation_id: ConversationId, body: ParentDeletion, principal: CurrentPrincipal, privacy: Privacy
) -> dict[str, Any]:
    return privacy.delete_by_admin(principal, conversation_id, body.reason, body.override_legal_hold)
