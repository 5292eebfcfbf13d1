"""The chat widget in real headless Chromium, embedded on a page of another origin."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web_widget.conftest import Page, ServiceServer

pytestmark = pytest.mark.browser

QUESTION = "làm sao để đặt mật khẩu mạnh?"
DISCLOSURE = "chú hàng xóm sờ vào chỗ kín của em"
XSS = "<img src=x onerror=alert(1)><script>window.__xss = 1</script>"
SIZE_BUDGET = 60 * 1024
STORE_KEY = "ban-an-toan:{origin}"


def start_chat(p: Page, who: str = "Em là học sinh") -> None:
    page = p.page
    page.locator("button.launcher").click()
    page.get_by_role("button", name=who).click()
    page.locator("textarea").wait_for()


def send(p: Page, text: str) -> Any:
    """Type and send; returns the new bot bubble once it arrived."""
    page = p.page
    before = page.locator(".row.bot:not(.typing):not(.error)").count()
    page.locator("textarea").fill(text)
    page.locator("textarea").press("Enter")
    reply = page.locator(".row.bot:not(.typing):not(.error)").nth(before)
    reply.wait_for()
    return reply


def stored(p: Page, service: ServiceServer) -> dict[str, Any]:
    """What the widget keeps in the host page's storage (keyed by the service's origin)."""
    raw = p.page.evaluate(
        "k => ({session: sessionStorage.getItem(k), local: localStorage.getItem(k)})",
        STORE_KEY.format(origin=service.origin),
    )
    return {k: json.loads(v) if v else None for k, v in raw.items()}


def shadow_html(p: Page) -> str:
    return str(p.page.evaluate("document.querySelector('[data-ban-an-toan]').shadowRoot.innerHTML"))


def assert_clean(p: Page) -> None:
    assert p.errors == [], p.errors
    assert p.dialogs == [], p.dialogs


# -- the main flows ---------------------------------------------------------------------------------
def test_child_opens_reads_the_notice_and_gets_an_answer_with_citations(
    open_page: Callable[..., Page], service: ServiceServer, host_origin: str
) -> None:
    p = open_page()
    page = p.page
    # the widget's look is its own: the host page's "button { background: hotpink !important }" stays out
    launcher = page.locator("button.launcher")
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 92, 171)"
    assert launcher.get_attribute("aria-expanded") == "false"
    launcher.click()
    dialog = page.get_by_role("dialog", name="Bạn An Toàn")
    assert dialog.is_visible()
    assert page.get_by_text("Trước khi bắt đầu").is_visible()  # privacy notice before the first message
    assert page.get_by_text("không phải người thật").is_visible()
    assert page.get_by_role("link", name=re.compile("Gọi 111")).get_attribute("href") == "tel:111"
    assert page.get_by_role("button", name=re.compile("Thoát nhanh")).is_visible()
    page.get_by_role("button", name="Em là học sinh").click()
    assert "Chào em!" in page.locator(".row.bot .msg").first.inner_text()
    assert page.locator(".chip").count() >= 3  # quick replies

    with page.expect_request("**/api/v1/chat") as req:
        reply = send(p, QUESTION)
    body = req.value.post_data_json
    assert body["audience"] == "child" and body["channel"] == "web" and body["text"] == QUESTION
    assert req.value.all_headers()["origin"] == host_origin  # a real cross-origin call, allowed by CORS
    links = reply.get_by_role("link", name=re.compile("Đọc thêm"))
    assert links.count() >= 1
    href = links.first.get_attribute("href")
    assert href and href.startswith(f"{service.origin}/kb/")
    assert links.first.get_attribute("target") == "_blank"
    assert "noopener" in (links.first.get_attribute("rel") or "")
    # the article page the citation points to
    article = page.context.new_page()
    assert article.goto(href).status == 200
    assert article.locator("h1").inner_text() in links.first.inner_text()
    assert article.get_by_text("Nguồn tham khảo").is_visible()
    article.close()

    saved = stored(p, service)
    assert saved["local"] is None  # nothing survives the tab unless "remember" is ticked
    assert saved["session"]["audience"] == "child"
    assert [m["role"] for m in saved["session"]["messages"]] == ["bot", "user", "bot"]
    assert saved["session"]["notice"] == "1"
    assert_clean(p)


def test_a_disclosure_gets_the_supportive_reply_with_111(open_page: Callable[..., Page]) -> None:
    p = open_page()
    start_chat(p)
    reply = send(p, DISCLOSURE)
    text = reply.inner_text()
    assert "111" in text and "không phải lỗi của em" in text
    assert reply.locator('a[href="tel:111"]').count() >= 1  # the number is a link to call
    assert "severity" not in shadow_html(p)
    assert_clean(p)


def test_parents_choose_their_role_and_are_answered_as_parents(open_page: Callable[..., Page]) -> None:
    p = open_page(audience="parent")
    page = p.page
    page.locator("button.launcher").click()
    first = page.locator(".choice").first
    assert first.inner_text().endswith("Tôi là phụ huynh")  # data-audience pre-selects
    first.click()
    assert "anh/chị" in page.locator(".row.bot .msg").first.inner_text()
    with page.expect_request("**/api/v1/chat") as req:
        send(p, "dấu hiệu con bị dụ dỗ trên mạng")
    assert req.value.post_data_json["audience"] == "parent"
    assert_clean(p)


# -- safety ---------------------------------------------------------------------------------------
def test_quick_exit_replaces_the_page_and_clears_the_history(
    open_page: Callable[..., Page], host_origin: str, service: ServiceServer
) -> None:
    p = open_page()
    page = p.page
    start_chat(p)
    page.get_by_role("checkbox", name=re.compile("Ghi nhớ")).check()
    send(p, "chào bạn")
    assert stored(p, service)["local"] is not None
    page.get_by_role("button", name=re.compile("Thoát nhanh")).click()
    page.wait_for_url(f"{host_origin}/neutral.html")
    assert page.title() == "Dự báo thời tiết"
    assert stored(p, service) == {"session": None, "local": None}
    # replaced, not pushed: "Back" does not return to the chat
    page.go_back()
    assert "host.html" not in page.url
    assert_clean(p)


def test_escape_key_is_a_quick_exit_too(
    open_page: Callable[..., Page], host_origin: str, service: ServiceServer
) -> None:
    p = open_page()
    start_chat(p)
    send(p, "chào bạn")
    assert stored(p, service)["session"] is not None
    p.page.locator("textarea").press("Escape")
    p.page.wait_for_url(f"{host_origin}/neutral.html")
    assert stored(p, service) == {"session": None, "local": None}


def test_history_stays_in_the_tab_only_unless_remembered(
    open_page: Callable[..., Page], service: ServiceServer
) -> None:
    p = open_page()
    page = p.page
    start_chat(p)
    send(p, "chào bạn")
    page.reload()
    page.locator("button.launcher").wait_for(state="attached")
    assert page.locator(".row.user").count() == 1  # same tab: the conversation is still there
    other = page.context.new_page()  # a new tab starts empty
    other.goto(page.url)
    other.locator("button.launcher").click()
    assert other.get_by_text("Trước khi bắt đầu").is_visible()
    other.close()
    box = page.get_by_role("checkbox", name=re.compile("Ghi nhớ"))
    box.check()
    assert stored(p, service)["local"] is not None and stored(p, service)["session"] is None
    box.uncheck()
    assert stored(p, service)["local"] is None and stored(p, service)["session"] is not None
    assert_clean(p)


# -- robustness -----------------------------------------------------------------------------------
def test_html_in_messages_is_shown_as_text(open_page: Callable[..., Page]) -> None:
    p = open_page()
    page = p.page
    start_chat(p)
    send(p, XSS)
    bubble = page.locator(".row.user .msg").last
    assert XSS in bubble.inner_text()
    assert page.locator(".msg img, .msg script").count() == 0
    assert page.evaluate("window.__xss") is None
    page.wait_for_timeout(200)  # give an injected handler the chance to run
    assert_clean(p)  # no alert() dialog


def test_server_offline_shows_a_kind_retry_and_recovers(
    open_page: Callable[..., Page], make_service: Callable[..., ServiceServer], output_dir: Path
) -> None:
    own = make_service()
    p = open_page(server=own)
    page = p.page
    start_chat(p)
    own.stop()
    page.locator("textarea").fill("chào bạn")
    page.locator("textarea").press("Enter")
    error = page.locator(".row.error")
    error.wait_for()
    assert "chưa gửi được" in error.inner_text()
    assert "111" in error.inner_text()
    assert "chưa gửi được" in page.locator(".row.user").inner_text()  # the message is marked, not lost
    retry = page.get_by_role("button", name=re.compile("Gửi lại"))
    assert retry.is_visible()
    page.screenshot(path=str(output_dir / "widget-offline-retry.png"))
    own.restart()
    retry.click()
    page.locator(".row.bot:not(.error):not(.typing)").nth(1).wait_for()
    assert page.locator(".row.error").count() == 0
    assert page.locator(".row.user").count() == 1  # the retry did not duplicate the message
    assert page.locator(".row.user.unsent").count() == 0
    p.errors = [e for e in p.errors if "Failed to load resource" not in e and "Failed to fetch" not in e]
    assert_clean(p)


def test_too_many_messages_get_the_kind_rate_limit_message(
    open_page: Callable[..., Page], make_service: Callable[..., ServiceServer]
) -> None:
    strict = make_service(ip_limit=1)
    p = open_page(server=strict)
    start_chat(p)
    send(p, "chào bạn")
    p.page.locator("textarea").fill("bạn ơi")
    p.page.locator("textarea").press("Enter")
    error = p.page.locator(".row.error")
    error.wait_for()
    text = error.inner_text()
    assert "gửi nhanh quá" in text and "111" in text  # the server's words reached the page (CORS on 429)
    assert p.page.get_by_role("button", name=re.compile("Gửi lại")).is_visible()
    p.errors = [e for e in p.errors if "429" not in e]
    assert_clean(p)


def test_double_sends_are_prevented_and_the_typing_indicator_respects_reduced_motion(
    open_page: Callable[..., Page],
) -> None:
    p = open_page(reduced_motion="reduce")
    page = p.page
    start_chat(p)
    held: list[Any] = []
    page.route("**/api/v1/chat", lambda route: held.append(route))
    chip = page.locator(".chip").first
    chip.click()
    chip.click(force=True)
    page.locator("textarea").fill("gửi thêm")
    page.locator("textarea").press("Enter")
    page.wait_for_timeout(300)
    assert len(held) == 1  # one request in flight, the rest ignored
    assert page.locator(".send").get_attribute("aria-disabled") == "true"
    dot = page.locator(".typing .dot").first
    assert dot.is_visible()
    assert dot.evaluate("d => getComputedStyle(d).animationName") == "none"
    assert page.get_by_role("status").inner_text() == "Bạn An Toàn đang trả lời…"
    held[0].continue_()
    page.unroute("**/api/v1/chat")
    page.locator(".row.bot:not(.typing)").nth(1).wait_for()
    assert page.locator(".row.user").count() == 1
    assert page.locator(".send").get_attribute("aria-disabled") == "false"
    assert_clean(p)


def test_long_messages_are_counted_and_stopped_before_sending(open_page: Callable[..., Page]) -> None:
    p = open_page()
    page = p.page
    start_chat(p)
    box = page.locator("textarea")
    assert box.get_attribute("maxlength") == "2000"  # from /api/v1/widget/config
    box.fill("chào bạn")
    assert page.locator(".count").inner_text() == "8/2000 ký tự"
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/v1/chat" in r.url else None)
    box.fill("a" * 2100)  # typing or pasting stops at the limit, and the counter says so
    count = page.locator(".count")
    assert count.inner_text() == "2000/2000 ký tự, còn 0" and "warn" in (count.get_attribute("class") or "")
    # a value set around maxlength (autofill, an extension) is still refused before sending
    box.evaluate("b => { b.value = 'a'.repeat(2100); b.dispatchEvent(new Event('input')); }")
    assert "2100/2000" in count.inner_text()
    box.press("Enter")
    assert page.get_by_role("alert").filter(has_text="dài quá").is_visible()
    page.wait_for_timeout(200)
    assert requests == [] and page.locator(".row.user").count() == 0
    assert box.input_value() == "a" * 2100  # kept, so the child can shorten it
    assert_clean(p)


# -- access ---------------------------------------------------------------------------------------
def focused(page: Any) -> str:
    """Describe the focused element, looking inside the widget's shadow root."""
    return str(
        page.evaluate(
            """() => {
              let el = document.activeElement;
              while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
              return el ? (el.className || el.tagName.toLowerCase()) + '|' + (el.textContent || '').trim() : '';
            }"""
        )
    )


def test_keyboard_only(open_page: Callable[..., Page]) -> None:
    p = open_page()
    page = p.page
    kb = page.keyboard
    for _ in range(10):  # Tab through the host page to the launcher
        kb.press("Tab")
        if focused(page).startswith("launcher"):
            break
    assert focused(page).startswith("launcher")
    kb.press("Enter")
    assert focused(page).startswith("choice primary|")  # focus moves into the panel
    kb.press("Enter")
    assert focused(page).startswith("|") or "textarea" in focused(page)  # the message box
    kb.type("chào bạn")
    kb.press("Enter")
    page.locator(".row.bot:not(.typing)").nth(1).wait_for()
    # Shift+Tab from the box reaches the quick replies; Enter sends one
    kb.press("Shift+Tab")
    assert focused(page).startswith("chip")
    kb.press("Enter")
    page.locator(".row.user").nth(1).wait_for()
    page.locator(".row.bot:not(.typing)").nth(2).wait_for()
    assert "textarea" in focused(page) or focused(page).startswith("|")  # not lost when the chips change
    # the close button returns focus to the launcher
    page.locator("button.close").focus()
    kb.press("Enter")
    assert focused(page).startswith("launcher")
    assert page.locator("button.launcher").get_attribute("aria-expanded") == "false"
    # visible focus
    outline = page.locator("button.launcher").evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline == "solid"
    assert_clean(p)


def test_works_at_320_px(open_page: Callable[..., Page], output_dir: Path) -> None:
    p = open_page(width=320, height=640)
    page = p.page
    start_chat(p)
    send(p, QUESTION)
    panel = page.locator(".panel").bounding_box()
    assert panel and panel["x"] >= 0 and panel["width"] <= 320
    overflow = page.locator(".panel").evaluate(
        """panel => [...panel.querySelectorAll('*')]
             .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5 && !e.closest('.log, .chips'))
             .map(e => e.className)"""
    )
    assert overflow == []
    for name in ("Gọi 111", "Thoát nhanh"):
        box = page.get_by_role(
            "button" if name == "Thoát nhanh" else "link", name=re.compile(name)
        ).bounding_box()
        assert box and box["height"] >= 44 and box["x"] + box["width"] <= 320
    for target in page.locator(".panel button:visible, .call, .cites a").all():
        box = target.bounding_box()
        assert box and box["height"] >= 44, target.inner_text()
    page.screenshot(path=str(output_dir / "widget-320x640.png"))
    assert_clean(p)


def run_axe(page: Any) -> list[dict[str, Any]]:
    """Run axe-core (bundled by the axe-playwright-python package: no network) on the page."""
    axe = pytest.importorskip(
        "axe_playwright_python.base",
        reason="axe-playwright-python (dev dependency with axe-core) not installed",
    )
    page.evaluate(axe.AXE_SCRIPT)
    result = page.evaluate(
        """() => axe.run(document, {
             runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
             resultTypes: ['violations'],
           })"""
    )
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:5], "help": v["help"]}
        for v in result["violations"]
    ]


REQUIRED_RULES = {
    "label",
    "color-contrast",
    "button-name",
    "aria-valid-attr",
    "aria-allowed-attr",
    "link-name",
}


def test_accessibility_with_axe(
    open_page: Callable[..., Page], service: ServiceServer, output_dir: Path
) -> None:
    p = open_page()
    page = p.page
    page.locator("button.launcher").click()
    page.get_by_text("Trước khi bắt đầu").wait_for()
    screens = {"welcome": run_axe(page)}
    page.get_by_role("button", name="Em là học sinh").click()
    send(p, QUESTION)
    screens["answer"] = run_axe(page)
    # make sure the rules that matter actually ran on the widget
    ran = page.evaluate(
        """rules => axe.run(document, {runOnly: {type: 'rule', values: rules}})
             .then(r => [...r.passes, ...r.violations, ...r.incomplete].map(x => x.id))""",
        sorted(REQUIRED_RULES),
    )
    assert set(ran) >= REQUIRED_RULES
    pages = page.context.new_page()
    pages.set_viewport_size({"width": 1280, "height": 800})
    pages.goto(service.origin + "/")
    launcher = pages.locator("button.launcher")
    launcher.wait_for()  # styled under the demo page's strict CSP (constructed stylesheet)
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 92, 171)"
    screens["demo page"] = run_axe(pages)
    pages.screenshot(path=str(output_dir / "demo-page-1280x800.png"))
    pages.goto(service.origin + "/kb/a-mat-khau-manh")
    screens["article page"] = run_axe(pages)
    pages.set_viewport_size({"width": 360, "height": 740})
    pages.screenshot(path=str(output_dir / "article-page-360x740.png"), full_page=True)
    assert {name: v for name, v in screens.items() if v} == {}


# -- budget and looks -----------------------------------------------------------------------------
def test_transferred_size_is_under_budget_and_nothing_comes_from_other_hosts(
    browser: Any, host_origin: str, service: ServiceServer
) -> None:
    context = browser.new_context()
    page = context.new_page()
    seen: list[Any] = []
    page.on("requestfinished", lambda r: seen.append(r))
    page.goto(f"{host_origin}/host.html?service={service.port}")
    page.locator("button.launcher").click()
    page.get_by_text("Trước khi bắt đầu").wait_for()
    page.wait_for_load_state("networkidle")
    widget = [r for r in seen if r.url.startswith(service.origin)]
    assert {r.url.removeprefix(service.origin) for r in widget} == {"/widget.js", "/api/v1/widget/config"}
    assert all(r.url.startswith((service.origin, host_origin)) for r in seen)
    sizes = {r.url: r.sizes() for r in widget}
    total = sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes.values())
    assert total < SIZE_BUDGET, sizes
    js = next(r for r in widget if r.url.endswith("/widget.js"))
    assert js.response().headers.get("content-encoding") == "gzip"
    context.close()


@pytest.mark.parametrize(("width", "height"), [(360, 740), (1280, 800)])
def test_screenshots(open_page: Callable[..., Page], output_dir: Path, width: int, height: int) -> None:
    p = open_page(width=width, height=height)
    page = p.page
    size = f"{width}x{height}"
    page.screenshot(path=str(output_dir / f"widget-{size}-closed.png"))
    page.locator("button.launcher").click()
    page.get_by_text("Trước khi bắt đầu").wait_for()
    page.screenshot(path=str(output_dir / f"widget-{size}-welcome.png"))
    page.get_by_role("button", name="Em là học sinh").click()
    send(p, QUESTION)
    page.screenshot(path=str(output_dir / f"widget-{size}.png"))
    send(p, DISCLOSURE)
    page.screenshot(path=str(output_dir / f"widget-{size}-disclosure.png"))
    assert (output_dir / f"widget-{size}.png").stat().st_size > 10_000
    assert_clean(p)
