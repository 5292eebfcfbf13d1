"""The composition root: ``create_app(settings)`` wires every part together once."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import __version__
from assistant.api import router
from assistant.errors import AssistantError
from assistant.logs import configure_logging, request_id_var
from assistant.services import Services, build_services
from assistant.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, code: str, vi: str, en: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": vi, "message_en": en}}
    )


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    prepare: bool = True,
) -> FastAPI:
    """Build the app. ``services`` may be given (tests share one set); else built at start-up."""
    settings = settings or (services.settings if services else Settings())
    configure_logging(settings.logging)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or build_services(settings, prepare=prepare)
        try:
            yield
        finally:
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
    return app
