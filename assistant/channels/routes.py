"""Webhook routes of the channels.

    GET  /webhooks/messenger   Meta's verification request (hub.challenge echoed)
    POST /webhooks/messenger   Messenger events (X-Hub-Signature-256)
    POST /webhooks/zalo        Zalo OA events (X-ZEvent-Signature)
    POST /webhooks/{channel}   any other registered channel (tests use ``CollectingChannel``)

The signature is checked on the raw body before anything else; a missing one is
a 401, a wrong one a 403, each with a WARNING log line and a counter. An
authentic request is acknowledged at once: the events go to the inbox and the
background worker.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from assistant.channels.base import MissingSignature, PayloadError, SignatureError
from assistant.channels.messenger import MessengerChannel
from assistant.channels.service import ChannelService

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["channels"])


def _error(status: int, code: str, vi: str, en: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": vi, "message_en": en}})


def _not_enabled(name: str) -> JSONResponse:
    return _error(404, "channel_not_enabled", "Kênh này chưa được bật.", f"Channel {name!r} is not enabled.")


def _service(request: Request) -> ChannelService | None:
    services = getattr(request.app.state, "services", None)
    return getattr(services, "channels", None)


def _reject(service: ChannelService, name: str, exc: SignatureError) -> JSONResponse:
    service.metrics.webhooks.labels(name, "rejected").inc()
    log.warning(
        "%s webhook rejected: %s",
        name,
        exc.reason,
        extra={"channel": name, "reason": exc.reason, "status": exc.status_code},
    )
    if isinstance(exc, MissingSignature):
        return _error(401, "missing_signature", "Thiếu chữ ký.", exc.reason)
    return _error(403, "bad_signature", "Chữ ký không hợp lệ.", exc.reason)


@router.get("/messenger", response_class=PlainTextResponse)
def messenger_verification(request: Request) -> Response:
    service = _service(request)
    channel = service.get("messenger") if service is not None else None
    if service is None or not isinstance(channel, MessengerChannel):
        return _not_enabled("messenger")
    params = request.query_params
    try:
        challenge = channel.verify_subscription(
            params.get("hub.mode", ""), params.get("hub.verify_token", ""), params.get("hub.challenge", "")
        )
    except SignatureError as exc:
        service.metrics.webhooks.labels("messenger", "verification_refused").inc()
        log.warning("messenger webhook verification refused: %s", exc.reason, extra={"channel": "messenger"})
        return _error(403, "verification_refused", "Mã xác minh không đúng.", exc.reason)
    log.info("messenger webhook verified by Meta", extra={"channel": "messenger"})
    return PlainTextResponse(challenge)


@router.post("/{name}")
async def receive(name: str, request: Request) -> Response:
    service = _service(request)
    channel = service.get(name) if service is not None else None
    if service is None or channel is None:
        return _not_enabled(name)
    body = await request.body()
    try:
        channel.verify(request.headers, body)
    except SignatureError as exc:
        return _reject(service, name, exc)
    try:
        messages = channel.parse(body)
    except PayloadError as exc:
        service.metrics.webhooks.labels(name, "bad_payload").inc()
        log.warning("%s webhook body not understood: %s", name, exc, extra={"channel": name})
        return _error(400, "bad_payload", "Dữ liệu không hợp lệ.", str(exc))
    result = await run_in_threadpool(service.accept, messages)
    service.metrics.webhooks.labels(name, "accepted").inc()
    return JSONResponse({"status": "ok", "accepted": result.accepted, "duplicates": result.duplicates})
