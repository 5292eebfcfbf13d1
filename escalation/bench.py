"""``python -m assistant bench escalation``: how fast reports are opened and delivered.

1. disclosure -> report created: N disclosures through the real chat pipeline
   (``ChatService.handle``, each in a new conversation); the report and its
   outbox rows are committed with the message, so the time of ``handle`` is
   the time until the report exists.
2. approved -> delivered: each report is approved and one worker (a thread,
   polling every 50 ms) delivers it to a signed-webhook receiver on 127.0.0.1;
   latency = receipt time - approval time.
3. outbox throughput: M rows queued at once and delivered by TWO worker
   processes (``python -m assistant worker``) to the receiver; rows per second
   from queueing to the last delivery.

It uses a temporary SQLite database (or ``--database-url``) and the cached
models and index of the data directory. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from assistant.auth import PERMISSIONS, Principal
from assistant.db.models import utcnow
from assistant.settings import Settings
from escalation.example_receiver import ReceiverStore, serve
from escalation.models import DeliveryAttempt, OutboxMessage, TipReportRow

DISCLOSURES = (
    "chú hàng xóm sờ vào chỗ kín của em, em sợ lắm",
    "có người trên mạng dọa tung ảnh nóng của em nếu em không gửi thêm",
    "bố dượng đánh em chảy máu, em không dám về nhà",
    "anh quen qua game bắt em gửi ảnh không mặc đồ",
    "em muốn chết, em đã chuẩn bị thuốc rồi",
)
SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC0xMjM0NTY="


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _line(name: str, values_ms: list[float]) -> str:
    if not values_ms:
        return f"{name:<34} n=0"
    return (
        f"{name:<34} n={len(values_ms):<4} median {statistics.median(values_ms):8.1f} ms   "
        f"p90 {_pct(values_ms, 0.9):8.1f} ms   max {max(values_ms):8.1f} ms"
    )


def _wait_idle(db: Any, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with db.session() as s:
            if not s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")):
                return
        time.sleep(0.02)


def run_bench(settings: Settings, reports: int = 30, outbox_rows: int = 400, database_url: str | None = None) -> dict[str, Any]:
    from assistant.services import build_services
    from escalation.worker import DeliveryWorker, WorkerThread

    tmp = Path(tempfile.mkdtemp(prefix="bench-escalation-"))
    url = database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    # Two receivers: the police one, and one for the other agencies (a report routed to
    # police + 111 reaches each once, with the same webhook-id).
    store, police = ReceiverStore([SECRET]), ReceiverStore([SECRET])
    server, police_server = serve(store), serve(police)
    receiver_url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    webhook = {"sink": "webhook", "url": receiver_url, "secrets": [SECRET]}
    endpoints: dict[str, Any] = dict.fromkeys(("hotline_111", "ward_focal_point", "school"), webhook)
    endpoints["city_police"] = {**webhook, "url": f"http://127.0.0.1:{police_server.server_address[1]}/webhook"}
    for group in ("counselors", "on_call"):
        endpoints[group] = {"sink": "file", "directory": str(tmp / group)}
    esc = settings.escalation.model_copy(
        update={"endpoints": {}, "worker_in_serve": False, "worker_poll_seconds": 0.05, "batch_size": 20,
                "backoff_base_seconds": 0.2, "lease_seconds": 30}
    )
    bench_settings = settings.model_copy(
        update={
            "database": settings.database.model_copy(update={"url": url}),
            "escalation": type(esc).model_validate({**esc.model_dump(), "endpoints": endpoints}),
        }
    )
    print(f"database: {url.split('?')[0]}   receiver: {receiver_url}", flush=True)
    services = build_services(bench_settings, prepare=True)
    assert services.escalation is not None
    results: dict[str, Any] = {}
    try:
        # 1. disclosure -> report created
        created_ms: list[float] = []
        run_started = utcnow()
        for i in range(reports):
            text = DISCLOSURES[i % len(DISCLOSURES)]
            started = time.perf_counter()
            services.chat.handle(text=text, audience="child", channel="web")
            created_ms.append((time.perf_counter() - started) * 1000)
        with services.db.session() as s:
            ids = list(s.scalars(select(TipReportRow.id).where(TipReportRow.created_at >= run_started)
                                 .order_by(TipReportRow.created_at)))
        print(_line("disclosure -> report created", created_ms))
        print(f"{'':<34} {len(ids)} reports opened from {reports} disclosures")
        results["disclosure_to_report_ms"] = created_ms

        # 2. approved -> delivered (one worker thread)
        supervisor = Principal("bench", "bench", "supervisor", permissions=PERMISSIONS["supervisor"])
        worker = WorkerThread(DeliveryWorker(services.db, bench_settings, services.escalation)).start()
        _wait_idle(services.db)  # the counselor alerts of step 1 first
        approved_at: dict[str, float] = {}
        for report_id in ids:
            with services.db.session() as s:
                row = s.get(TipReportRow, report_id)
                assert row is not None
                version = row.version + 1  # approving bumps the version
            approved_at[f"{report_id}.v{version}"] = time.time()
            services.escalation.approve(supervisor, report_id)
        _wait_idle(services.db)
        worker.close()
        delivered_ms = []
        for key, t in approved_at.items():
            arrivals = [r.received[key].at for r in (store, police) if key in r.received]
            if arrivals:
                delivered_ms.append((max(arrivals) - t) * 1000)  # delivered = every agency has it
        print(_line("approved -> delivered (1 worker)", delivered_ms))
        print(f"{'':<34} (sequential approvals; worker polls every 50 ms; all routed agencies)")
        results["approved_to_delivered_ms"] = delivered_ms

        # 3. throughput with 2 worker processes
        env = {
            **os.environ,
            "ASSISTANT_DATA_DIR": str(bench_settings.data_path),
            "ASSISTANT_DATABASE__URL": url,
            "ASSISTANT_ESCALATION__ENDPOINTS": json.dumps(endpoints),
            "ASSISTANT_ESCALATION__WORKER_POLL_SECONDS": "0.05",
            "ASSISTANT_ESCALATION__BATCH_SIZE": "20",
            "ASSISTANT_LOGGING__LEVEL": "WARNING",
        }
        procs = [
            subprocess.Popen([sys.executable, "-m", "assistant", "worker", "--id", f"bench-{n}", "--idle-exit", "3"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for n in (1, 2)
        ]
        for proc in procs:  # wait until both are running
            assert proc.stderr is not None
            proc.stderr.readline()
        before, dup_before = len(store.received), store.duplicates
        tag = uuid.uuid4().hex[:8]
        first_report = ids[0] if ids else None
        with services.db.session() as s:
            now = utcnow()
            s.add_all(
                OutboxMessage(
                    kind="alert", event_type="alert.bench", report_id=first_report, report_version=1,
                    destination="hotline_111", dedupe_key=f"bench:{tag}:{n}", message_id=f"bench.{tag}.{n}",
                    payload={"type": "alert.bench", "timestamp": now.isoformat(), "data": {"n": n}},
                    status="pending", attempts=0, next_attempt_at=now - timedelta(seconds=1), failure_alerted=False,
                    created_at=now,
                )
                for n in range(outbox_rows)
            )
        started = time.perf_counter()
        deadline = time.time() + 300
        while time.time() < deadline and len(store.received) - before < outbox_rows:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        done = len(store.received) - before
        for proc in procs:
            proc.wait(timeout=60)
        with services.db.session() as s:
            rows = s.execute(
                select(DeliveryAttempt.worker, func.count())
                .join(OutboxMessage, OutboxMessage.id == DeliveryAttempt.outbox_id)
                .where(OutboxMessage.dedupe_key.like(f"bench:{tag}:%"))
                .group_by(DeliveryAttempt.worker)
            ).all()
            per_worker = {row[0]: row[1] for row in rows}
        print(
            f"{'outbox throughput (2 workers)':<34} {done} rows in {elapsed:.2f} s = {done / elapsed:.0f} rows/s"
            f"   (duplicates at receiver: {store.duplicates - dup_before}; by worker: {per_worker})"
        )
        results.update(throughput_rows_per_s=done / elapsed, rows=done, duplicates=store.duplicates - dup_before,
                       per_worker=per_worker)
    finally:
        services.close()
        server.shutdown()
        police_server.shutdown()
    return results
