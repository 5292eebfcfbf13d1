"""Server side of the web widget: demo page, widget.js, config, article pages, CORS."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from assistant.settings import Settings, WidgetSettings
from assistant.web import WIDGET_DIR, render_markdown
from knowledge_base.articles import Article, parse_article

pytestmark = pytest.mark.integration

HOST = "https://thcs-mau.edu.vn"
SIZE_BUDGET = 60 * 1024


def make_client(services: Any, settings: Settings | None = None, **widget: Any) -> TestClient:
    from assistant.app import create_app

    base = settings or services.settings
    if widget:
        base = base.model_copy(update={"widget": WidgetSettings(**widget)})
    return TestClient(create_app(settings=base, services=services))


@pytest.fixture()
def cors_client(services: Any) -> Iterator[TestClient]:
    with make_client(services, allowed_origins=[HOST]) as c:
        yield c


def fake_article(folder: Path, article_id: str, title: str, body: str, sources: str) -> Article:
    """An article parsed from a real file, as the knowledge base would load it."""
    path = folder / f"{article_id}.md"
    path.write_text(
        f'---\nid: {article_id}\ntitle: {json.dumps(title)}\naudience: child\nage_band: ["8-11"]\n'
        f"topics: [test]\nsources:\n{sources}\nreviewed_at: 2026-11-20\nversion: 1\n---\n{body}",
        encoding="utf-8",
    )
    return parse_article(path)


# -- demo page and assets -----------------------------------------------------------
def test_demo_page_is_served_at_the_root_with_the_embed_tag(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<html lang="vi">' in html
    assert '<script src="widget.js" data-audience="child" defer></script>' in html
    # the snippet to copy is shown as text, escaped
    assert "&lt;script src=&#34;http://testserver/widget.js&#34; data-audience=&#34;child&#34;" in html
    assert 'href="tel:111"' in html
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_widget_js_has_its_css_inlined_and_is_served_gzipped_with_an_etag(client: Any) -> None:
    r = client.get("/widget.js", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "__WIDGET_CSS__" not in r.text
    assert ":host { all: initial; }" in r.text
    again = client.get("/widget.js", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304
    plain = client.get("/widget.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.text == r.text
    css = client.get("/widget/page.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_widget_stays_under_the_size_budget(client: Any) -> None:
    """Everything the widget transfers before the first message, gzipped."""
    total = 0
    for path in ("/widget.js", "/api/v1/widget/config"):
        r = client.get(path)
        assert r.status_code == 200
        total += len(gzip.compress(r.content, 9))
    assert total < SIZE_BUDGET, f"widget transfers {total} bytes gzipped (budget {SIZE_BUDGET})"


def test_widget_source_never_inserts_html_or_loads_from_other_hosts() -> None:
    source = (WIDGET_DIR / "widget.js").read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)  # comments may mention them
    code = re.sub(r"(^|\s)//[^\n]*", "", code)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, sink
    # the only absolute URLs: the neutral fallback page for the quick exit (navigated to, not
    # loaded) and the SVG namespace name
    assert set(re.findall(r"https?://[^\s\"'`]+", code)) == {
        "https://www.google.com.vn/",
        "http://www.w3.org/2000/svg",
    }
    css = (WIDGET_DIR / "widget.css").read_text(encoding="utf-8")
    assert "@import" not in css and "url(" not in css


# -- config -------------------------------------------------------------------------
def test_widget_config_gives_limits_texts_and_quick_replies(client: Any, services: Any) -> None:
    r = client.get("/api/v1/widget/config")
    assert r.status_code == 200
    cfg = r.json()
    assert cfg["max_message_chars"] == services.settings.chat.max_message_chars
    assert cfg["hotline"] == "111"
    assert cfg["exit_url"].startswith("https://")
    assert "Chào em" in cfg["greeting"]["child"] and "111" in cfg["greeting"]["child"]
    assert "anh/chị" in cfg["greeting"]["parent"]
    assert cfg["suggestions"]["child"] and cfg["suggestions"]["parent"]
    assert cfg["notice"]["version"] == "1" and len(cfg["notice"]["points"]) >= 3
    assert "không phải người thật" in " ".join(cfg["notice"]["points"])
    for key in ("network", "server", "too_long"):
        assert cfg["errors"][key]
    assert "111" in cfg["errors"]["network"]
    assert "max-age" in r.headers["cache-control"]


def test_widget_config_follows_the_settings(services: Any) -> None:
    settings = services.settings.model_copy(
        update={
            "chat": services.settings.chat.model_copy(update={"max_message_chars": 500}),
            "widget": WidgetSettings(exit_url="https://thoitiet.example.vn/", notice_version="2026-11"),
        }
    )
    with make_client(services, settings) as c:
        cfg = c.get("/api/v1/widget/config").json()
    assert cfg["max_message_chars"] == 500
    assert cfg["exit_url"] == "https://thoitiet.example.vn/"
    assert cfg["notice"]["version"] == "2026-11"


def test_widget_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_WIDGET__ALLOWED_ORIGINS", "https://a.edu.vn, http://127.0.0.1:9000/")
    monkeypatch.setenv("ASSISTANT_WIDGET__IP_LIMIT", "100")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.widget.allowed_origins == ["https://a.edu.vn", "http://127.0.0.1:9000"]
    assert s.widget.ip_limit == 100
    monkeypatch.setenv("ASSISTANT_WIDGET__ALLOWED_ORIGINS", '["https://b.edu.vn"]')
    assert Settings(_env_file=None).widget.allowed_origins == ["https://b.edu.vn"]  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "bad",
    [
        {"allowed_origins": ["https://a.edu.vn/trang"]},
        {"allowed_origins": ["a.edu.vn"]},
        {"exit_url": "javascript:alert(1)"},
        {"redis_url": "http://127.0.0.1:6379"},
    ],
)
def test_bad_widget_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WidgetSettings(**bad)


# -- article pages ------------------------------------------------------------------
def test_article_page_shows_the_article_its_sources_and_reviewed_date(client: Any, services: Any) -> None:
    article = services.index.articles["a-anh-rieng-tu-bi-phat-tan"]
    r = client.get("/kb/a-anh-rieng-tu-bi-phat-tan")
    assert r.status_code == 200
    html = r.text
    assert html.count("<h1>") == 1  # the body's own "# title" is not repeated
    assert f"<h1>{article.title}</h1>" in html
    assert "<h2>" in html and "<li>" in html  # Markdown rendered
    assert "Nguồn tham khảo" in html
    assert '<a href="https://takeitdown.ncmec.org" rel="noopener noreferrer">' in html
    day = article.reviewed_at.split("-")
    assert f"{day[2]}/{day[1]}/{day[0]}" in html
    assert 'href="tel:111"' in html
    assert "Thoát nhanh" in html
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in r.headers["content-security-policy"]  # no scripts at all
    assert "<script" not in html
    # related articles are relative links that resolve under /kb/
    for rel in article.related:
        if rel in services.index.articles:
            assert f'<a href="{rel}">' in html


def test_a_merged_article_id_redirects_to_the_article_it_was_merged_into(client: Any, services: Any) -> None:
    survivor = services.index.articles["a-nguoi-lon-tin-cay"]
    assert "b-ke-voi-nguoi-lon-tin-cay" in survivor.aliases
    r = client.get("/kb/b-ke-voi-nguoi-lon-tin-cay", follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == "/kb/a-nguoi-lon-tin-cay"
    page = client.get("/kb/b-ke-voi-nguoi-lon-tin-cay")
    assert page.status_code == 200 and f"<h1>{survivor.title}</h1>" in page.text


@pytest.mark.parametrize("article_id", ["khong-co-bai-nay", "A-UPPER", "a%3Cb%3E", "x" * 200])
def test_unknown_article_is_a_kind_404_page(client: Any, article_id: str) -> None:
    r = client.get(f"/kb/{article_id}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Không tìm thấy bài viết" in r.text and "111" in r.text
    assert "<b>" not in r.text


def test_paths_outside_the_articles_are_not_found(client: Any) -> None:
    for path in ("/kb/..%2F..%2Fetc%2Fpasswd", "/kb/../settings.py", "/widget/../assistant/app.py"):
        assert client.get(path).status_code == 404


def test_article_content_is_escaped_never_run(
    client: Any, services: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    evil = fake_article(
        tmp_path,
        "z-test-escape",
        'Tiêu đề <img src=x onerror=alert(1)> "x"',
        "# Tiêu đề\n\nĐoạn <script>alert(1)</script> và <b>đậm</b>.\n\n"
        "[bấm](javascript:alert(1)) [bài khác](kb:a-mat-khau-manh) ![ảnh](https://tracker.example/x.png)\n",
        sources='  - title: "<i>Nguồn</i>"\n    url: "javascript:alert(2)"',
    )
    monkeypatch.setitem(services.index.articles, evil.id, evil)
    html = client.get(f"/kb/{evil.id}").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>" not in html and "<i>" not in html
    assert 'href="javascript:' not in html and "javascript:alert(2)" not in html  # shown as text at most
    assert 'src="https://tracker.example' not in html  # images are never loaded from content
    assert '<a href="a-mat-khau-manh">bài khác</a>' in html


def test_markdown_renderer_keeps_raw_html_as_text() -> None:
    out = str(render_markdown('Xin chào <iframe src="x"></iframe>\n\n<div onclick="x">khối</div>'))
    assert "<iframe" not in out and "<div" not in out
    assert "&lt;iframe" in out


def test_every_citation_of_a_reply_opens_an_article_page(client: Any) -> None:
    r = client.post("/api/v1/chat", json={"text": "làm sao để đặt mật khẩu mạnh?", "audience": "child"})
    citations = r.json()["reply"]["citations"]
    assert citations
    for c in citations:
        page = client.get(c["url"])
        assert page.status_code == 200 and c["title"] in page.text


# -- CORS ---------------------------------------------------------------------------
def preflight(c: TestClient, origin: str) -> Any:
    return c.options(
        "/api/v1/chat",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )


def test_cors_allows_a_configured_host_page(cors_client: TestClient) -> None:
    r = preflight(cors_client, HOST)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == HOST
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in r.headers
    cfg = cors_client.get("/api/v1/widget/config", headers={"origin": HOST})
    assert cfg.headers["access-control-allow-origin"] == HOST
    chat = cors_client.post(
        "/api/v1/chat", json={"text": "chào", "audience": "child"}, headers={"origin": HOST}
    )
    assert chat.status_code == 200 and chat.headers["access-control-allow-origin"] == HOST


@pytest.mark.parametrize("origin", ["https://evil.example", "https://thcs-mau.edu.vn.evil.example", "null"])
def test_cors_refuses_other_origins(cors_client: TestClient, origin: str) -> None:
    r = preflight(cors_client, origin)
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    cfg = cors_client.get("/api/v1/widget/config", headers={"origin": origin})
    assert "access-control-allow-origin" not in cfg.headers


def test_cors_allows_no_cross_origin_host_by_default(client: Any) -> None:
    assert preflight(client, HOST).status_code == 400
