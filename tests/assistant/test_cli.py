"""The CLI contract, run as a real subprocess on a scratch data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], data_dir: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ASSISTANT_DATA_DIR": str(data_dir), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=600, check=False,
    )


@pytest.fixture(scope="module")
def cli_data(shared_settings: Any, services: Any) -> Path:  # noqa: ARG001 - builds models and index
    """The shared data dir: models and index already built by the services fixture."""
    return Path(shared_settings.data_path)


@pytest.mark.parametrize("cmd", [[], ["db"], ["serve"], ["ingest"], ["ask"], ["classify"]])
def test_help_everywhere(cmd: list[str], tmp_path: Path) -> None:
    r = run([*cmd, "--help"], tmp_path)
    assert r.returncode == 0 and "usage:" in r.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    r = run(["no-such-command"], tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    assert run([], tmp_path).returncode == 2


@pytest.mark.parametrize("cmd", [["users"], ["users", "create"], ["worker"], ["bench", "escalation"]])
def test_escalation_commands_have_help(cmd: list[str], tmp_path: Path) -> None:
    r = run([*cmd, "--help"], tmp_path)
    assert r.returncode == 0 and "usage:" in r.stdout


def test_invalid_settings_exit_2_with_message(tmp_path: Path) -> None:
    r = run(["db", "upgrade"], tmp_path, env={"ASSISTANT_DATABASE__URL": "mysql://x"})
    assert r.returncode == 2
    assert "database.url" in r.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    r = run(["db", "upgrade"], tmp_path)
    assert r.returncode == 0, r.stderr
    r = run(["db", "current"], tmp_path)
    cur = r.stdout.split()
    assert cur[0] == "current" and cur[1] == cur[3]
    assert (tmp_path / "assistant.sqlite3").exists()


def test_ask_contract(cli_data: Path) -> None:
    lines = [
        {"id": "q1", "question": "lam sao dat mat khau manh", "audience": "child"},
        {"id": "q2", "question": "Cách cài Family Link cho con?", "audience": "parent"},
    ]
    r = run(["ask"], cli_data, "\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    assert r.returncode == 0, r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert [o["id"] for o in out] == ["q1", "q2"]
    for o in out:
        assert set(o) == {"id", "reply", "citations"} and o["reply"]
        assert all(set(c) == {"id", "title"} for c in o["citations"])


def test_ask_rejects_broken_json(cli_data: Path) -> None:
    r = run(["ask"], cli_data, "{not json}\n")
    assert r.returncode == 2 and "line 1" in r.stderr


def test_classify_contract(cli_data: Path) -> None:
    lines = [
        {"id": "c1", "messages": ["chào", "làm sao đổi mật khẩu"], "audience": "child"},
        {"id": "c2", "messages": ["em muốn kể chuyện", "chú ấy sờ vào chỗ kín của em"], "audience": "child"},
    ]
    r = run(["classify"], cli_data, "\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    assert r.returncode == 0, r.stderr
    out = {o["id"]: o for o in map(json.loads, r.stdout.splitlines())}
    assert set(out["c1"]) == {"id", "severity", "primary", "categories", "escalate", "signals"}
    assert out["c1"]["escalate"] is False
    assert out["c2"]["escalate"] is True and out["c2"]["severity"] >= 3


def test_classify_rejects_missing_messages(cli_data: Path) -> None:
    r = run(["classify"], cli_data, json.dumps({"id": "x", "messages": []}) + "\n")
    assert r.returncode == 2 and "messages" in r.stderr
