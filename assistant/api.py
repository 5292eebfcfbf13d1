"""HTTP routes: chat, health, readiness, metrics.

The public chat response never contains risk scores or categories: a child,
or an abuser probing the bot, must not see how a message was judged.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from assistant.conversations import Consent
from assistant.errors import InputError, MessageTooLong
from assistant.privacy.service import ConsentRequired
from assistant.services import Services

log = logging.getLogger(__name__)
router = APIRouter()


async def get_services(request: Request) -> Services:
    # async: a plain attribute read, not worth a trip to the thread pool.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    notice_version: str = Field(
        min_length=1, max_length=16, pattern=r"^[0-9A-Za-z._-]+$",
        description="Version of the privacy notice shown before the first message.",
    )


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{32}$", description="Omit to start a new conversation."
    )
    text: str = Field(description="The user's message (1–2,000 characters).")
    audience: Literal["child", "parent"]
    channel: Literal["web"] = "web"
    consent: ConsentIn | None = Field(
        default=None, description="Required with the first message of a conversation (in production)."
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates ("\ud800") are not text
            raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
        return value


class CitationOut(BaseModel):
    id: str
    title: str
    url: str


class ReplyOut(BaseModel):
    text: str
    citations: list[CitationOut]
    suggestions: list[str]


class ChatResponse(BaseModel):
    conversation_id: str
    reply: ReplyOut


class ErrorBody(BaseModel):
    code: str
    message: str
    message_en: str


class ErrorResponse(BaseModel):
    error: ErrorBody


@router.post(
    "/api/v1/chat",
    response_model=ChatResponse,
    responses={
        400: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
    tags=["chat"],
)
async def chat(body: ChatRequest, services: ServicesDep) -> ChatResponse:
    # The turn (pipeline and database) blocks, so it runs in the thread pool; the
    # checks before it and the response after it stay on the event loop, which
    # spares two more thread hops per message.
    limit = services.settings.chat.max_message_chars
    text = body.text.strip()
    if len(text) > limit:
        services.metrics.rejected.labels("too_long").inc()
        raise MessageTooLong(
            f"Tin nhắn dài quá {limit} ký tự. Em hãy chia thành nhiều tin ngắn hơn nhé.",
            f"Message longer than {limit} characters.",
        )
    if not text:
        raise InputError("Tin nhắn đang trống.", "text must not be empty")
    privacy = services.settings.privacy
    require_consent = services.settings.production if privacy.require_consent is None else privacy.require_consent
    if body.conversation_id is None and body.consent is None and require_consent:
        services.metrics.rejected.labels("consent").inc()
        raise ConsentRequired(
            "Em hãy đọc thông báo về quyền riêng tư và đồng ý trước khi gửi tin nhắn đầu tiên.",
            "The first message of a conversation must carry consent: {notice_version}.",
        )
    # The consent of a new conversation is stored in the turn's own transaction.
    consent = (
        Consent(body.consent.notice_version)
        if body.consent is not None and body.conversation_id is None
        else None
    )
    result = await run_in_threadpool(
        services.chat.handle,
        text=text,
        audience=body.audience,
        channel=body.channel,
        conversation_id=body.conversation_id,
        consent=consent,
    )
    services.metrics.chat_messages.labels(body.channel, body.audience, result.reply.kind).inc()
    if result.assessment.escalate:
        services.metrics.escalations.labels(body.channel, str(result.assessment.severity)).inc()
    reply = result.reply
    return ChatResponse(
        conversation_id=result.conversation_id,
        reply=ReplyOut(
            text=reply.text,
            citations=[CitationOut(id=c.id, title=c.title, url=c.url) for c in reply.citations],
            suggestions=reply.suggestions,
        ),
    )


@router.get("/healthz", tags=["ops"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"])
def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        services.db.ping()
        checks["database"] = "ok" if services.db.is_current() else "migrations pending"
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        log.warning("readiness: database unavailable: %s", type(exc).__name__)
        checks["database"] = "unavailable"
    checks["index"] = "ok" if services.index.ready else "not loaded"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})


@router.get("/metrics", tags=["ops"])
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
