"""``python -m assistant serve``: the uvicorn wiring (uvicorn.run replaced, no server started)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import assistant.__main__ as cli


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return ("app", kwargs)


class FakeServices:
    closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def wiring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    import uvicorn

    import assistant.app
    import assistant.services

    for name in list(os.environ):
        if name.startswith("ASSISTANT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env of the repository
    run, create_app, prepared = Recorder(), Recorder(), []

    def build_services(_settings: Any, prepare: bool = True) -> FakeServices:
        prepared.append(prepare)
        return FakeServices()

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(assistant.app, "create_app", create_app)
    monkeypatch.setattr(assistant.services, "build_services", build_services)
    return {"run": run, "create_app": create_app, "prepared": prepared}


def test_one_worker_by_default_serves_the_app_object(wiring: dict[str, Any]) -> None:
    assert cli.main(["serve"]) == cli.EXIT_OK
    (args, kwargs), = wiring["run"].calls
    assert args == (("app", {"prepare": True, "run_worker": True}),)  # the app built here, prepared at start-up
    assert kwargs == {"host": "127.0.0.1", "port": 8000, "log_config": None, "access_log": False}
    assert wiring["prepared"] == []


def test_settings_workers_start_uvicorn_workers_from_a_factory(
    wiring: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_SERVER__WORKERS", "3")
    assert cli.main(["serve", "--port", "8123"]) == cli.EXIT_OK
    (args, kwargs), = wiring["run"].calls
    # Several processes need an import string; the data directory is prepared once, before them.
    assert args == (cli.SERVE_APP,)
    assert kwargs == {
        "factory": True, "host": "127.0.0.1", "port": 8123, "workers": 3, "log_config": None, "access_log": False,
    }
    assert wiring["prepared"] == [True]
    assert wiring["create_app"].calls == []


def test_workers_flag_overrides_the_settings(wiring: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_SERVER__WORKERS", "4")
    assert cli.main(["serve", "--workers", "1"]) == cli.EXIT_OK
    (args, kwargs), = wiring["run"].calls
    assert "workers" not in kwargs and args[0] != cli.SERVE_APP
    assert cli.main(["serve", "--workers", "2"]) == cli.EXIT_OK
    assert wiring["run"].calls[1][1]["workers"] == 2


def test_bad_worker_counts_are_usage_errors(wiring: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["serve", "--workers", "0"]) == cli.EXIT_USAGE
    monkeypatch.setenv("ASSISTANT_SERVER__WORKERS", "0")
    assert cli.main(["serve"]) == cli.EXIT_USAGE  # rejected by the settings (ge=1)
    assert wiring["run"].calls == []


@pytest.mark.usefixtures("wiring")
def test_the_factory_each_worker_imports_loads_without_preparing() -> None:
    from uvicorn.importer import import_from_string

    factory = import_from_string(cli.SERVE_APP)
    assert factory is cli.serve_app
    assert factory() == ("app", {"prepare": False, "run_worker": True})
