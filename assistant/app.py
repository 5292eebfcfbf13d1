"""The composition root: ``create_app(settings)`` wires every part together once."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from anyio import to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from assistant import __version__
from assistant.api import router
from assistant.auth import router as auth_router
from assistant.channels.routes import router as channels_router
from assistant.console import router as console_router
from assistant.errors import AssistantError
from assistant.logs import configure_logging, request_id_var
from assistant.privacy.routes import router as privacy_router
from assistant.ratelimit import RateLimitMiddleware, limiter_for
from assistant.services import Services, build_services
from assistant.settings import Settings
from assistant.web import router as web_router
from escalation.api import router as escalation_router

if TYPE_CHECKING:
    from escalation.worker import WorkerThread

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, code: str, vi: str, en: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": vi, "message_en": en}}
    )


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
        # threads at once; anyio's default is 40. Under overload, fewer threads queue
        # requests in order instead of letting some of them wait far longer than others.
        to_thread.current_default_thread_limiter().total_tokens = settings.server.request_threads
        app.state.services = services or build_services(settings, prepare=prepare)
        if app.state.services.channels is not None:
            # Zalo/Messenger events acknowledged by a previous process are answered now.
            app.state.services.channels.start()
        # `serve` (and so `make run`) runs the delivery worker as a background thread
        # when escalation.worker_in_serve is on; more workers: `python -m assistant worker`.
        worker = _start_worker(app.state.services) if run_worker else None
        try:
            yield
        finally:
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

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        try:
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                response: Response = _error(
                    413,
                    "payload_too_large",
                    "Tin nhắn quá dài. Em hãy viết ngắn hơn nhé.",
                    f"Request body larger than {MAX_BODY_BYTES} bytes.",
                )
            else:
                response = await call_next(request)
            response.headers["x-request-id"] = rid
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            svc = getattr(request.app.state, "services", None)
            if svc is not None:
                svc.metrics.requests.labels(request.method, path, str(response.status_code)).observe(
                    time.perf_counter() - started
                )
            return response
        finally:
            request_id_var.reset(token)

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
