"""``python -m assistant channels simulate``, run as a real subprocess against a
real uvicorn server on 127.0.0.1 whose channels talk to the fake platforms."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.channels.conftest import (
    APP_SECRET,
    PAGE_ID,
    ZALO_APP_ID,
    ZALO_OA_SECRET,
    FakeGraphApi,
    FakeZaloApi,
    channels_settings,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PLATFORM_ENV = {
    "ASSISTANT_CHANNELS__MESSENGER__APP_SECRET": APP_SECRET,
    "ASSISTANT_CHANNELS__MESSENGER__PAGE_ID": PAGE_ID,
    "ASSISTANT_CHANNELS__ZALO__APP_ID": ZALO_APP_ID,
    "ASSISTANT_CHANNELS__ZALO__OA_SECRET_KEY": ZALO_OA_SECRET,
}


@dataclasses.dataclass
class Live:
    url: str
    channels: Any


@pytest.fixture()
def live(services: Any, graph: FakeGraphApi, zalo_api: FakeZaloApi) -> Iterator[Live]:
    from assistant.app import create_app
    from assistant.channels.registry import build_channel_service
    from assistant.metrics import Metrics
    from assistant.prompts import default_prompts

    settings = services.settings.model_copy(update={"channels": channels_settings(graph.url, zalo_api.url)})
    metrics = Metrics()
    channel_service = build_channel_service(settings, services.db, services.chat, default_prompts(), metrics)
    app = create_app(services=dataclasses.replace(services, settings=settings, metrics=metrics, channels=channel_service))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield Live(f"http://127.0.0.1:{port}", channel_service)
    server.should_exit = True
    thread.join(10)
    channel_service.close()


def run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ASSISTANT_DATA_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=120, check=False,
    )


def test_simulate_messenger_reaches_the_pipeline_and_the_reply_is_sent(
    live: Live, graph: FakeGraphApi, tmp_path: Path
) -> None:
    r = run(["channels", "simulate", "messenger", "--text", "làm sao đặt mật khẩu mạnh?", "--url", live.url],
            PLATFORM_ENV, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["status"], out["response"]["accepted"]) == (200, 1)
    assert out["url"] == live.url + "/webhooks/messenger"
    assert live.channels.wait_idle(30)
    replies = graph.messages(out["sender"])
    assert replies and replies[0]["messaging_type"] == "RESPONSE"


def test_simulate_zalo_image_is_acknowledged_and_not_stored(
    live: Live, zalo_api: FakeZaloApi, tmp_path: Path
) -> None:
    r = run(["channels", "simulate", "zalo", "--text", "", "--image", "--url", live.url], PLATFORM_ENV, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == 200 and out["response"]["accepted"] == 1
    assert live.channels.wait_idle(30)
    user = live.channels.store.user("zalo", live.channels.pseudonym("zalo", out["sender"]))
    assert user is not None and user.conversation_id is None  # nothing of the image became a chat turn
    notes = [m for m in zalo_api.messages() if m["recipient"].get("message_id") == user.last_platform_message_id]
    assert notes and "không lưu" in notes[0]["message"]["text"]


def test_simulate_with_a_wrong_secret_is_refused(live: Live, tmp_path: Path) -> None:
    env = {**PLATFORM_ENV, "ASSISTANT_CHANNELS__ZALO__OA_SECRET_KEY": "not-the-secret"}
    r = run(["channels", "simulate", "zalo", "--text", "chào", "--url", live.url], env, tmp_path)
    assert r.returncode == 1
    assert json.loads(r.stdout)["status"] == 403


def test_simulate_without_secrets_is_a_usage_error(tmp_path: Path) -> None:
    r = run(["channels", "simulate", "messenger", "--text", "chào"], {}, tmp_path)
    assert r.returncode == 2 and "ASSISTANT_CHANNELS__MESSENGER__APP_SECRET" in r.stderr


def test_simulate_reports_an_unreachable_service(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(["channels", "simulate", "zalo", "--text", "chào", "--url", f"http://127.0.0.1:{port}"],
            PLATFORM_ENV, tmp_path)
    assert r.returncode == 1 and "could not post" in r.stderr


def test_channels_help(tmp_path: Path) -> None:
    r = run(["channels", "simulate", "--help"], {}, tmp_path)
    assert r.returncode == 0 and "usage:" in r.stdout and "{messenger,zalo}" in r.stdout
