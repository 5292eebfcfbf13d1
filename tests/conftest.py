"""Shared fixtures: settings, databases (SQLite always, PostgreSQL when
``TEST_DATABASE_URL`` is set), one shared set of services, an app and a client.

An autouse guard fails any test that opens a network connection outside loopback.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "test"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = ipaddress.ip_address(socket.gethostbyname(host))
        if not ip.is_loopback:
            raise RuntimeError(f"test tried to connect outside loopback: {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


def _postgres_schema_url(base: str) -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards."""
    import sqlalchemy as sa

    from assistant.settings import DatabaseSettings

    url = DatabaseSettings(url=base).url
    assert url is not None
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test using it runs on SQLite and, when configured, on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL (set by .ci/run)")
    yield from _postgres_schema_url(TEST_DATABASE_URL)


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def shared_settings(shared_data_dir: Path) -> Any:
    """Settings for the shared services; trained models and the index are cached
    across runs under ``.cache/test`` (rebuilt only when their inputs change)."""
    from assistant.settings import Settings

    CACHE.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        mode="test",
        data_dir=shared_data_dir,
        _env_file=None,  # type: ignore[call-arg]
    )
    # Reuse cached models and index between runs: they are keyed by content hashes.
    for name in ("models", "index"):
        (CACHE / name).mkdir(exist_ok=True)
        link = shared_data_dir / name
        if not link.exists():
            link.symlink_to(CACHE / name, target_is_directory=True)
    return settings


@pytest.fixture(scope="session")
def services(shared_settings: Any) -> Iterator[Any]:
    """One set of services (DB, accent model, index, classifier) for the whole run."""
    from assistant.services import build_services

    svc = build_services(shared_settings, prepare=True)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def app(services: Any) -> Any:
    from assistant.app import create_app

    return create_app(services=services)


@pytest.fixture()
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c
