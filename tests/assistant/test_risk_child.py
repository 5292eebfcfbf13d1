"""A serving process trains a missing risk model in a child process, so the
training's memory never stays in the service."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from assistant.risk.base import ModelNotTrained
from assistant.risk.model import current_artifact
from assistant.services import risk_model_in_child, risk_text_version, train_risk_model_command


def _expected(services: Any, models_dir: Path) -> Path:
    return current_artifact(models_dir, risk_text_version(services.restorer))[1]


def test_the_child_trains_the_model_the_service_looks_for(services: Any) -> None:
    """The child's text layer and accent model are the parent's: it names (and, the
    model being trained already, finds) the very artifact the parent loads."""
    settings = services.settings
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        train_risk_model_command(settings.models_dir, settings.knowledge_base_dir),
        capture_output=True, text=True, timeout=600, check=True,
    )
    assert Path(done.stdout.strip().splitlines()[-1]) == _expected(services, settings.models_dir)


def test_a_trained_model_is_loaded_without_a_child(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_child(*_a: Any, **_k: Any) -> None:
        raise AssertionError("no child process when the model is trained")

    monkeypatch.setattr("assistant.child.subprocess.run", no_child)
    settings = services.settings
    model = risk_model_in_child(settings.models_dir, settings.knowledge_base_dir, services.restorer)
    assert model.version == services.classifier.model.model.version


def test_a_missing_model_is_trained_by_a_child_then_loaded(
    services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = services.settings
    source = _expected(services, settings.models_dir)
    target = _expected(services, tmp_path)
    calls: list[list[str]] = []

    def child(cmd: list[str], **_k: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        target.parent.mkdir(parents=True)
        shutil.copy(source, target)  # what the real child writes
        return subprocess.CompletedProcess(cmd, 0, f"{target}\n", "")

    monkeypatch.setattr("assistant.child.subprocess.run", child)
    model = risk_model_in_child(tmp_path, settings.knowledge_base_dir, services.restorer)
    assert calls == [train_risk_model_command(tmp_path, settings.knowledge_base_dir)]
    assert model.version == services.classifier.model.model.version
    assert model.heads() is not None


@pytest.mark.parametrize(("code", "stderr"), [(1, "Traceback (most recent call last):\nMemoryError"), (0, "")])
def test_a_child_that_leaves_no_model_is_a_clear_error(
    services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, stderr: str
) -> None:
    monkeypatch.setattr(
        "assistant.child.subprocess.run",
        lambda cmd, **_k: subprocess.CompletedProcess(cmd, code, "", stderr),
    )
    with pytest.raises(ModelNotTrained, match=f"exit {code}") as err:
        risk_model_in_child(tmp_path, services.settings.knowledge_base_dir, services.restorer)
    assert str(_expected(services, tmp_path)) in str(err.value)
    if stderr:
        assert "MemoryError" in str(err.value)  # the child's own words, for the operator
