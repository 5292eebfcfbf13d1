"""The composition root: ``create_app(settings)`` wires every part together once."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant import __version__
from assistant.api import router
from assistant.auth import router as auth_router
from assistant.channels.routes import router as channels_router
from assistant.console import router as console_router
from assistant.errors import AssistantError
from assistant.logs import configure_logging, request_id_var
from assistant.privacy.routes import router as privacy_router
from assistant.ratelimit import MAX_BODY_BYTES, RateLimitMiddleware, limiter_for, send_json, too_large_body
from assistant.services import Services, build_services, settle_heap
from assistant.settings import Settings
from assistant.web import router as web_router
from escalation.api import router as escalation_router

if TYPE_CHECKING:
    from escalation.worker import WorkerThread

log = logging.getLogger(__name__)



def _error(status: int, code: str, vi: str, en: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": vi, "message_en": en}}
    )


class RequestContextMiddleware:
    """Pure ASGI middleware around every HTTP request.

    Sets the request id (the client's ``x-request-id`` or a new one) for the logs
    and echoes it in the response, answers 413 at once when the declared body is
    larger than ``MAX_BODY_BYTES``, and records the request's duration by route
    and status. Written against ASGI directly rather than as Starlette's
    ``BaseHTTPMiddleware``, which spawns a task and wraps the body and the
    response in streams on every request: on the chat hot path that cost about a
    sixth of the service's CPU time under load (``python -m assistant bench chat``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rid = headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        try:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                await send_json(send_with_id, 413, too_large_body())
            else:
                await self.app(scope, receive, send_with_id)
            app = scope.get("app")
            svc = getattr(app.state, "services", None) if app is not None else None
            if svc is not None:
                path = getattr(scope.get("route"), "path", "unmatched")
                svc.metrics.requests.labels(scope["method"], path, str(status)).observe(
                    time.perf_counter() - started
                )
        finally:
            request_id_var.reset(token)


def _start_worker(services: Services) -> WorkerThread:
    from escalation.worker import DeliveryWorker, WorkerThread

    assert services.escalation is not None
    worker = DeliveryWorker(services.db, services.settings, services.escalation)
    log.info("delivery worker runs in this process", extra={"worker": worker.worker_id})
    return WorkerThread(worker).start()


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    prepare: bool = True,
    run_worker: bool = False,
) -> FastAPI:
    """Build the app. ``services`` may be given (tests share one set); else built at start-up."""
    settings = settings or (services.settings if services else Settings())
    configure_logging(settings.logging, production=settings.production)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        # Blocking endpoints (the chat pipeline, database work) run in at most this many
        # threads at once (default 3; anyio's is 40). Fewer threads queue requests in
        # order instead of making them all fight over the interpreter lock.
        to_thread.current_default_thread_limiter().total_tokens = settings.server.request_threads
        app.state.services = services or build_services(settings, prepare=prepare)
        if app.state.services.channels is not None:
            # Zalo/Messenger events acknowledged by a previous process are answered now.
            app.state.services.channels.start()
        # `serve` (and so `make run`) runs the delivery worker as a background thread
        # when escalation.worker_in_serve is on; more workers: `python -m assistant worker`.
        worker = _start_worker(app.state.services) if run_worker else None
        stop_gc_watch = None
        if owned:  # the serving process (tests share services and many apps)
            log.info("start-up heap settled", extra={"frozen_objects": settle_heap()})
            stop_gc_watch = app.state.services.metrics.watch_gc()
        try:
            yield
        finally:
            if stop_gc_watch is not None:
                stop_gc_watch()
            if worker is not None:
                worker.close()
            if owned:
                app.state.services.close()

    app = FastAPI(
        title="Trợ lý an toàn trực tuyến cho trẻ em – Đồng Nai",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    if services is not None:
        app.state.services = services

    # Innermost: rate limits on the browser chat (after the size check and request id below).
    app.state.rate_limiter = limiter_for(settings)
    app.add_middleware(RateLimitMiddleware, limiter=app.state.rate_limiter)

    # Outside the rate limits: request id, early 413 on a declared oversized body, request metric.
    app.add_middleware(RequestContextMiddleware)

    @app.exception_handler(AssistantError)
    async def assistant_error(_request: Request, exc: AssistantError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": exc.to_dict()})

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        # Still a well-formed answer (Starlette logs the traceback after it): the
        # client gets the same JSON error shape as for every other failure.
        log.error("unhandled error: %s", type(exc).__name__)
        return _error(
            500,
            "internal_error",
            "Hệ thống đang gặp sự cố. Em thử lại sau ít phút nhé. Nếu em cần giúp ngay, hãy gọi 111 (miễn phí, 24/7).",
            "Internal error; please retry shortly.",
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        svc = getattr(request.app.state, "services", None)
        if any(e.get("type") == "json_invalid" for e in errors):
            if svc is not None:
                svc.metrics.rejected.labels("invalid_json").inc()
            return _error(
                400,
                "invalid_json",
                "Dữ liệu gửi lên không phải JSON hợp lệ.",
                "The request body is not valid JSON.",
            )
        if svc is not None:
            svc.metrics.rejected.labels("validation").inc()
        fields = []
        for e in errors:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            fields.append({"field": loc or "body", "problem": e.get("msg", "invalid")})
        return JSONResponse(
            status_code=422,
            content={
                "error": {
                    "code": "invalid_input",
                    "message": "Yêu cầu không hợp lệ: " + "; ".join(f["field"] for f in fields),
                    "message_en": "Invalid request: "
                    + "; ".join(f"{f['field']}: {f['problem']}" for f in fields),
                    "fields": fields,
                }
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {
            404: ("Không tìm thấy.", "Not found."),
            405: ("Phương thức không được hỗ trợ.", "Method not allowed."),
        }
        vi, en = messages.get(exc.status_code, ("Yêu cầu không hợp lệ.", str(exc.detail)))
        return _error(exc.status_code, "http_error", vi, en)

    app.include_router(router)
    app.include_router(auth_router)
    app.include_router(escalation_router)
    app.include_router(channels_router)
    app.include_router(web_router)
    app.include_router(privacy_router)
    app.include_router(console_router)
    # Outermost, so that every answer (429 and 413 too) carries the CORS headers
    # the widget on an allowed host page needs to read it.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.widget.allowed_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["content-type", "x-request-id"],
        expose_headers=["retry-after", "x-request-id"],
        max_age=600,
    )
    return app
