"""The browser side, served by the API: the embeddable widget, its config, the
demo page and the article pages that citations link to.

    GET /                       demo page (a sample host page with the embed tag)
    GET /widget.js              the widget (its CSS inlined at serve time), gzip + ETag
    GET /widget/page.css        styles of the demo and article pages (+ favicon.svg)
    GET /api/v1/widget/config   limits, texts, quick replies, exit page for the widget
    GET /kb/{id}                one reviewed article, rendered from its Markdown

Everything is plain files under ``web_widget/`` (no build step); pages are Jinja2
templates with autoescaping, article Markdown is rendered by markdown-it-py with
raw HTML disabled, so nothing from content or users becomes markup.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

from assistant import __version__
from assistant.prompts import default_prompts
from assistant.settings import Settings
from knowledge_base.articles import Article

WIDGET_DIR = Path(__file__).resolve().parent.parent / "web_widget"
TEMPLATES_DIR = WIDGET_DIR / "templates"
TEXTS_FILE = WIDGET_DIR / "texts.vi.yaml"
CSS_PLACEHOLDER = '"__WIDGET_CSS__"'
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ARTICLE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
AUDIENCE_LABELS = {"child": "học sinh", "parent": "phụ huynh, thầy cô", "both": "mọi người"}

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ARTICLE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(tags=["widget"])


# -- static assets -----------------------------------------------------------------
@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    media_type: str


def _load_asset(name: str) -> Asset:
    path = WIDGET_DIR / name
    text = path.read_text(encoding="utf-8")
    if name == "widget.js":
        css = (WIDGET_DIR / "widget.css").read_text(encoding="utf-8")
        if CSS_PLACEHOLDER not in text:
            raise RuntimeError(f"{path}: the CSS placeholder {CSS_PLACEHOLDER} is missing")
        text = text.replace(CSS_PLACEHOLDER, json.dumps(css, ensure_ascii=False))
    body = text.encode("utf-8")
    media = MEDIA_TYPES[path.suffix]
    return Asset(
        body, gzip.compress(body, 9, mtime=0), '"' + hashlib.sha256(body).hexdigest()[:20] + '"', media
    )


@lru_cache(maxsize=8)
def _cached_asset(name: str, stamp: tuple[float, ...]) -> Asset:  # noqa: ARG001 - cache key
    return _load_asset(name)


def asset(name: str) -> Asset:
    """The asset, re-read when its files change (edits show without a restart)."""
    files = [WIDGET_DIR / name] + ([WIDGET_DIR / "widget.css"] if name == "widget.js" else [])
    return _cached_asset(name, tuple(f.stat().st_mtime for f in files))


def _asset_response(request: Request, name: str) -> Response:
    item = asset(name)
    headers = {
        "ETag": item.etag,
        "Cache-Control": "public, max-age=300",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if item.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(item.gzipped, media_type=item.media_type, headers=headers)
    return Response(item.body, media_type=item.media_type, headers=headers)


@router.get("/widget.js", include_in_schema=False)
def widget_js(request: Request) -> Response:
    return _asset_response(request, "widget.js")


@router.get("/widget/page.css", include_in_schema=False)
def page_css(request: Request) -> Response:
    return _asset_response(request, "page.css")


@router.get("/widget/favicon.svg", include_in_schema=False)
def favicon(request: Request) -> Response:
    return _asset_response(request, "favicon.svg")


# -- config ------------------------------------------------------------------------
@lru_cache(maxsize=1)
def widget_texts() -> dict[str, Any]:
    data = yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{TEXTS_FILE}: expected a mapping at the top level")
    return data


def widget_config(settings: Settings) -> dict[str, Any]:
    prompts = default_prompts()
    texts = widget_texts()
    return {
        "version": __version__,
        "max_message_chars": settings.chat.max_message_chars,
        "exit_url": settings.widget.exit_url,
        "hotline": "111",
        "notice": {"version": settings.widget.notice_version, **texts["notice"]},
        "greeting": {a: prompts.text("greeting", a) for a in ("child", "parent")},
        "suggestions": {a: prompts.suggestions(a) for a in ("child", "parent")},
        "errors": texts["errors"],
        "privacy": texts.get("privacy", {}),
    }


@router.get("/api/v1/widget/config")
def get_widget_config(request: Request) -> Response:
    """What the widget needs before the first message: limits, texts, quick replies."""
    settings: Settings = request.app.state.settings
    return Response(
        json.dumps(widget_config(settings), ensure_ascii=False),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=60"},
    )


# -- pages -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _link_open(
    renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if href.startswith("kb:"):
        token.attrSet("href", href[3:])  # relative to /kb/
    elif href.startswith(("http://", "https://")):
        token.attrSet("rel", "noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").disable("image")
    md.add_render_rule("link_open", _link_open)
    return md


def render_markdown(body: str) -> Markup:
    """Article Markdown to HTML; raw HTML in the source is shown as text, never run."""
    lines = body.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]  # the title is shown by the page itself
    return Markup(markdown().render("\n".join(lines)))  # noqa: S704 - html disabled above


def _vn_date(value: str) -> str:
    try:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    except ValueError:
        return value


def _html(body: str, status: int = 200, csp: str = ARTICLE_CSP) -> HTMLResponse:
    return HTMLResponse(
        body,
        status_code=status,
        headers={
            "Content-Security-Policy": csp,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )


def render_article(article: Article, articles: dict[str, Article], exit_url: str) -> str:
    sources = [
        {
            "title": s.get("title", ""),
            "url": s["url"] if s.get("url", "").startswith(("https://", "http://")) else None,
        }
        for s in article.sources
    ]
    related = [articles[r] for r in article.related if r in articles]
    return (
        templates()
        .get_template("article.html")
        .render(
            article=article,
            body=render_markdown(article.body),
            sources=sources,
            related=related,
            reviewed=_vn_date(article.reviewed_at),
            audience=AUDIENCE_LABELS.get(article.audience, article.audience),
            exit_url=exit_url,
        )
    )


@router.get("/kb/{article_id}", response_class=HTMLResponse, include_in_schema=False)
def article_page(article_id: str, request: Request) -> Response:
    settings: Settings = request.app.state.settings
    index = request.app.state.services.index
    articles: dict[str, Article] = index.articles
    article = index.resolve(article_id) if _ARTICLE_ID.match(article_id) else None
    if article is None:
        page = templates().get_template("not_found.html").render(exit_url=settings.widget.exit_url)
        return _html(page, status=404)
    if article.id != article_id:
        # An article merged into another: old citations and links land on the survivor.
        return RedirectResponse(f"/kb/{article.id}", status_code=301)
    return _html(render_article(article, articles, settings.widget.exit_url))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def demo_page(request: Request) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    embed_tag = f'<script src="{request.base_url}widget.js" data-audience="child" defer></script>'
    page = (
        templates().get_template("demo.html").render(embed_tag=embed_tag, exit_url=settings.widget.exit_url)
    )
    return _html(page, csp=PAGE_CSP)
