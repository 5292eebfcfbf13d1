"""`keys generate|rotate` and `retention run` as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.crypto import valid_key
from tests.assistant.test_cli import run
from tests.privacy.conftest import KEY_1, KEY_2

pytestmark = pytest.mark.integration


def test_keys_and_retention_commands(tmp_path: Path) -> None:
    key = run(["keys", "generate"], tmp_path)
    assert key.returncode == 0 and valid_key(key.stdout.strip())
    env = {"ASSISTANT_SECURITY__DATA_KEYS": KEY_1}
    assert run(["db", "upgrade"], tmp_path, env=env).returncode == 0
    dry = run(["retention", "run", "--dry-run"], tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"dry_run": True, "conversations": 0, "reports": 0, "messages": 0}
    rotated = run(["keys", "rotate"], tmp_path, env={"ASSISTANT_SECURITY__DATA_KEYS": f"{KEY_2},{KEY_1}"})
    assert rotated.returncode == 0, rotated.stderr
    assert "message.text" in json.loads(rotated.stdout)["reencrypted"]


def test_production_without_data_keys_names_the_variable(tmp_path: Path) -> None:
    r = run(["retention", "run"], tmp_path, env={"ASSISTANT_MODE": "production",
                                                  "ASSISTANT_SECURITY__PSEUDONYM_KEY": "k" * 40})
    assert r.returncode == 2
    assert "ASSISTANT_SECURITY__DATA_KEYS" in r.stderr
