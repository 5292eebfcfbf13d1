"""Real headless Chromium against a real uvicorn server on 127.0.0.1.

The service runs on one port; a separate "host page" server on another port
embeds the widget with its script tag, so every test crosses origins exactly as
a school portal would (and CORS is exercised for real).

Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`); Playwright
drives it through ``executable_path`` (``playwright install`` cannot download
here). Without it, these tests are skipped with the reason shown.
"""

from __future__ import annotations

import html
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parent.parent / "output"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"browser test skipped: Chromium not found at {CHROMIUM} (apt-get install chromium)"
    )
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


# -- servers --------------------------------------------------------------------------
def bound_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


class ServiceServer:
    """The FastAPI app under a real uvicorn server in a background thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self.sock = bound_socket(port)
        self.port: int = self.sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> ServiceServer:
        import uvicorn

        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="on", ws="none", http="h11", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.sock.close()

    def restart(self) -> None:
        """Serve again on the same port (after ``stop``)."""
        self.sock = bound_socket(self.port)
        self.start()


NEUTRAL_PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8">
<title>Dự báo thời tiết</title></head><body><h1>Dự báo thời tiết hôm nay</h1>
<p>Trời nắng nhẹ, 31°C.</p></body></html>"""

HOST_PAGE = """<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trường THCS Mẫu – Cổng thông tin</title>
<style>
  /* a host page whose own CSS must not leak into the widget */
  body {{ margin: 0; padding: 24px; font: 16px/1.6 Georgia, serif; color: #222; background: #f4f1ea; }}
  h1 {{ color: #7a1010; }}
  div, p {{ letter-spacing: 0.02em; }}
  button {{ background: hotpink !important; font-size: 30px; }}
  a {{ color: #0a4a8a; }}
</style>
</head>
<body>
<header><h1>Trường THCS Mẫu</h1></header>
<main>
<p>Chào mừng các em đến với cổng thông tin của trường. <a href="#tin-tuc">Tin tức</a></p>
<p id="tin-tuc">Lịch thi học kỳ I đã được cập nhật.</p>
</main>
<script src="{service}/widget.js" data-audience="{audience}" data-exit-url="{exit_url}" defer></script>
</body>
</html>"""


class HostPages(BaseHTTPRequestHandler):
    """``/host.html?service=PORT&audience=child`` embeds the widget; ``/neutral.html`` is the exit."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        if url.path == "/host.html":
            port = int(query.get("service", ["0"])[0])
            body = HOST_PAGE.format(
                service=f"http://127.0.0.1:{port}",
                audience=html.escape(query.get("audience", ["child"])[0]),
                exit_url=f"{host}/neutral.html",
            )
        elif url.path == "/neutral.html":
            body = NEUTRAL_PAGE
        elif url.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002
        return


@pytest.fixture(scope="session")
def host_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostPages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def host_origin(host_server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{host_server.server_address[1]}"


@pytest.fixture(scope="session")
def make_service(services: Any, host_origin: str) -> Iterator[Callable[..., ServiceServer]]:
    """Start extra service servers (the host page's origin allowed); all stopped at the end."""
    from assistant.app import create_app
    from assistant.settings import WidgetSettings

    started: list[ServiceServer] = []

    def make(**widget: Any) -> ServiceServer:
        options = {
            "allowed_origins": [host_origin],
            "rate_limit_enabled": True,  # on, with room for the whole browser suite
            "ip_limit": 500,
            "conversation_limit": 100,
            **widget,
        }
        settings = services.settings.model_copy(update={"widget": WidgetSettings(**options)})
        server = ServiceServer(create_app(settings=settings, services=services)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def service(make_service: Callable[..., ServiceServer]) -> ServiceServer:
    return make_service()


# -- browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread
    while it is open, which would break later tests that call ``asyncio.run``."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser test skipped: Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A tab on the host page, with the errors it raised collected."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture()
def open_page(browser: Any, host_origin: str, service: ServiceServer) -> Iterator[Callable[..., Page]]:
    """Open the host page in a fresh browser context (fresh storage) and return it."""
    contexts: list[Any] = []

    def open_(
        width: int = 1280,
        height: int = 800,
        audience: str = "child",
        server: ServiceServer | None = None,
        reduced_motion: str = "no-preference",
    ) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height}, locale="vi-VN", reduced_motion=reduced_motion
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = Page(context.new_page())
        port = (server or service).port
        page.page.goto(f"{host_origin}/host.html?service={port}&audience={audience}")
        page.page.locator("button.launcher").wait_for()
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT
