"""A serving process builds a missing or stale knowledge-base index in a child
process, then loads it, so the ingest's memory never stays in the service."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from assistant.services import build_index_command, ensure_index_in_child, make_index
from knowledge_base.index import IndexNotReady, KnowledgeIndex


@pytest.fixture()
def fresh_settings(shared_settings: Any, tmp_path: Path) -> Any:
    """An empty index beside the shared, trained models (the accent model is the
    services' own), with the fast fake embedder."""
    from assistant.settings import Settings

    settings = Settings(
        mode="test",
        data_dir=tmp_path,
        knowledge_base_dir=shared_settings.knowledge_base_dir,
        retrieval={"embedder": "fake"},
        _env_file=None,  # type: ignore[call-arg]
    )
    settings.data_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "models").symlink_to(shared_settings.models_dir.resolve(), target_is_directory=True)
    return settings


def test_a_stale_index_is_built_by_the_child_and_loaded_here(
    services: Any, fresh_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = make_index(fresh_settings, services.restorer)
    assert index.is_stale()

    def not_here(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the serving process never ingests when the child did")

    monkeypatch.setattr(KnowledgeIndex, "ingest", not_here)
    report = ensure_index_in_child(fresh_settings, index)
    assert report is not None and report.articles == len(index.articles) > 100 and report.added == report.chunks > 0
    assert index.ready and not index.is_stale()
    query = services.pipeline.stage("normalize").normalize("mật khẩu mạnh")
    assert index.search(query.folded, query.restored, "child")


def test_a_current_index_is_loaded_without_a_child(
    services: Any, fresh_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_index(fresh_settings, services.restorer).ensure()  # built in-process, once

    def no_child(*_a: Any, **_k: Any) -> None:
        raise AssertionError("no child process when the index is current")

    monkeypatch.setattr("assistant.child.subprocess.run", no_child)
    index = make_index(fresh_settings, services.restorer)
    assert ensure_index_in_child(fresh_settings, index) is None
    assert index.ready


def test_a_failed_child_is_a_clear_error(services: Any, fresh_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def failing(cmd: list[str], **_k: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "Traceback (most recent call last):\nOSError: disk full")

    monkeypatch.setattr("assistant.child.subprocess.run", failing)
    index = make_index(fresh_settings, services.restorer)
    with pytest.raises(IndexNotReady, match="exit 1") as err:
        ensure_index_in_child(fresh_settings, index)
    assert "disk full" in str(err.value)
    assert calls == [build_index_command(fresh_settings)]
    assert not index.ready
