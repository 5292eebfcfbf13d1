"""Delivery with real peers on 127.0.0.1: a signed-webhook receiver, an SMTP server, a folder;
and the fault tests (receiver down, 500s, rejections, SIGKILL, two workers). Each prints what it checked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from assistant.auth import PERMISSIONS, Principal
from assistant.db import Database
from assistant.db.models import utcnow
from assistant.settings import Settings
from escalation.example_receiver import ReceiverStore, serve
from escalation.models import DeliveryAttempt, OutboxMessage, TipReportRow
from escalation.outbox import claim
from escalation.schemas import TipReport
from escalation.service import EscalationService
from escalation.worker import DeliveryWorker
from tests.escalation.conftest import SECRET, Disclose, assessment, make_settings, webhook

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SUPERVISOR = Principal("01" + "S" * 24, "sup", "supervisor", permissions=PERMISSIONS["supervisor"])
SELF_HARM = "em muốn tự tử, số của em 0912 345 678"  # routed to hotline_111 only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(tmp_path: Path, esc_db: Database, endpoints: dict[str, Any], **extra: Any) -> tuple[Settings, EscalationService]:
    settings = make_settings(tmp_path, esc_db.url, endpoints=endpoints, **extra)
    return settings, EscalationService(esc_db, settings)


def approved(disclose: Disclose, service: EscalationService, text: str = SELF_HARM, risk: Any = None) -> str:
    _, report_id = disclose(text, risk or assessment(3, "self_harm"))
    assert report_id
    service.approve(SUPERVISOR, report_id)
    return report_id


def report_rows(db: Database, report_id: str) -> list[OutboxMessage]:
    with db.session() as s:
        return list(s.scalars(sa.select(OutboxMessage).where(OutboxMessage.report_id == report_id,
                                                              OutboxMessage.kind == "report")))


def attempts(db: Database, outbox_id: int) -> list[tuple[int, str, int | None]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(  # type: ignore[misc]
            sa.select(DeliveryAttempt.number, DeliveryAttempt.outcome, DeliveryAttempt.status_code)
            .where(DeliveryAttempt.outbox_id == outbox_id).order_by(DeliveryAttempt.number)
        ).all()]


def status(db: Database, report_id: str) -> str:
    with db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None
        return row.status


def drain(worker: DeliveryWorker, until: Any, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        worker.run_once()
        if until():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture()
def patched_disclose(disclose: Disclose) -> Disclose:
    return disclose


def test_signed_webhook_reaches_a_real_receiver_and_the_report_is_sent(
    tmp_path: Path, esc_db: Database, disclose: Disclose, receiver: tuple[ReceiverStore, str]
) -> None:
    store, url = receiver
    settings, service = setup(tmp_path, esc_db, {"hotline_111": webhook(url)})
    report_id = approved(disclose, service)
    worker = DeliveryWorker(esc_db, settings, service)
    drain(worker, lambda: status(esc_db, report_id) == "sent")
    (item,) = report_rows(esc_db, report_id)
    assert store.rejected_signatures == 0 and list(store.received) == [item.message_id]
    assert item.message_id == f"{report_id}.v2"
    payload = store.received[item.message_id].payload
    assert payload["type"] == "tip_report.approved"
    doc = TipReport.model_validate(payload["data"])
    assert doc.meta.id == report_id and doc.handling.status == "approved" and doc.handling.notes == []
    assert attempts(esc_db, item.id) == [(1, "delivered", 200)]
    print(f"checked: signature verified by the receiver, id {item.message_id}, payload valid, 1 attempt, sent")


def test_receiver_acknowledgement_marks_the_report_acknowledged(
    tmp_path: Path, esc_db: Database, disclose: Disclose, receiver: tuple[ReceiverStore, str]
) -> None:
    store, url = receiver
    store.acknowledge = True
    settings, service = setup(tmp_path, esc_db, {"hotline_111": webhook(url)})
    report_id = approved(disclose, service)
    drain(DeliveryWorker(esc_db, settings, service), lambda: status(esc_db, report_id) == "acknowledged")


def test_wrong_secret_is_a_rejection_that_goes_back_to_counselors(
    tmp_path: Path, esc_db: Database, disclose: Disclose, receiver: tuple[ReceiverStore, str]
) -> None:
    store, url = receiver
    settings, service = setup(tmp_path, esc_db, {"hotline_111": webhook(url, ["whsec_d3Jvbmcta2V5LXdyb25nLWtleQ=="])})
    report_id = approved(disclose, service)
    worker = DeliveryWorker(esc_db, settings, service)
    drain(worker, lambda: report_rows(esc_db, report_id)[0].status == "failed")
    assert store.rejected_signatures == 1 and not store.received
    with esc_db.session() as s:
        row = s.get(TipReportRow, report_id)
        assert row is not None and row.delivery_failed and row.status == "approved"
        alerts = s.scalars(sa.select(OutboxMessage.event_type).where(OutboxMessage.kind == "alert",
                                                                     OutboxMessage.report_id == report_id)).all()
    assert "alert.delivery_failing" in alerts
    print("checked: 401 from the receiver is not retried, report flagged in the queue, counselors alerted")


def test_receiver_down_then_back_is_delivered_once_with_every_attempt_recorded(
    tmp_path: Path, esc_db: Database, disclose: Disclose
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook"
    settings, service = setup(tmp_path, esc_db, {"hotline_111": webhook(url)})
    report_id = approved(disclose, service)
    worker = DeliveryWorker(esc_db, settings, service)
    (item,) = report_rows(esc_db, report_id)
    drain(worker, lambda: len(attempts(esc_db, item.id)) >= 2)
    store = ReceiverStore([SECRET])
    server = serve(store, port=port)
    try:
        drain(worker, lambda: status(esc_db, report_id) == "sent")
    finally:
        server.shutdown()
        server.server_close()
    history = attempts(esc_db, item.id)
    assert [o for _, o, _ in history[:-1]] == ["unavailable"] * (len(history) - 1)
    assert history[-1][1] == "delivered" and store.requests == 1 and len(store.received) == 1
    print(f"checked: {len(history) - 1} failed attempts while down, then delivered once; attempts: {history}")


def test_500_then_200_is_retried_after_backoff(
    tmp_path: Path, esc_db: Database, disclose: Disclose, receiver: tuple[ReceiverStore, str]
) -> None:
    store, url = receiver
    store.script = [500]
    settings, service = setup(tmp_path, esc_db, {"hotline_111": webhook(url)})
    report_id = approved(disclose, service)
    worker = DeliveryWorker(esc_db, settings, service)
    drain(worker, lambda: status(esc_db, report_id) == "sent")
    (item,) = report_rows(esc_db, report_id)
    history = attempts(esc_db, item.id)
    assert history == [(1, "unavailable", 500), (2, "delivered", 200)]
    assert len(store.received) == 1
    print(f"checked: attempts {history}, delivered once")


def test_delivery_that_keeps_failing_alerts_counselors_and_is_never_dropped(
    tmp_path: Path, esc_db: Database, disclose: Disclose, receiver: tuple[ReceiverStore, str]
) -> None:
    store, url = receiver
    store.script = [503] * 6
    settings, service = setup(tmp_path, esc_db, {"hotline_111": webhook(url)})
    report_id = approved(disclose, service)
    worker = DeliveryWorker(esc_db, settings, service)
    drain(worker, lambda: report_rows(esc_db, report_id)[0].status == "failed", timeout=30)
    (item,) = report_rows(esc_db, report_id)
    assert item.attempts == settings.escalation.max_attempts and item.failure_alerted
    with esc_db.session() as s:
        alerts = s.scalars(sa.select(OutboxMessage.event_type).where(
            OutboxMessage.report_id == report_id, OutboxMessage.event_type == "alert.delivery_failing")).all()
        row = s.get(TipReportRow, report_id)
        assert row is not None and row.delivery_failed
    assert len(alerts) == 1
    service.redeliver(SUPERVISOR, report_id)
    drain(worker, lambda: status(esc_db, report_id) == "sent")
    print(f"checked: alert after {settings.escalation.alert_after_attempts} attempts, stopped at "
          f"{settings.escalation.max_attempts}, report flagged, redelivered by a counselor and sent")


def test_email_notice_reaches_a_real_smtp_server_without_report_content(
    tmp_path: Path, esc_db: Database, disclose: Disclose
) -> None:
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings, service = setup(
            tmp_path, esc_db,
            {"hotline_111": {"sink": "email", "email_to": ["truc-111@example.org"]}},
            smtp={"host": "127.0.0.1", "port": port, "from_addr": "ban-an-toan@example.org"},
        )
        report_id = approved(disclose, service)
        drain(DeliveryWorker(esc_db, settings, service), lambda: status(esc_db, report_id) == "sent")
    finally:
        controller.stop()
    (envelope,) = received
    assert envelope.rcpt_tos == ["truc-111@example.org"]
    mail = message_from_bytes(envelope.content)
    body = mail.get_payload(decode=True).decode()
    assert report_id in mail["Subject"] and f"/console/reports/{report_id}" in body
    assert "0912" not in body and "tự tử" not in body and "tu tu" not in body
    print("checked: one e-mail with the report id and console link, no report content")


def test_file_drop_writes_once_per_message_id(tmp_path: Path, esc_db: Database, disclose: Disclose) -> None:
    folder = tmp_path / "drop"
    settings, service = setup(tmp_path, esc_db, {"hotline_111": {"sink": "file", "directory": str(folder)}})
    report_id = approved(disclose, service)
    drain(DeliveryWorker(esc_db, settings, service), lambda: status(esc_db, report_id) == "sent")
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"{report_id}.v2.json"]
    assert json.loads((folder / files[0]).read_text())["data"]["meta"]["id"] == report_id


def test_alerts_default_to_a_file_drop_in_the_data_dir(tmp_path: Path, esc_db: Database, disclose: Disclose) -> None:
    settings, service = setup(tmp_path, esc_db, {})
    _, report_id = disclose("em muốn chết ngay bây giờ", assessment(4, "self_harm"))
    worker = DeliveryWorker(esc_db, settings, service)
    worker.run_once()
    on_call = list((settings.outbox_dir / "on_call").glob("*.json"))
    assert len(on_call) == 1
    data = json.loads(on_call[0].read_text())["data"]
    assert data["report_id"] == report_id and data["urgent"] is True and "text" not in json.dumps(data)


def test_backoff_grows_exponentially_with_jitter(tmp_path: Path, esc_db: Database) -> None:
    settings, service = setup(tmp_path, esc_db, {}, backoff_base_seconds=1.0, backoff_cap_seconds=60.0)
    worker = DeliveryWorker(esc_db, settings, service)
    for n, full in ((1, 1), (2, 2), (3, 4), (6, 32), (9, 60)):
        delays = {round(worker.backoff_seconds(n), 6) for _ in range(20)}
        assert all(full / 2 <= d <= full for d in delays) and len(delays) > 1
    print("checked: delay in [d/2, d] for d = 1, 2, 4, 32, capped 60; jittered")


# -- processes -------------------------------------------------------------------
def worker_env(settings: Settings, endpoints: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        "ASSISTANT_MODE": "test",
        "ASSISTANT_DATA_DIR": str(settings.data_path),
        "ASSISTANT_DATABASE__URL": settings.database_url,
        "ASSISTANT_ESCALATION__ENDPOINTS": json.dumps(endpoints),
        "ASSISTANT_ESCALATION__WORKER_POLL_SECONDS": "0.02",
        "ASSISTANT_ESCALATION__LEASE_SECONDS": "2",
        "ASSISTANT_ESCALATION__BACKOFF_BASE_SECONDS": "0.05",
        "ASSISTANT_LOGGING__LEVEL": "WARNING",
    }


@pytest.fixture()
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def start_worker(env: dict[str, str], procs: list[subprocess.Popen[str]], *extra: str) -> subprocess.Popen[str]:
    """Start ``python -m assistant worker`` and wait until it says it is running."""
    log = Path(env["ASSISTANT_DATA_DIR"]) / f"worker-{len(procs)}.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "worker", *extra], cwd=ROOT, env=env, text=True,
            stdout=subprocess.DEVNULL, stderr=err,
        )
    procs.append(proc)
    deadline = time.time() + 60
    while "running" not in log.read_text() and time.time() < deadline:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.02)
    assert "running" in log.read_text(), log.read_text()
    return proc


def test_worker_killed_mid_delivery_and_restarted_delivers_without_loss(
    tmp_path: Path, esc_db: Database, disclose: Disclose, receiver: tuple[ReceiverStore, str],
    processes: list[subprocess.Popen[str]],
) -> None:
    store, url = receiver
    store.script = [3.0]  # the first request hangs for 3 s: the worker is killed while waiting
    endpoints = {"hotline_111": webhook(url)}
    settings, service = setup(tmp_path, esc_db, endpoints)
    report_id = approved(disclose, service)
    env = worker_env(settings, endpoints)
    first = start_worker(env, processes)
    deadline = time.time() + 20
    while store.requests == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert store.requests == 1
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    (item,) = report_rows(esc_db, report_id)
    assert item.status == "pending" and item.claimed_by is not None  # claimed by the dead worker
    # It waits out the dead worker's lease (2 s), then takes the row over.
    second = start_worker(env, processes, "--idle-exit", "5")
    second.wait(timeout=60)
    (item,) = report_rows(esc_db, report_id)
    assert item.status == "delivered" and status(esc_db, report_id) == "sent"
    assert list(store.received) == [item.message_id]
    assert store.duplicates <= 1
    print(f"checked: killed with SIGKILL mid-request; restarted worker re-claimed after the lease and delivered; "
          f"receiver has 1 report, {store.duplicates} duplicate(s) with the same webhook-id (idempotent); "
          f"attempts recorded: {attempts(esc_db, item.id)}")


def test_two_workers_at_once_never_claim_the_same_row(
    tmp_path: Path, esc_db: Database, disclose: Disclose, receiver: tuple[ReceiverStore, str],
    processes: list[subprocess.Popen[str]],
) -> None:
    store, url = receiver
    endpoints = {"hotline_111": webhook(url)}
    settings, _ = setup(tmp_path, esc_db, endpoints)
    _, report_id = disclose(SELF_HARM, assessment(3, "self_harm"))
    rows = 150
    env = worker_env(settings, endpoints)
    workers = [start_worker(env, processes, "--id", f"w{n}", "--idle-exit", "4") for n in (1, 2)]
    now = utcnow()
    with esc_db.session() as s:
        s.add_all(
            OutboxMessage(kind="alert", event_type="alert.test", report_id=report_id, report_version=1,
                          destination="hotline_111", dedupe_key=f"t:{n}", message_id=f"t.{n}",
                          payload={"type": "alert.test", "data": {"n": n}}, status="pending", attempts=0,
                          next_attempt_at=now, failure_alerted=False, created_at=now)
            for n in range(rows)
        )
    for proc in workers:
        proc.wait(timeout=120)
    with esc_db.session() as s:
        delivered = s.scalar(sa.select(sa.func.count()).select_from(OutboxMessage).where(
            OutboxMessage.dedupe_key.like("t:%"), OutboxMessage.status == "delivered"))
        per_row = s.execute(sa.select(DeliveryAttempt.outbox_id, sa.func.count()).group_by(
            DeliveryAttempt.outbox_id).having(sa.func.count() > 1)).all()
        by_worker = dict(s.execute(sa.select(DeliveryAttempt.worker, sa.func.count()).group_by(
            DeliveryAttempt.worker)).all())
    assert delivered == rows and per_row == [] and store.duplicates == 0
    assert len(store.received) == rows
    print(f"checked on {esc_db.dialect}: {rows} rows, each claimed and delivered exactly once; by worker {by_worker}")


def test_skip_locked_gives_concurrent_claims_disjoint_rows(esc_db: Database, disclose: Disclose) -> None:
    if esc_db.dialect != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite serialises writers")
    _, report_id = disclose(SELF_HARM, assessment(3, "self_harm"))
    now = utcnow()
    with esc_db.session() as s:
        s.add_all(
            OutboxMessage(kind="alert", event_type="alert.test", report_id=report_id, report_version=1,
                          destination="x", dedupe_key=f"c:{n}", message_id=f"c.{n}", payload={},
                          status="pending", attempts=0, next_attempt_at=now, failure_alerted=False, created_at=now)
            for n in range(10)
        )
    a, b = esc_db.sessionmaker(), esc_db.sessionmaker()
    try:
        first = claim(a, "a", 4, 60, utcnow())  # not committed: its rows stay locked
        second = claim(b, "b", 20, 60, utcnow())
        assert len(first) == 4 and not {c.outbox_id for c in first} & {c.outbox_id for c in second}
        assert len(first) + len(second) == 11  # 10 test rows + the report_created alert
    finally:
        a.rollback()
        b.rollback()
        a.close()
        b.close()
    print("checked: a second claimer skips the rows locked by the first")
