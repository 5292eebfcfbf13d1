"""Fixtures of the console tests: the real app on a database of its own (with the shared
pipeline and models), accounts with roles and TOTP, a real signed-webhook receiver on
127.0.0.1, and real headless Chromium (Debian's, through Playwright's ``executable_path``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from assistant.auth import AuthService
from assistant.conversations import ChatService
from assistant.db import Database
from escalation import audit
from escalation.example_receiver import ReceiverStore, serve
from escalation.models import TipReportRow
from escalation.service import EscalationService
from tests.escalation.conftest import PASSWORD, SECRET, Accounts, make_settings, webhook
from tests.web_widget.conftest import CHROMIUM, CHROMIUM_ARGS

BIEN_HOA = 26068
LONG_KHANH = 26080
OUTPUT = Path(__file__).resolve().parent.parent / "output" / "console"
URGENT = "tối nay ông ấy lại đến nhà, em sợ lắm, ông ấy sờ vào chỗ kín của em"
CONTEXT = "em 12 tuổi, nhà em ở phường Biên Hòa"
NON_URGENT = "chú hàng xóm ở phường Biên Hòa sờ vào chỗ kín của em, em 12 tuổi"

__all__ = ["BIEN_HOA", "LONG_KHANH", "NON_URGENT", "OUTPUT", "PASSWORD", "URGENT", "ConsoleEnv", "console_env"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"browser test skipped: Chromium not found at {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@dataclasses.dataclass
class ConsoleEnv:
    app: Any
    db: Database
    esc: EscalationService
    auth: AuthService
    accounts: Accounts
    settings: Any
    store: ReceiverStore
    receiver_url: str

    def reports(self) -> list[TipReportRow]:
        with self.db.session() as s:
            return list(s.scalars(sa.select(TipReportRow).order_by(TipReportRow.created_at)))


@contextmanager
def console_env(tmp_path: Path, database_url: str, services: Any, run_worker: bool = False,
                **auth: Any) -> Iterator[ConsoleEnv]:
    from assistant.app import create_app

    store = ReceiverStore([SECRET])
    server = serve(store)
    url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    settings = make_settings(tmp_path, database_url, endpoints={"city_police": webhook(url),
                                                                 "hotline_111": webhook(url),
                                                                 "ward_focal_point": webhook(url)})
    if auth:
        settings = settings.model_copy(update={"auth": settings.auth.model_copy(update=auth)})
    db = Database(settings.database_url, settings.database)
    db.upgrade()
    esc = EscalationService(db, settings)
    auth_service = AuthService(db, settings, audit=audit.auth_hook)
    chat = ChatService(db, services.pipeline, settings.chat.history_turns, hooks=[esc.on_turn])
    svc = dataclasses.replace(services, settings=settings, db=db, chat=chat, escalation=esc, auth=auth_service,
                              channels=None)
    accounts = Accounts(auth_service)
    accounts.create("c-bienhoa", "counselor", wards=[BIEN_HOA], totp=True)
    accounts.create("c-longkhanh", "counselor", wards=[LONG_KHANH])
    accounts.create("sup", "supervisor")
    accounts.create("admin1", "admin")
    accounts.create("audit1", "auditor")
    try:
        yield ConsoleEnv(create_app(services=svc, run_worker=run_worker), db, esc, auth_service, accounts,
                         settings, store, url)
    finally:
        server.shutdown()
        server.server_close()
        db.dispose()


@pytest.fixture()
def env(tmp_path: Path, database_url: str, services: Any) -> Iterator[ConsoleEnv]:
    with console_env(tmp_path, database_url, services) as e:
        yield e


@pytest.fixture()
def client(env: ConsoleEnv) -> Iterator[TestClient]:
    with TestClient(env.app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"browser test skipped: Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
