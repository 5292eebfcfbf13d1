"""``python -m assistant bench chat``: the message mix, the report count, and one short real run.

The real run starts the service and the baseline with uvicorn on scratch copies of
the test data directory and drives them for a few seconds; it checks the outputs,
never the speed (figures on a shared 2-core machine are noise at this size).
"""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from evaluation.bench_chat import BenchMessage, MessageMix, count_reports


@pytest.mark.unit
def test_mix_draws_every_kind_and_held_out_disclosures_once() -> None:
    mix = MessageMix.load(seed=1, disclosure_share=0.1)
    assert mix.disclosures and all(d["split"] == "heldout" and d["severity"] >= 3 for d in mix.disclosures)
    rng = random.Random(3)
    drawn = [mix.draw(rng, rng.choice(["child", "parent"])) for _ in range(2000)]
    kinds = {m.kind for m in drawn}
    assert kinds == {"question", "chitchat", "disclosure"}
    disclosures = [m.ref for m in drawn if m.kind == "disclosure"]
    assert 0.05 < len(disclosures) / len(drawn) < 0.15
    assert len(set(disclosures)) == len(disclosures)  # each sent once while the pool lasts
    assert all(m.audience in ("child", "parent") and m.text.strip() for m in drawn)


@pytest.mark.unit
def test_report_count_names_missed_disclosures_and_other_reports(tmp_path: Path) -> None:
    db = tmp_path / "bench.sqlite3"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE tip_report (id TEXT, conversation_id TEXT)")
        conn.execute("CREATE TABLE message (id INTEGER, conversation_id TEXT, role TEXT, severity INTEGER)")
        conn.executemany("INSERT INTO tip_report VALUES (?, ?)", [("r1", "c1"), ("r2", "c3")])
        conn.executemany(
            "INSERT INTO message VALUES (?, ?, ?, ?)",
            [(1, "c1", "user", 4), (2, "c1", "assistant", None), (3, "c2", "user", 0),
             (4, "c3", "user", 0), (5, "c3", "user", 3), (6, "c4", "user", 3), (7, "c5", "user", 2)],
        )
    sent = [("c1", BenchMessage("chú ấy sờ vào người em", "child", "disclosure", "d1")),
            ("c2", BenchMessage("em bị dọa tung ảnh", "child", "disclosure", "d2")),
            ("c4", BenchMessage("nó bắt em gửi ảnh", "child", "disclosure", "d4"))]
    texts = {"c1": ["chú ấy sờ vào người em"], "c2": ["em bị dọa tung ảnh"], "c3": ["xin chào", "câu hỏi bị chặn"],
             "c4": ["nó bắt em gửi ảnh"], "c5": ["bạn trêu em"]}
    out = count_reports(f"sqlite:///{db}", sent, texts)
    assert out["disclosures_sent"] == 3 and out["reports_for_disclosures"] == 1 and not out["equal"]
    assert out["missed"] == [
        {"id": "d2", "text": "em bị dọa tung ảnh", "judged": 0},  # the classifier's miss
        {"id": "d4", "text": "nó bắt em gửi ảnh", "judged": 3},  # escalated, yet no report: lost
    ]
    assert out["classifier_misses"] == 1 and out["escalated_without_report"] == 1
    assert out["reports_total"] == 2 and out["reports_from_other_messages"] == 1
    assert out["other_report_examples"] == ["câu hỏi bị chặn"]


@pytest.mark.unit
def test_report_count_refuses_a_database_the_service_did_not_write(tmp_path: Path) -> None:
    from evaluation.bench_chat import ReportsNotCounted

    sent = [("c1", BenchMessage("chú ấy sờ vào người em", "child", "disclosure", "d1"))]
    texts = {"c1": ["chú ấy sờ vào người em"], "c2": ["xin chào"]}
    empty = tmp_path / "empty.sqlite3"
    with pytest.raises(ReportsNotCounted, match="cannot read sqlite:///.*empty.sqlite3: OperationalError"):
        count_reports(f"sqlite:///{empty}", sent, texts)  # no tables: not the service's database
    other = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("CREATE TABLE tip_report (id TEXT, conversation_id TEXT)")
        conn.execute("CREATE TABLE message (id INTEGER, conversation_id TEXT, role TEXT, severity INTEGER)")
        conn.execute("INSERT INTO message VALUES (1, 'x9', 'user', 0)")
    with pytest.raises(ReportsNotCounted, match="none of this run's 2 conversations .* --database-url"):
        count_reports(f"sqlite:///{other}", sent, texts)  # every disclosure would look missed
    with pytest.raises(ReportsNotCounted, match="not a database URL this service supports") as caught:
        count_reports("mysql://bench:secret@db/x", sent, texts)
    assert "secret" not in str(caught.value)  # the password is never printed


@pytest.mark.unit
def test_report_without_counted_disclosures_prints_why_and_judges_no_report_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from evaluation.bench_chat import _finish, print_report

    phase = {"latency_ms": {"p50": 10.0, "p95": 20.0, "p99": 30.0}, "throughput_msg_s": 60.0, "rate": 50.0,
             "errors": 0, "cpu_ms_per_message": 10.0, "client_cpu_ms_per_message": 2.0,
             "messages": 10, "distinct_texts": 5, "error_rate": 0.0}
    report: dict[str, Any] = {
        "config": {"concurrency": 20, "duration_s": 1.0, "warmup_s": 1.0, "workers": 1, "soak": False},
        "machine": {"cpus": 2, "load_before": "-", "load_after": "-"},
        "runs": {"service": {"steady": phase, "errors": 0, "memory": {"available": False}}},
        "disclosures": {"counted": False, "reason": "none of this run's 3 conversations are in sqlite:///x"},
        "written": [],
    }
    _finish(report)
    assert report["targets"]["disclosures=reports"] is None
    assert report["targets"]["no escalation without a report"] is None
    print_report(report)
    printed = capsys.readouterr().out
    assert "tip reports NOT COUNTED: none of this run's 3 conversations" in printed
    assert "disclosures=reports" not in printed and "0 errors ok" in printed


@pytest.mark.integration
def test_short_run_writes_reports_and_checks_disclosures(
    services: Any, shared_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.__main__ import main

    assert services.index.ready  # models and index of the shared data dir are built
    out = tmp_path / "reports"
    code = main([
        "bench", "chat", "--concurrency", "2", "--duration", "3", "--warmup", "1", "--rate", "8",
        "--disclosure-share", "0.3", "--quality-limit", "6", "--data-dir", str(shared_settings.data_path),
        "--out", str(out),
    ])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "bench_chat.json").read_text())
    for name in ("bench_chat_latency.png", "bench_chat_throughput.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for system in ("service", "baseline"):
        run = report["runs"][system]
        for phase in ("steady", "capacity"):
            assert run[phase]["messages"] > 0
            assert set(run[phase]["latency_ms"]) == {"p50", "p95", "p99", "max", "mean"}
            assert sum(run[phase]["latency_histogram_ms"]["counts"]) > 0
            assert run[phase]["cpu_ms_per_message"] > 0
            assert run[phase]["client_cpu_ms_per_message"] > 0
        assert run["memory"]["available"] and run["memory"]["peak_rss_mib"] > 50
        assert report["quality"][system]["n"] == 6
    d = report["disclosures"]
    assert d["disclosures_sent"] > 0
    assert d["reports_for_disclosures"] + len(d["missed"]) == d["disclosures_sent"]
    assert d["equal"] == (not d["missed"])
    assert d["reports_total"] == d["reports_for_disclosures"] + d["reports_from_other_messages"]
    assert d["escalated_without_report"] == 0  # reports are opened in the turn's own transaction
    assert d["classifier_misses"] == len(d["missed"])
    assert set(report["ratios"]) >= {"capacity_throughput", "steady_latency_p95", "capacity_cpu_per_message"}
    budget = report["three_x_budget"]
    assert budget["cpu_ms_per_message_allowed"] == round(
        report["machine"]["cpus"] * 1000 / (3 * report["runs"]["baseline"]["capacity"]["throughput_msg_s"]), 2
    )
    assert budget["cpu_ms_per_message_used"] == round(budget["service"] + budget["load_generator"], 2)
    assert "CPU ms per message" in printed and "3x the baseline (" in printed
    assert "disclosures sent" in printed and "targets:" in printed and "peak RSS MiB" in printed


def test_cpu_seconds_counts_this_process_and_ignores_missing_ones() -> None:
    import os
    import time

    from evaluation.bench_chat import cpu_seconds

    before = cpu_seconds([os.getpid()])
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = cpu_seconds([os.getpid()])
    assert after - before >= 0.1
    assert cpu_seconds([2**22 + 12345]) == 0.0  # no such process


def test_stage_means_read_the_services_metrics_and_write_lock() -> None:
    from assistant.db.session import WriteLock
    from assistant.metrics import Metrics
    from evaluation.bench_chat import parse_stages, stage_means

    metrics, lock = Metrics(), WriteLock()
    metrics.watch_write_lock(lock)
    before = parse_stages(metrics.render().decode())
    metrics.observe_stage("risk", 0.002)
    metrics.observe_stage("risk", 0.004)
    for _ in range(2):
        assert lock.acquire()
        lock.release()
    after = parse_stages(metrics.render().decode())
    means = stage_means(before, after)
    assert means["risk"] == 3.0
    acquisitions, waited, held = lock.stats()
    assert acquisitions == 2 and after["write_lock_held"] == pytest.approx((held, 2.0))
    assert means["write_lock_wait"] == round(waited / 2 * 1000, 2) and "write_lock_held" in means


@pytest.mark.unit
def test_unprepared_data_dir_is_named_before_minutes_of_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaluation.bench_chat import note_unprepared

    (tmp_path / "models").mkdir()
    note_unprepared(tmp_path)
    assert f"no models/index under {tmp_path}" in capsys.readouterr().err
    (tmp_path / "index").mkdir()
    note_unprepared(tmp_path)
    assert capsys.readouterr().err == ""
