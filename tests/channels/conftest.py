"""Local fake platform servers (real HTTP on 127.0.0.1 speaking the Graph Send API
and the Zalo OA API) and a channel environment wired to them through the real
factories, the shared pipeline and a real app."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from assistant.settings import ChannelsSettings

APP_SECRET = "messenger-app-secret-0123456789"
VERIFY_TOKEN = "messenger-verify-token-0123456789"
PAGE_ID = "1122334455"
PAGE_TOKEN = "EAAG-page-access-token-0123456789"
ZALO_APP_ID = "2553928453557884079"
ZALO_APP_SECRET = "zalo-app-secret-0123456789"
ZALO_OA_SECRET = "zalo-oa-secret-key-0123456789"
ZALO_ACCESS = "zalo-access-token-1"
ZALO_REFRESH = "zalo-refresh-token-1"
GRAPH_VERSION = "v25.0"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    accepted: bool = False  # the platform took it (2xx and no API error)


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakePlatform:
    """A small threaded HTTP server; subclasses answer like the platform.

    ``script(...)`` queues answers given before the normal one (429, 5xx...).
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripted: deque[Scripted] = deque()
        self.lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                ctype = self.headers.get("content-type") or ""
                if "json" in ctype:
                    body: Any = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                parts = urlsplit(self.path)
                rec = Recorded(
                    "POST",
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with platform.lock:
                    platform.requests.append(rec)
                    scripted = platform.scripted.popleft() if platform.scripted else None
                answer = scripted or platform.answer(rec)
                rec.status = answer.status
                error = answer.body.get("error") if isinstance(answer.body, dict) else None
                rec.accepted = answer.status < 400 and error in (None, 0)
                if answer.delay:
                    time.sleep(answer.delay)
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, *answers: Scripted) -> None:
        with self.lock:
            self.scripted.extend(answers)

    def answer(self, request: Recorded) -> Scripted:  # pragma: no cover - overridden
        return Scripted(404, {"path": request.path})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeGraphApi(FakePlatform):
    """``POST /{version}/{page-id}/messages`` of the Send API."""

    def __init__(self) -> None:
        self.closed_windows: set[str] = set()
        self._ids = itertools.count(1)
        super().__init__()

    def answer(self, request: Recorded) -> Scripted:
        if request.path != f"/{GRAPH_VERSION}/{PAGE_ID}/messages":
            return Scripted(404, {"error": {"message": "Unknown path", "code": 803}})
        if request.query.get("access_token") != PAGE_TOKEN:
            return Scripted(400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}})
        recipient = request.body.get("recipient", {}).get("id")
        if recipient in self.closed_windows:
            return Scripted(
                400,
                {"error": {"message": "This message is sent outside of allowed window.", "code": 10,
                           "error_subcode": 2018278}},
            )
        return Scripted(200, {"recipient_id": recipient, "message_id": f"m_out_{next(self._ids)}"})

    def messages(self, recipient: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r.body
                for r in self.requests
                if r.path.endswith("/messages")
                and r.accepted
                and (recipient is None or r.body["recipient"]["id"] == recipient)
            ]


class FakeZaloApi(FakePlatform):
    """``POST /v3.0/oa/message/cs`` and the OAuth ``/v4/oa/access_token`` refresh."""

    def __init__(self) -> None:
        self.valid_access = ZALO_ACCESS
        self.valid_refresh = ZALO_REFRESH
        self.refreshes = 0
        self._ids = itertools.count(1)
        super().__init__()

    def expire_access_token(self) -> None:
        """The current access token stops working (as after 25 hours)."""
        with self.lock:
            self.valid_access = f"expired-{uuid.uuid4().hex}"

    def answer(self, request: Recorded) -> Scripted:
        if request.path == "/v4/oa/access_token":
            body = request.body
            if (
                request.headers.get("secret_key") != ZALO_APP_SECRET
                or body.get("app_id") != ZALO_APP_ID
                or body.get("grant_type") != "refresh_token"
                or body.get("refresh_token") != self.valid_refresh
            ):
                return Scripted(200, {"error": -14020, "error_name": "Invalid refresh token"})
            self.refreshes += 1
            self.valid_access = f"zalo-access-token-{self.refreshes + 1}"
            self.valid_refresh = f"zalo-refresh-token-{self.refreshes + 1}"
            return Scripted(
                200,
                {"access_token": self.valid_access, "refresh_token": self.valid_refresh, "expires_in": "90000"},
            )
        if request.path == "/v3.0/oa/message/cs":
            if request.headers.get("access_token") != self.valid_access:
                return Scripted(200, {"error": -216, "message": "Access token is invalid"})
            recipient = request.body.get("recipient", {})
            quota = {"quota_type": "reply"} if "message_id" in recipient else {}
            return Scripted(
                200,
                {"error": 0, "message": "Success",
                 "data": {"message_id": f"zout{next(self._ids)}", "user_id": recipient.get("user_id", ""),
                          "quota": quota}},
            )
        return Scripted(404, {"error": -1, "message": "unknown path"})

    def messages(self) -> list[dict[str, Any]]:
        """Messages the API accepted."""
        with self.lock:
            return [
                r.body
                for r in self.requests
                if r.path == "/v3.0/oa/message/cs" and r.accepted
            ]


@pytest.fixture()
def graph() -> Iterator[FakeGraphApi]:
    server = FakeGraphApi()
    yield server
    server.close()


@pytest.fixture()
def zalo_api() -> Iterator[FakeZaloApi]:
    server = FakeZaloApi()
    yield server
    server.close()


def channels_settings(graph_url: str, zalo_url: str, **overrides: Any) -> ChannelsSettings:
    return ChannelsSettings.model_validate(
        {
            "messenger": {
                "enabled": True,
                "app_secret": APP_SECRET,
                "verify_token": VERIFY_TOKEN,
                "page_id": PAGE_ID,
                "page_access_token": PAGE_TOKEN,
                "graph_api_base_url": graph_url,
                "graph_api_version": GRAPH_VERSION,
            },
            "zalo": {
                "enabled": True,
                "app_id": ZALO_APP_ID,
                "app_secret": ZALO_APP_SECRET,
                "oa_secret_key": ZALO_OA_SECRET,
                "access_token": ZALO_ACCESS,
                "refresh_token": ZALO_REFRESH,
                "api_base_url": zalo_url,
                "oauth_base_url": zalo_url,
            },
            "http_backoff_seconds": 0.01,
            "http_timeout_seconds": 5,
            **overrides,
        }
    )


@dataclass
class ChannelEnv:
    """A running app with both channels enabled against the fake servers."""

    services: Any
    channels: Any
    client: Any
    graph: FakeGraphApi
    zalo: FakeZaloApi

    def wait(self) -> None:
        assert self.channels.wait_idle(30), "channel events were not processed in time"


def _clear_zalo_credential(db: Any) -> None:
    from assistant.channels.models import ChannelCredential

    with db.session() as s:
        row = s.get(ChannelCredential, "zalo")
        if row is not None:
            s.delete(row)


@pytest.fixture()
def channel_env(services: Any, graph: FakeGraphApi, zalo_api: FakeZaloApi) -> Iterator[ChannelEnv]:
    from fastapi.testclient import TestClient

    from assistant.app import create_app
    from assistant.channels.registry import build_channel_service
    from assistant.metrics import Metrics
    from assistant.prompts import default_prompts

    _clear_zalo_credential(services.db)  # every test starts from the tokens in its settings
    settings = services.settings.model_copy(update={"channels": channels_settings(graph.url, zalo_api.url)})
    metrics = Metrics()
    channel_service = build_channel_service(settings, services.db, services.chat, default_prompts(), metrics)
    test_services = dataclasses.replace(services, settings=settings, metrics=metrics, channels=channel_service)
    app = create_app(services=test_services)
    with TestClient(app) as client:
        yield ChannelEnv(test_services, channel_service, client, graph, zalo_api)
    channel_service.close()
    _clear_zalo_credential(services.db)


def new_user() -> str:
    """A fresh platform user id (tests share one database)."""
    return str(10**15 + uuid.uuid4().int % 10**15)
