"""The counselor console: server-rendered pages (Jinja2, Vietnamese) on the review API's services.

    GET  /console/                       to the role's first page
    GET  /console/login, POST            username + password + TOTP code
    POST /console/logout                 ends the session (server-side) and clears the cookies
    GET  /console/queue                  open reports: urgent first, then the longest waiting
    GET  /console/reports/{id}           the structured report, excerpt, reasons, routing, history
    POST /console/reports/{id}/{action}  edit | approve | dismiss | close | merge | assign | note |
                                         acknowledge | redeliver | export (export asks the password again)
    GET  /console/stats, /console/stats.csv
    GET  /console/audit                  auditors only
    GET  /console/accounts, POST ...     admins only

Security: the same server-side session as ``/api/v1/auth`` (HttpOnly, SameSite=Strict,
Secure in production); every POST carries the session's CSRF token as a form field
(``csrf_token``), checked server-side against the session's stored hash; roles and
objects are checked by ``EscalationService`` for every call; every page is
``Cache-Control: no-store`` with a strict CSP (no inline script or style); Jinja
autoescapes every value. Failed logins are throttled per account (``AuthService``)
and per client (``LoginThrottle``, a keyed hash of the address, in memory only).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from assistant.auth import (
    PERMISSIONS,
    ROLES,
    AccessDenied,
    Account,
    AccountLocked,
    AuthError,
    AuthService,
    CsrfFailed,
    InvalidCredentials,
    NotAuthenticated,
    Principal,
    WeakPassword,
    cookie_name,
    csrf_cookie_name,
    generate_password,
    login_throttle,
    request_client,
)
from assistant.db.models import utcnow
from assistant.errors import AssistantError
from assistant.risk.taxonomy import LABELS_VI as CATEGORY_LABELS
from escalation import audit, states, stats
from escalation.errors import Forbidden, InvalidReportEdit, ReportNotFound
from escalation.models import TipReportRow
from escalation.schemas import TipReportUpdate
from escalation.service import EscalationService, ReportFilters, aware
from escalation.wards import load_wards, ward_by_code

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "web_widget" / "console"
TEMPLATES_DIR = CONSOLE_DIR / "templates"
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
VN_TZ = timezone(timedelta(hours=7))
DEADLINE_HOURS = 12
NEAR_DEADLINE_HOURS = 9

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

ROLE_LABELS = {"counselor": "Tư vấn viên", "supervisor": "Giám sát", "admin": "Quản trị", "auditor": "Kiểm toán"}
SEVERITY_LABELS = {4: "Khẩn cấp", 3: "Cao", 2: "Trung bình", 1: "Thấp", 0: "Không"}
PLACE_LABELS = {"online": "Trên mạng", "home": "Ở nhà", "school": "Ở trường", "other": "Nơi khác",
                "unknown": "Chưa rõ"}
ONGOING_LABELS = {"ongoing": "Đang tiếp diễn", "once": "Một lần", "unknown": "Chưa rõ"}
GENDER_LABELS = {"female": "Nữ", "male": "Nam", "other": "Khác"}
RELATIONSHIP_LABELS = {
    "parent": "Cha/mẹ", "step_parent": "Cha/mẹ kế", "relative": "Họ hàng", "teacher": "Thầy cô",
    "neighbour": "Hàng xóm", "online_contact": "Người quen trên mạng", "peer": "Bạn bè", "partner": "Người yêu",
    "employer": "Chủ lao động", "stranger": "Người lạ", "other": "Khác",
}
REPORTER_LABELS = {"child": "Trẻ tự kể", "parent": "Phụ huynh/người thân", "other": "Người khác"}
OK_MESSAGES = {
    "edited": "Đã lưu thay đổi.",
    "approved": "Đã duyệt. Báo cáo đang được gửi đến cơ quan tiếp nhận.",
    "dismissed": "Đã bỏ qua báo cáo.",
    "closed": "Đã đóng báo cáo.",
    "merged": "Đã gộp báo cáo.",
    "assigned": "Đã giao báo cáo.",
    "note": "Đã thêm ghi chú.",
    "acknowledged": "Đã ghi nhận cơ quan tiếp nhận.",
    "redelivered": "Đã xếp lịch gửi lại.",
    "account": "Đã cập nhật tài khoản.",
}
REPORT_ACTIONS = ("edit", "approve", "dismiss", "close", "merge", "assign", "note", "acknowledge", "redeliver",
                  "export")

router = APIRouter(prefix="/console", include_in_schema=False)


# -- rendering ------------------------------------------------------------------------
def vn_time(value: str | datetime | None) -> str:
    if not value:
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return aware(moment).astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M")


def duration(hours: float | None) -> str:
    if hours is None:
        return "–"
    minutes = int(round(hours * 60))
    if minutes < 60:
        return f"{minutes} phút"
    if minutes < 48 * 60:
        return f"{minutes // 60} giờ {minutes % 60:02d} phút"
    return f"{minutes // (24 * 60)} ngày {minutes // 60 % 24} giờ"


def minutes_text(value: float | None) -> str:
    return "–" if value is None else duration(value / 60)


def ward_name(code: int | None) -> str:
    ward = ward_by_code(code) if code is not None else None
    return ward.name if ward else "Chưa rõ"


@lru_cache(maxsize=1)
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(vn_time=vn_time, duration=duration, minutes=minutes_text, ward=ward_name)
    env.globals.update(
        CATEGORY_LABELS=CATEGORY_LABELS, STATUS_LABELS=states.LABELS_VI, SEVERITY_LABELS=SEVERITY_LABELS,
        ROLE_LABELS=ROLE_LABELS, PLACE_LABELS=PLACE_LABELS, ONGOING_LABELS=ONGOING_LABELS,
        GENDER_LABELS=GENDER_LABELS, RELATIONSHIP_LABELS=RELATIONSHIP_LABELS, REPORTER_LABELS=REPORTER_LABELS,
        ROLES=ROLES,
    )
    return env


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = templates().get_template(name).render(**context)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


class View:
    """What every page template gets: who is logged in and the session's CSRF token."""

    def __init__(self, request: Request, principal: Principal | None) -> None:
        self.request = request
        self.principal = principal
        secure = _auth(request).settings.cookie_secure
        self.csrf = request.cookies.get(csrf_cookie_name(secure), "") if principal else ""

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(name, status, me=self.principal, csrf=self.csrf, path=self.request.url.path, **context)

    def error(self, status: int, title: str, message: str) -> HTMLResponse:
        return self.page("error.html", status, title=title, message=message)


def _auth(request: Request) -> AuthService:
    service: AuthService = request.app.state.services.auth
    return service


def _escalation(request: Request) -> EscalationService:
    service: EscalationService = request.app.state.services.escalation
    return service


def _resolve(request: Request, csrf: str | None) -> Principal:
    service = _auth(request)
    token = request.cookies.get(cookie_name(service.settings.cookie_secure))
    return service.resolve(token, csrf, request.method, request_client(request))


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path if request.method == "GET" else "/console/queue"
    return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303, headers=HEADERS)


Handler = Callable[[View, FormData | None], Response]


async def _run(request: Request, handler: Handler, post: bool = False) -> Response:
    """Resolve the session (and the CSRF token of a POST), run the handler, turn errors into pages."""
    form = await request.form(max_files=0, max_fields=200) if post else None

    def run() -> Response:
        view = View(request, None)
        try:
            csrf = str(form.get("csrf_token") or "") if form is not None else None
            view = View(request, _resolve(request, csrf))
            return handler(view, form)
        except NotAuthenticated:
            return _login_redirect(request)
        except CsrfFailed:
            return view.error(403, "Yêu cầu bị từ chối",
                              "Thiếu mã chống giả mạo (CSRF) hoặc mã không đúng. Hãy tải lại trang rồi thử lại.")
        except (AccessDenied, Forbidden):
            return view.error(403, "Không có quyền truy cập",
                              "Tài khoản của bạn không được xem hoặc làm việc này (403).")
        except ReportNotFound:
            return view.error(404, "Không tìm thấy", "Không tìm thấy báo cáo này (404).")

    return await run_in_threadpool(run)


def _ok(url: str, key: str) -> RedirectResponse:
    sep = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{sep}ok={key}", status_code=303, headers=HEADERS)


def _field(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value.strip() if isinstance(value, str) else ""


# -- static ---------------------------------------------------------------------------
@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response("Không tìm thấy.", status_code=404, media_type="text/plain; charset=utf-8")
    body = (CONSOLE_DIR / name).read_bytes()
    return Response(body, media_type=STATIC[name],
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


# -- login / logout -------------------------------------------------------------------------
def _safe_next(target: str) -> str:
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


@router.get("/login")
def login_page(request: Request, next: str = "/console/") -> Response:  # noqa: A002 - the query name
    try:
        principal = _resolve(request, None)
    except AuthError:
        principal = None
    if principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303, headers=HEADERS)
    return render("login.html", next=_safe_next(next), me=None, out=request.query_params.get("out") == "1")


@router.post("/login")
async def login_submit(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    return await run_in_threadpool(_login, request, form)


def _login(request: Request, form: FormData) -> Response:
    service = _auth(request)
    client = request_client(request)
    target = _safe_next(_field(form, "next"))
    username = _field(form, "username")[:64]
    password = str(form.get("password") or "")[:256]
    code = _field(form, "totp")[:10] or None
    throttle = login_throttle(request)
    try:
        throttle.check(client)
        if not username or not password:
            raise InvalidCredentials("Hãy nhập tên đăng nhập và mật khẩu.", "Username and password are required.")
        result = service.login(username, password, code, client)
    except InvalidCredentials as exc:
        throttle.failed(client)
        return render("login.html", 401, next=target, me=None, error=exc.message_vi, username=username)
    except AccountLocked as exc:
        return render("login.html", 429, next=target, me=None, error=exc.message_vi, username=username)
    secure = service.settings.cookie_secure
    # Session fixation: a session cookie the browser brought along is never adopted; if it
    # was a live session, it ends now. The new session has a fresh random id.
    old = request.cookies.get(cookie_name(secure))
    if old:
        with contextlib.suppress(AuthError):
            service.logout(service.resolve(old, None, "GET", client))
    response = RedirectResponse(target, status_code=303, headers=HEADERS)
    max_age = int((result.expires_at - datetime.now(UTC)).total_seconds())
    response.set_cookie(cookie_name(secure), result.token, max_age=max_age, path="/", secure=secure,
                        httponly=True, samesite="strict")
    response.set_cookie(csrf_cookie_name(secure), result.csrf_token, max_age=max_age, path="/", secure=secure,
                        httponly=False, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        assert view.principal is not None
        service = _auth(request)
        service.logout(view.principal)
        secure = service.settings.cookie_secure
        response = RedirectResponse("/console/login?out=1", status_code=303, headers=HEADERS)
        response.delete_cookie(cookie_name(secure), path="/", secure=secure, httponly=True, samesite="strict")
        response.delete_cookie(csrf_cookie_name(secure), path="/", secure=secure, samesite="strict")
        return response

    return await _run(request, handler, post=True)


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        p = view.principal
        assert p is not None
        target = ("/console/queue" if p.can("reports:read") else "/console/accounts" if p.can("accounts:manage")
                  else "/console/audit" if p.can("audit:read") else "/console/stats")
        return RedirectResponse(target, status_code=303, headers=HEADERS)

    return await _run(request, handler)


# -- queue ---------------------------------------------------------------------------------
QUEUE_VIEWS = {
    "open": (states.PENDING_REVIEW, states.APPROVED, states.SENT, states.ACKNOWLEDGED),
    "pending": (states.PENDING_REVIEW,),
    "sent": (states.APPROVED, states.SENT, states.ACKNOWLEDGED),
    "done": (states.CLOSED, states.DISMISSED, states.MERGED),
    "all": (),
}


def _int(value: str, low: int, high: int) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


def deadline_state(item: Mapping[str, Any]) -> str:
    """``overdue`` / ``near`` / ``""``: how close a report waiting for action is to the 12-hour limit."""
    if item["status"] not in (states.PENDING_REVIEW, states.APPROVED):
        return ""
    hours = float(item["waiting_hours"])
    if hours >= DEADLINE_HOURS:
        return "overdue"
    if hours >= NEAR_DEADLINE_HOURS or item.get("near_deadline"):
        return "near"
    return ""


def _matches(item: Mapping[str, Any], query: str) -> bool:
    haystack = " ".join(
        str(x) for x in (
            item["id"], item.get("ward_name") or "", item.get("assigned_to") or "", item["channel"],
            " ".join(CATEGORY_LABELS.get(c, c) for c in item["categories"]), states.LABELS_VI[item["status"]],
        )
    ).lower()
    return all(word in haystack for word in query.lower().split())


@router.get("/queue")
async def queue(request: Request) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        p = view.principal
        assert p is not None
        q = request.query_params
        which = q.get("view", "open") if q.get("view", "open") in QUEUE_VIEWS else "open"
        category = q.get("category", "")
        filters = ReportFilters(
            status=QUEUE_VIEWS[which],
            severity=_int(q.get("severity", ""), 0, 4),
            category=category if category in CATEGORY_LABELS and category != "none" else None,
            ward=_int(q.get("ward", ""), 1, 10**6),
            assigned=q.get("assigned") if q.get("assigned") in ("me", "none") else None,
            limit=200,
        )
        search = q.get("q", "").strip()[:100]
        result = _escalation(request).list_reports(p, filters)
        items = [dict(item, deadline=deadline_state(item)) for item in result["items"]]
        if search:
            items = [item for item in items if _matches(item, search)]
        return view.page(
            "queue.html", items=items, total=result["total"], view_name=which, search=search,
            selected={"severity": q.get("severity", ""), "category": filters.category or "",
                      "ward": str(filters.ward or ""), "assigned": filters.assigned or ""},
            wards=load_wards(), refresh=True,
        )

    return await _run(request, handler)


# -- one report ---------------------------------------------------------------------------
def _report_page(view: View, report_id: str, status: int = 200, errors: list[str] | None = None,
                 form_values: Mapping[str, str] | None = None) -> HTMLResponse:
    assert view.principal is not None
    data = _escalation(view.request).read(view.principal, report_id)
    report = data["report"]
    summary = dict(data["summary"], deadline=deadline_state(data["summary"]))
    ok = OK_MESSAGES.get(view.request.query_params.get("ok", ""))
    evidence_ids = {item["message_id"] for item in report["evidence"]["items"]}
    service = _escalation(view.request)
    with service.db.session() as session:
        row = session.get(TipReportRow, report_id)
        candidates = session.scalars(
            select(Account).where(Account.disabled.is_(False), Account.role.in_(("counselor", "supervisor")))
            .order_by(Account.username)
        ).all()
        assignable = [
            a.username for a in candidates
            if row is not None and service.can_see(
                Principal(a.id, a.username, a.role, tuple(a.agencies or ()), tuple(a.wards or ()),
                          permissions=PERMISSIONS.get(a.role, frozenset())), row)
        ]
    return view.page(
        "report.html", status, report=report, summary=summary, conversation=data["conversation"],
        routing=data["routing"], evidence_ids=evidence_ids, ok=ok, errors=errors or [],
        values=form_values or {}, wards=load_wards(), assignable=assignable,
        editable=report["handling"]["status"] in states.EDITABLE_STATUSES and view.principal.can("reports:act"),
        can_act=view.principal.can("reports:act"),
    )


def _report_id(value: str) -> str:
    return value.strip().upper()[:32]


@router.get("/reports/{report_id}")
async def report_page(request: Request, report_id: str) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        return _report_page(view, _report_id(report_id))

    return await _run(request, handler)


def _optional_bool(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


def edit_from_form(form: FormData, current: Mapping[str, Any]) -> TipReportUpdate:
    """Only the fields that differ from the report as read (raises ValidationError)."""
    incident, child, person = current["incident"], current["child"], current["reported_person"]
    patch: dict[str, Any] = {"version": _field(form, "version") or "0"}
    inc: dict[str, Any] = {}
    description = str(form.get("description") or "").strip()
    if description != incident["description"]:
        inc["description"] = description
    when = _field(form, "when") or None
    if when != incident.get("when"):
        inc["when"] = when
    for name in ("ongoing", "place"):
        value = _field(form, name)
        if value and value != incident[name]:
            inc[name] = value
    primary = _field(form, "primary_category")
    if primary and primary != incident["primary_category"]:
        inc["primary_category"] = primary
        if primary not in incident["categories"]:
            inc["categories"] = [primary, *incident["categories"]]
    ward = _field(form, "ward_code")
    current_ward = (incident.get("ward") or {}).get("code")
    if (int(ward) if ward.isdigit() else None) != current_ward:
        inc["ward_code"] = ward or None
    age = _field(form, "age")
    new_age: Any = int(age) if age.isdigit() else (age or None)
    ch: dict[str, Any] = {"age": new_age} if new_age != child.get("age") else {}
    gender = _field(form, "gender") or None
    if gender != child.get("gender"):
        ch["gender"] = gender
    for name in ("safe_now", "carer_knows"):
        flag = _optional_bool(_field(form, name))
        if flag != child.get(name):
            ch[name] = flag
    rp: dict[str, Any] = {}
    relationship = _field(form, "relationship") or None
    if relationship != person.get("relationship"):
        rp["relationship"] = relationship
    for name in ("screen_names", "phone_numbers", "profile_urls"):
        values = _list(str(form.get(name) or ""))
        if values != person.get(name, []):
            rp[name] = values
    severity = _field(form, "severity")
    if severity and severity != str(current["urgency"]["severity"]):
        patch["severity"] = severity
    if inc:
        patch["incident"] = inc
    if ch:
        patch["child"] = ch
    if rp:
        patch["reported_person"] = rp
    return TipReportUpdate.model_validate(patch)


FIELD_LABELS = {
    "description": "Mô tả", "when": "Thời gian", "ongoing": "Tiếp diễn", "place": "Nơi xảy ra",
    "primary_category": "Loại chính", "categories": "Các loại", "ward_code": "Phường/xã", "age": "Tuổi",
    "gender": "Giới tính", "safe_now": "An toàn lúc này", "carer_knows": "Người chăm sóc biết",
    "relationship": "Quan hệ", "screen_names": "Tên tài khoản", "phone_numbers": "Số điện thoại",
    "profile_urls": "Đường dẫn trang cá nhân", "severity": "Mức độ", "version": "Phiên bản",
}


def _validation_messages(exc: ValidationError) -> list[str]:
    out = []
    for error in exc.errors():
        parts = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
        name = next((FIELD_LABELS[p] for p in reversed(parts) if p in FIELD_LABELS), ".".join(parts) or "?")
        out.append(f"{name}: giá trị không hợp lệ ({error.get('msg', '')}).")
    return out


def _values(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _report_action(view: View, form: FormData, report_id: str, action: str) -> Response:
    p = view.principal
    assert p is not None
    service = _escalation(view.request)
    url = f"/console/reports/{report_id}"
    try:
        if action == "edit":
            current = service.read(p, report_id)["report"]
            service.edit(p, report_id, edit_from_form(form, current))
            return _ok(url, "edited")
        if action == "approve":
            service.approve(p, report_id)
            return _ok(url, "approved")
        if action in ("dismiss", "close"):
            reason = _field(form, "reason")
            if len(reason) < 5:
                return _report_page(view, report_id, 422, ["Cần ghi lý do (ít nhất 5 ký tự)."])
            (service.dismiss if action == "dismiss" else service.close)(p, report_id, reason[:2000])
            return _ok(url, "dismissed" if action == "dismiss" else "closed")
        if action == "merge":
            into = _report_id(_field(form, "into"))
            service.merge(p, report_id, into)
            return _ok(f"/console/reports/{into}", "merged")
        if action == "assign":
            service.assign(p, report_id, _field(form, "username") or None)
            return _ok(url, "assigned")
        if action == "note":
            text = _field(form, "text")[:4000]
            if not text:
                return _report_page(view, report_id, 422, ["Ghi chú không được để trống."])
            service.add_note(p, report_id, text)
            return _ok(url, "note")
        if action == "acknowledge":
            service.acknowledge(p, report_id, _field(form, "agency"), _field(form, "reference")[:200] or None)
            return _ok(url, "acknowledged")
        if action == "redeliver":
            service.redeliver(p, report_id)
            return _ok(url, "redelivered")
        if action == "export":
            fmt = "pdf" if _field(form, "format") == "pdf" else "json"
            try:
                _auth(view.request).reauthenticate(p, str(form.get("password") or "")[:256],
                                                   _field(form, "totp")[:10] or None)
            except InvalidCredentials:
                login_throttle(view.request).failed(p.client)
                return _report_page(view, report_id, 401, ["Xuất báo cáo: mật khẩu hoặc mã xác thực không đúng."])
            data, media_type, filename = service.export(p, report_id, fmt)
            return Response(data, media_type=media_type, headers={
                **HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'})
    except ValidationError as exc:
        return _report_page(view, report_id, 422, _validation_messages(exc), form_values=_values(form))
    except InvalidReportEdit as exc:
        messages = [f"{FIELD_LABELS.get(f['field'].split('.')[-1], f['field'])}: {f['problem']}"
                    for f in exc.fields] or [exc.message_vi]
        return _report_page(view, report_id, 422, messages, form_values=_values(form))
    except (Forbidden, ReportNotFound, AuthError):
        raise
    except AssistantError as exc:  # illegal transition, stale version ...
        return _report_page(view, report_id, exc.status_code, [exc.message_vi])
    return view.error(404, "Không tìm thấy", "Không có thao tác này.")


@router.post("/reports/{report_id}/{action}")
async def report_action(request: Request, report_id: str, action: str) -> Response:
    rid = _report_id(report_id)

    def handler(view: View, form: FormData | None) -> Response:
        assert form is not None
        if action not in REPORT_ACTIONS:
            return view.error(404, "Không tìm thấy", "Không có thao tác này.")
        return _report_action(view, form, rid, action)

    return await _run(request, handler, post=True)


# -- statistics ---------------------------------------------------------------------------
def bar_chart(data: Mapping[str, int | float], labels: Mapping[str, str] | None = None,
              limit: int = 12) -> dict[str, Any]:
    """Horizontal bars for an inline SVG (geometry computed here; the template only draws)."""
    items = list(data.items())[:limit]
    top = max((float(v) for _, v in items), default=0) or 1
    bars = []
    for i, (key, value) in enumerate(items):
        bars.append({"label": (labels or {}).get(key, key), "value": value, "y": 8 + i * 30,
                     "width": max(2, round(300 * float(value) / top))})
    return {"bars": bars, "height": 16 + len(bars) * 30}


def month_chart(data: Mapping[str, int]) -> dict[str, Any]:
    items = list(data.items())[-12:]
    top = max((v for _, v in items), default=0) or 1
    columns = []
    for i, (month, value) in enumerate(items):
        height = max(2, round(140 * value / top))
        columns.append({"label": f"{month[5:]}/{month[2:4]}", "value": value, "x": 40 + i * 50,
                        "y": 170 - height, "height": height})
    return {"columns": columns, "width": 60 + len(columns) * 50}


def deadline_chart(within: Mapping[str, Any]) -> dict[str, Any]:
    parts = [("handled_in_time", "Xử lý trong 12 giờ", "ok"), ("handled_late", "Xử lý quá 12 giờ", "late"),
             ("open_past_deadline", "Chưa xử lý, quá 12 giờ", "overdue"),
             ("open_within_deadline", "Chưa xử lý, còn trong hạn", "waiting")]
    total = sum(int(within.get(k) or 0) for k, _, _ in parts) or 1
    x = 0.0
    segments = []
    for key, label, css in parts:
        value = int(within.get(key) or 0)
        width = 600 * value / total
        segments.append({"label": label, "value": value, "x": round(x, 1), "width": round(width, 1), "css": css})
        x += width
    share = within.get("share")
    return {"segments": segments, "share": None if share is None else math.floor(float(share) * 1000) / 10}


def _stats(view: View) -> dict[str, Any]:
    assert view.principal is not None
    view.principal.require("stats:read")
    service = _escalation(view.request)
    with service.db.session() as session:
        result = stats.compute(session, utcnow())
        audit.record(session, "StatisticsRead", view.principal, "stats", None, {"via": "console"})
    return result


@router.get("/stats")
async def stats_page(request: Request) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        data = _stats(view)
        return view.page(
            "stats.html", data=data,
            category_chart=bar_chart(data["by_category"], CATEGORY_LABELS),
            ward_chart=bar_chart(data["by_ward"], {"unknown": "Chưa rõ"}, limit=10),
            month_chart=month_chart(data["by_month"]),
            deadline=deadline_chart(data["within_12h"]),
        )

    return await _run(request, handler)


def stats_csv(data: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "key", "value"])
    writer.writerow(["total", "", data["total"]])
    for section in ("by_category", "by_severity", "by_ward", "by_month", "by_channel", "by_status"):
        for key, value in data[section].items():
            writer.writerow([section, key, value])
    for section in ("minutes_to_review", "minutes_to_sent", "minutes_to_acknowledged", "within_12h"):
        for key, value in data[section].items():
            writer.writerow([section, key, "" if value is None else value])
    return out.getvalue()


@router.get("/stats.csv")
async def stats_export(request: Request) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        body = stats_csv(_stats(view))
        stamp = datetime.now(VN_TZ).strftime("%Y%m%d")
        # The CSV holds counts only (no report content): a spreadsheet formula cannot hide in it
        # because every value is a number, a code or a ward name from the shipped list.
        return Response("\ufeff" + body, media_type="text/csv; charset=utf-8", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="thong-ke-{stamp}.csv"'})

    return await _run(request, handler)


# -- audit log --------------------------------------------------------------------------
@router.get("/audit")
async def audit_page(request: Request) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        p = view.principal
        assert p is not None
        p.require("audit:read")
        q = request.query_params
        actor = q.get("actor", "").strip()[:64] or None
        action = q.get("action", "").strip()[:64] or None
        object_id = q.get("object_id", "").strip()[:64] or None
        before = _int(q.get("before_id", ""), 1, 2**62)
        with _escalation(request).db.session() as session:
            rows = audit.entries(session, object_id=object_id, actor=actor, actions=[action] if action else None,
                                 limit=100, before_id=before)
            items = [{"id": e.id, "at": e.at, "actor": e.actor, "role": e.actor_role, "action": e.action,
                      "object_type": e.object_type, "object_id": e.object_id, "client": e.client,
                      "details": e.details} for e in rows]
            audit.record(session, "AuditLogRead", p, "audit_log", None, {"count": len(items), "via": "console"})
        older = None
        if len(items) == 100:
            older = "?" + urlencode({k: v for k, v in {"actor": actor, "action": action, "object_id": object_id,
                                                       "before_id": items[-1]["id"]}.items() if v})
        return view.page("audit.html", items=items, filters={"actor": actor or "", "action": action or "",
                                                               "object_id": object_id or ""}, older=older)

    return await _run(request, handler)


# -- accounts ----------------------------------------------------------------------------
def _accounts_page(view: View, status: int = 200, **extra: Any) -> HTMLResponse:
    accounts = _auth(view.request).list_accounts()
    ok = OK_MESSAGES.get(view.request.query_params.get("ok", ""))
    return view.page("accounts.html", status, accounts=accounts, ok=ok, wards=load_wards(),
                     agencies=sorted(_escalation(view.request).router.config.agencies), **extra)


@router.get("/accounts")
async def accounts_page(request: Request) -> Response:
    def handler(view: View, _form: FormData | None) -> Response:
        assert view.principal is not None
        view.principal.require("accounts:manage")
        return _accounts_page(view)

    return await _run(request, handler)


def _record_admin(view: View, action: str, username: str, details: dict[str, Any]) -> None:
    with _escalation(view.request).db.session() as session:
        audit.record(session, action, view.principal, "account", None, {"username": username, **details})


@router.post("/accounts/{action}")
async def accounts_action(request: Request, action: str) -> Response:
    def handler(view: View, form: FormData | None) -> Response:
        assert view.principal is not None and form is not None
        view.principal.require("accounts:manage")
        service = _auth(request)
        username = _field(form, "username").lower()[:64]
        try:
            if action == "create":
                role = _field(form, "role")
                agencies = form.getlist("agency")
                wards = [int(w) for w in form.getlist("ward") if isinstance(w, str) and w.isdigit()]
                password = generate_password()
                account, secret = service.create_account(
                    username, role, password, [str(a) for a in agencies], wards,
                    totp=service.settings.require_totp or form.get("totp") == "on",
                )
                _record_admin(view, "AccountCreatedInConsole", username, {"role": role})
                return _accounts_page(view, 201, created={
                    "username": account.username, "password": password, "totp_secret": secret,
                    "totp_uri": service.totp_uri(account.username, secret) if secret else None})
            if action in ("disable", "enable"):
                if action == "disable" and username == view.principal.username:
                    return _accounts_page(view, 409, error="Không thể tự khoá tài khoản của chính mình.")
                service.set_disabled(username, action == "disable")
                _record_admin(view, f"Account{action.title()}dInConsole", username, {})
                return _ok("/console/accounts", "account")
            if action == "totp":
                secret = service.reset_totp(username)
                _record_admin(view, "AccountTotpResetInConsole", username, {})
                return _accounts_page(view, created={"username": username, "password": None, "totp_secret": secret,
                                                     "totp_uri": service.totp_uri(username, secret)})
        except (ValueError, WeakPassword) as exc:
            message = exc.message_vi if isinstance(exc, WeakPassword) else str(exc)
            return _accounts_page(view, 422, error=f"Không thực hiện được: {message}")
        return view.error(404, "Không tìm thấy", "Không có thao tác này.")

    return await _run(request, handler, post=True)
