"""The console in real headless Chromium against a real uvicorn server on 127.0.0.1,
with the delivery worker running in the app (``run_worker=True``) and a real receiver
that verifies the Standard Webhooks signature of every delivery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from assistant.db.models import utcnow
from escalation.models import TipReportRow
from tests.console.conftest import NON_URGENT, OUTPUT, PASSWORD, URGENT, ConsoleEnv, console_env
from tests.web_widget.conftest import ServiceServer

pytestmark = pytest.mark.browser

CONTEXT = "em 12 tuổi, nhà em ở phường Biên Hòa"
EDITED = "Trẻ 12 tuổi ở phường Biên Hòa kể người đàn ông lớn tuổi đến nhà tối nay và xâm hại. <img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, services: Any) -> Iterator[tuple[ConsoleEnv, ServiceServer]]:
    tmp = tmp_path_factory.mktemp("console")
    with console_env(tmp, f"sqlite:///{tmp / 'console.sqlite3'}", services, run_worker=True) as env:
        server = ServiceServer(env.app).start()
        try:
            yield env, server
        finally:
            server.stop()


def _chat(origin: str, text: str, conversation_id: str | None = None) -> str:
    body: dict[str, Any] = {"text": text, "audience": "child"}
    if conversation_id:
        body["conversation_id"] = conversation_id
    r = httpx.post(f"{origin}/api/v1/chat", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["conversation_id"])


def _context(browser: Any, width: int = 1280, height: int = 800) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN")
    context.set_default_timeout(15_000)
    return context


def _login(page: Any, origin: str, username: str, totp: str | None = None) -> None:
    page.goto(f"{origin}/console/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    if totp:
        page.get_by_label("Mã xác thực 2 lớp").fill(totp)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_load_state()


def _shot(page: Any, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_counselor_approves_an_urgent_report_and_the_signed_delivery_arrives(
    live: tuple[ConsoleEnv, ServiceServer], browser: Any
) -> None:
    env, server = live
    origin = server.origin
    # An older, non-urgent report close to the 12-hour limit (10 hours old).
    _chat(origin, NON_URGENT)
    (old,) = env.reports()
    with env.db.session() as s:
        row = s.get(TipReportRow, old.id)
        assert row is not None
        row.created_at = row.first_disclosure_at = utcnow() - timedelta(hours=10)
    # The new urgent disclosure, through the chat API as the widget sends it.
    cid = _chat(origin, CONTEXT)
    _chat(origin, URGENT, cid)
    urgent = next(r for r in env.reports() if r.conversation_id == cid)
    assert urgent.urgent and urgent.severity == 4 and urgent.ward_code == 26068

    context = _context(browser)
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    code = pyotp.TOTP(env.accounts.totp["c-bienhoa"]).now()
    _login(page, origin, "c-bienhoa", code)
    assert page.url.endswith("/console/queue"), page.url
    rows = page.locator("table.queue tbody tr")
    assert rows.first.get_attribute("data-report") == urgent.id, "the urgent report is at the top"
    assert "Khẩn cấp" in rows.first.inner_text()
    old_row = page.locator(f'tr[data-report="{old.id}"]')
    assert "Gần hạn 12 giờ" in old_row.inner_text()
    _shot(page, "queue-1280x800.png")

    # Keyboard: the report link is reachable and opens with Enter.
    rows.first.locator("a.rid").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/reports/{urgent.id}")
    response = page.request.get(f"{origin}/console/reports/{urgent.id}")
    assert response.headers["cache-control"] == "no-store"
    page.get_by_label("Mô tả (tối đa 4000 ký tự)").fill(EDITED)
    page.get_by_role("button", name="Lưu thay đổi").click()
    page.wait_for_load_state()
    assert "Đã lưu thay đổi" in page.locator(".notice.ok").inner_text()
    assert page.locator("#description-text").inner_text() == EDITED  # shown as text
    assert page.locator("#description-text img").count() == 0  # never as markup

    started = time.monotonic()
    page.get_by_role("button", name="Duyệt và gửi").click()
    page.wait_for_load_state()
    assert "Đã duyệt" in page.locator(".notice.ok").inner_text()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(k.startswith(urgent.id) for k in env.store.received):
        time.sleep(0.1)
    arrived = [v for k, v in env.store.received.items() if k.startswith(urgent.id)]
    assert arrived, "the signed delivery did not arrive"
    assert env.store.rejected_signatures == 0
    payload = arrived[0].payload
    assert payload["type"] == "tip_report.approved"
    assert payload["data"]["incident"]["description"] == EDITED
    print(f"checked: approved -> signed webhook verified by the receiver in {time.monotonic() - started:.2f} s, "
          f"{len(arrived)} delivery(ies) for {urgent.id}")
    # The deliveries show on the report page once the worker has recorded them.
    for _ in range(50):
        page.reload()
        if page.locator("#deliveries tr.delivery-delivered").count() >= 1:
            break
        time.sleep(0.2)
    assert page.locator("#deliveries tr.delivery-delivered").count() >= 1
    _shot(page, "report-1280x800.png")

    # A state-changing POST without the CSRF token is refused (and changes nothing).
    r = page.request.post(f"{origin}/console/reports/{urgent.id}/note", form={"text": "không có mã CSRF"})
    assert r.status == 403 and "CSRF" in r.text()
    r = page.request.post(f"{origin}/console/reports/{urgent.id}/note",
                          form={"text": "mã sai", "csrf_token": "x" * 43})
    assert r.status == 403

    # Tablet width: the report page reflows to one column.
    page.set_viewport_size({"width": 820, "height": 1180})
    page.reload()
    _shot(page, "report-tablet-820.png")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Logout ends the session on the server: the old cookie no longer works anywhere.
    cookie = next(c for c in context.cookies() if c["name"] == "assistant_session")
    page.goto(f"{origin}/console/queue")
    page.get_by_role("button", name="Đăng xuất").click()
    page.wait_for_url("**/console/login?out=1")
    assert httpx.get(f"{origin}/api/v1/auth/me", cookies={"assistant_session": cookie["value"]}).status_code == 401
    replay = _context(browser)
    replay.add_cookies([cookie])
    other = replay.new_page()
    other.goto(f"{origin}/console/queue")
    assert "/console/login" in other.url
    replay.close()
    assert not errors and not dialogs, (errors, dialogs)
    context.close()

    # A counselor of another ward cannot open the report: a 403 page.
    context = _context(browser)
    page = context.new_page()
    _login(page, origin, "c-longkhanh")
    assert page.locator("table.queue tbody tr").count() == 0
    response = page.goto(f"{origin}/console/reports/{urgent.id}")
    assert response is not None and response.status == 403
    assert "Không có quyền" in page.locator("h1").inner_text()
    context.close()

    # A supervisor's statistics page (charts drawn as inline SVG) and its CSV.
    context = _context(browser)
    page = context.new_page()
    _login(page, origin, "sup")
    page.goto(f"{origin}/console/stats")
    assert page.locator("svg[aria-labelledby=c-cat] rect.bar").count() >= 1
    assert page.locator("svg[aria-labelledby=c-month] rect.bar").count() >= 1
    _shot(page, "stats-1280x800.png")
    with page.expect_download() as download:
        page.get_by_role("link", name="Tải CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert text.startswith("section,key,value") and "by_category,sexual_abuse," in text
    context.close()
