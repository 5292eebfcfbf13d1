""""Dữ liệu của em" in real headless Chromium: the one-time code shown once, the
conversation downloaded with it, deleted after a confirmation, and the legal hold
explained; plus the widget config's texts (API)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assistant.db import Conversation
from assistant.privacy.models import ConsentRecord, RightsCode
from tests.web_widget.conftest import Page, ServiceServer
from tests.web_widget.test_widget import DISCLOSURE, QUESTION, assert_clean, run_axe, send, start_chat, stored

CODE = re.compile(r"^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$")


def open_privacy(p: Page) -> Any:
    p.page.get_by_role("button", name="Dữ liệu của em").click()
    region = p.page.get_by_role("region", name="Dữ liệu của em")
    region.wait_for()
    return region


def get_code(p: Page) -> str:
    p.page.get_by_role("button", name="Lấy mã dùng một lần").click()
    code = p.page.locator("#bat-issued-code")
    code.wait_for()
    text = code.inner_text().strip()
    assert CODE.match(text), text
    return text


def conversation_exists(services: Any, conversation_id: str) -> bool:
    with services.db.session() as s:
        return s.get(Conversation, conversation_id) is not None


@pytest.mark.browser
def test_the_code_is_shown_once_and_downloads_the_conversation(
    open_page: Callable[..., Page], service: ServiceServer, services: Any, output_dir: Path
) -> None:
    p = open_page()
    page = p.page
    start_chat(p)
    send(p, QUESTION)
    conversation_id = stored(p, service)["session"]["conversationId"]
    region = open_privacy(p)
    assert region.get_by_text("Em có quyền xem lại, tải về hoặc xoá").is_visible()
    with page.expect_request("**/api/v1/privacy/code") as req:
        code = get_code(p)
    assert req.value.post_data_json == {"conversation_id": conversation_id}
    assert region.get_by_text("chỉ hiện một lần").is_visible()
    assert region.get_by_text("đừng đưa cho ai").is_visible()
    assert region.get_by_label("Nhập mã").input_value() == code  # ready to use
    assert code not in json.dumps(stored(p, service))  # never kept in the browser's storage
    page.screenshot(path=str(output_dir / "widget-privacy-code.png"))

    region.get_by_role("button", name="Xem và tải về").click()
    status = region.get_by_role("status")
    status.get_by_text("có 2 tin nhắn").wait_for()
    with page.expect_download() as download:
        region.get_by_role("link", name="Tải tệp về máy").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["conversation_id"] == conversation_id
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][0]["text"] == QUESTION
    assert data["consents"][0]["notice_version"] == "1"
    region.get_by_text("Xem nội dung").click()
    assert region.get_by_text(QUESTION).is_visible()  # shown as text, in the panel

    region.get_by_role("button", name="Xem và tải về").click()  # the code works once
    alert = region.get_by_role("alert")
    alert.get_by_text("đã dùng").wait_for()
    region.get_by_role("button", name="Quay lại").click()
    assert page.locator(".row.user").count() == 1  # back in the conversation, as it was
    assert conversation_exists(services, conversation_id)
    p.errors = [e for e in p.errors if "404" not in e]  # the browser logs the refused second use
    assert_clean(p)


@pytest.mark.browser
def test_deleting_asks_first_then_removes_the_conversation_here_and_on_the_server(
    open_page: Callable[..., Page], service: ServiceServer, services: Any
) -> None:
    p = open_page()
    page = p.page
    start_chat(p)
    send(p, "chào bạn")
    conversation_id = stored(p, service)["session"]["conversationId"]
    region = open_privacy(p)
    get_code(p)
    region.get_by_role("button", name="Xoá cuộc trò chuyện").click()
    assert region.get_by_text("Em chắc chắn muốn xoá").is_visible()
    keep = region.get_by_role("button", name="Thôi, giữ lại")
    assert keep.evaluate("b => b.getRootNode().activeElement === b")  # the safe choice has the focus
    keep.click()
    assert conversation_exists(services, conversation_id)

    region.get_by_role("button", name="Xoá cuộc trò chuyện").click()
    with page.expect_response("**/api/v1/privacy/delete") as response:
        region.get_by_role("button", name="Xoá hẳn").click()
    assert response.value.status == 200
    region.get_by_text("đã được xoá khỏi máy chủ").wait_for()
    assert region.get_by_text("Trò chuyện trên máy này cũng đã được xoá").is_visible()
    assert not conversation_exists(services, conversation_id)
    with services.db.session() as s:  # its consent record and codes went with it
        for model in (ConsentRecord, RightsCode):
            count = s.scalar(sa.select(sa.func.count()).select_from(model).where(model.conversation_id == conversation_id))
            assert count == 0
    saved = stored(p, service)["session"]
    assert saved["conversationId"] is None and saved["messages"] == [] and saved["started"] is False
    region.get_by_role("button", name="Quay lại").click()
    assert page.get_by_text("Trước khi bắt đầu").is_visible()  # a new conversation starts with the notice
    assert_clean(p)


@pytest.mark.browser
def test_a_conversation_under_legal_hold_is_not_deleted_and_the_child_is_told_why(
    open_page: Callable[..., Page], service: ServiceServer, services: Any
) -> None:
    p = open_page()
    start_chat(p)
    send(p, DISCLOSURE)
    conversation_id = stored(p, service)["session"]["conversationId"]
    region = open_privacy(p)
    get_code(p)
    region.get_by_role("button", name="Xoá cuộc trò chuyện").click()
    with p.page.expect_response("**/api/v1/privacy/delete") as response:
        region.get_by_role("button", name="Xoá hẳn").click()
    assert response.value.status == 409
    alert = region.get_by_role("alert")
    alert.get_by_text("chưa xoá được").wait_for()
    text = alert.inner_text()
    assert "không phải lỗi của em" in text and "mã mới" in text
    assert alert.locator('a[href="tel:111"]').count() == 1
    assert conversation_exists(services, conversation_id)
    assert stored(p, service)["session"]["conversationId"] == conversation_id  # nothing wiped here either
    p.errors = [e for e in p.errors if "409" not in e]
    assert_clean(p)


@pytest.mark.browser
def test_a_code_from_a_channel_can_be_used_before_any_message(
    open_page: Callable[..., Page], services: Any
) -> None:
    from tests.privacy.conftest import add_conversation

    conversation_id = add_conversation(services.db, "tin nhắn trên Zalo")
    assert services.privacy is not None
    code, _ = services.privacy.issue_code(conversation_id)
    p = open_page()
    page = p.page
    page.locator("button.launcher").click()
    region = open_privacy(p)  # from the first screen, before choosing who is chatting
    assert region.get_by_text("chưa gửi tin nhắn nào ở đây").is_visible()
    assert region.get_by_role("button", name="Lấy mã dùng một lần").count() == 0
    box = region.get_by_label("Nhập mã")
    box.fill("abc")
    region.get_by_role("button", name="Xem và tải về").click()
    assert region.get_by_role("alert").get_by_text("10 chữ và số").is_visible()
    box.fill("ABCDE-FGHJK")
    region.get_by_role("button", name="Xem và tải về").click()
    region.get_by_role("alert").get_by_text("Mã không đúng").wait_for()
    box.fill(code.lower().replace("-", " "))  # typed in any case, with a space
    region.get_by_role("button", name="Xem và tải về").click()
    region.get_by_role("status").get_by_text("có 2 tin nhắn").wait_for()
    assert region.get_by_role("alert").is_hidden()
    p.errors = [e for e in p.errors if "404" not in e]
    assert_clean(p)


@pytest.mark.browser
def test_the_data_view_is_accessible_and_fits_320_px(
    open_page: Callable[..., Page], output_dir: Path
) -> None:
    p = open_page(width=320, height=640)
    page = p.page
    start_chat(p)
    send(p, QUESTION)
    button = page.get_by_role("button", name="Dữ liệu của em")
    box = button.bounding_box()
    assert box and box["height"] >= 44
    region = open_privacy(p)
    get_code(p)
    region.get_by_role("button", name="Xoá cuộc trò chuyện").click()
    overflow = page.locator(".panel").evaluate(
        "panel => [...panel.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)"
        ".map(e => e.className)"
    )
    assert overflow == []
    for target in region.locator("button:visible, a:visible, input").all():
        size = target.bounding_box()
        assert size and size["height"] >= 44, target.inner_text()
    page.screenshot(path=str(output_dir / "widget-privacy-320x640.png"), full_page=True)
    assert run_axe(page) == []
    assert_clean(p)


# -- API -------------------------------------------------------------------------------------
def test_the_widget_config_carries_the_privacy_texts(client: Any) -> None:
    privacy = client.get("/api/v1/widget/config").json()["privacy"]
    assert privacy["title"] == "Dữ liệu của em"
    assert "{expires}" in privacy["code_intro"] and "111" in privacy["legal_hold"]
    assert all(isinstance(h, str) for h in privacy["how"])


def test_codes_are_refused_cleanly_for_unknown_conversations_and_bad_input(client: Any) -> None:
    assert client.post("/api/v1/privacy/code", json={"conversation_id": "f" * 32}).status_code == 404
    assert client.post("/api/v1/privacy/code", json={"conversation_id": "nope"}).status_code == 422
    assert client.post("/api/v1/privacy/export", json={"code": "abc"}).status_code == 422
    r = client.post("/api/v1/privacy/delete", json={"code": "ABCDE-FGHJK"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "code_invalid"
