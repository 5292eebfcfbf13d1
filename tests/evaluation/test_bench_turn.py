"""``python -m assistant bench turn``: the conversation plan, the part timer, the comparison
with a ``bench chat`` report, and one short real profile.

The real profile checks the structure of what is measured (nesting, counts, everything
put back afterwards), never the speed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from evaluation.bench_chat import MessageMix
from evaluation.bench_turn import PARTS, PartTimes, compare_with_chat, conversation_plan


@pytest.mark.unit
def test_plan_keeps_conversations_of_one_audience_and_disclosures_alone() -> None:
    mix = MessageMix.load(seed=2, disclosure_share=0.1)
    plan = conversation_plan(mix, 500, seed=2)
    assert len(plan) == 500
    assert not plan[0][1]  # the first message opens a conversation
    length = 0
    for (previous, _), (message, continues) in zip(plan, plan[1:], strict=False):
        if message.kind == "disclosure":
            assert not continues
        if continues:
            assert message.audience == previous.audience and previous.kind != "disclosure"
            length += 1
            assert length < 5
        else:
            length = 0
    assert {m.kind for m, _ in plan} == {"question", "chitchat", "disclosure"}
    assert sum(c for _, c in plan) > 200  # most messages continue a conversation


@pytest.mark.unit
def test_part_times_charge_cpu_and_calls_even_when_the_call_fails() -> None:
    times = PartTimes()

    def busy(until: float) -> int:
        while time.thread_time() < until:
            pass
        return 7

    def broken() -> None:
        raise ValueError("boom")

    assert times.timed("busy", busy)(time.thread_time() + 0.02) == 7
    with pytest.raises(ValueError):
        times.timed("broken", broken)()
    assert times.seconds["busy"] >= 0.02 and times.calls["busy"] == 1
    assert times.calls["broken"] == 1


@pytest.mark.unit
def test_comparison_gives_http_share_and_the_3x_budget() -> None:
    profile = {"cpu_ms_per_message": {"total": 8.0}}
    chat = {
        "machine": {"cpus": 2},
        "runs": {
            "service": {"capacity": {"cpu_ms_per_message": 11.5, "client_cpu_ms_per_message": 2.1}},
            "baseline": {"capacity": {"throughput_msg_s": 100.0}},
        },
    }
    out = compare_with_chat(profile, chat)
    assert out == {
        "service_cpu_ms_per_message_over_http": 11.5,
        "http_and_threads_ms_per_message": 3.5,
        "client_cpu_ms_per_message": 2.1,
        "baseline_capacity_msg_s": 100.0,
        "cpu_budget_ms_for_3x": 6.67,
    }
    assert compare_with_chat(profile, {"runs": {}}) is None


@pytest.mark.integration
def test_short_profile_nests_parts_and_puts_the_services_back(
    services: Any, shared_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.__main__ import main

    assert services.index.ready  # models and index of the shared data dir are built
    (tmp_path / "bench_chat.json").write_text(json.dumps({
        "machine": {"cpus": 2},
        "runs": {"service": {"capacity": {"cpu_ms_per_message": 50.0, "client_cpu_ms_per_message": 3.0}},
                 "baseline": {"capacity": {"throughput_msg_s": 40.0}}},
    }))
    code = main([
        "bench", "turn", "--messages", "40", "--warmup", "5",
        "--data-dir", str(shared_settings.data_path), "--out", str(tmp_path),
    ])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "bench_turn.json").read_text())
    p = report["profile"]
    ms = p["cpu_ms_per_message"]
    assert p["messages"] == 40 and sum(p["kinds"].values()) == 40
    assert set(ms) == {part for part, _ in PARTS}
    assert all(v >= 0 for v in ms.values())
    assert ms["query embedding"] <= ms["retrieval"] <= ms["respond"] < ms["total"]
    assert 0 < ms["escalation"] < ms["store"] < ms["total"]
    assert p["tip_report_hook_calls"] == 40  # the hook sees every user message
    assert p["query_embeddings"] == p["query_cache_misses"] <= p["retrievals"] - p["dense_skips"]
    assert report["bench_chat"]["cpu_budget_ms_for_3x"] == round(2000 / 120, 2)
    assert "query embedding" in printed and "3x the baseline's 40 msg/s" in printed


@pytest.mark.integration
def test_instrumentation_is_undone(services: Any) -> None:
    from evaluation.bench_turn import PartTimes, instrumented

    stages, hooks = list(services.pipeline.stages), list(services.chat.hooks)
    times = PartTimes()
    with instrumented(services, times):
        assert "handle" in vars(services.chat) and services.pipeline.stages != stages
        services.chat.handle("chào bạn", "child")
    assert times.calls["total"] == 1 and times.calls["normalize"] == 1
    assert "handle" not in vars(services.chat) and "_store" not in vars(services.chat)
    assert "search" not in vars(services.index) and "embed_queries" not in vars(services.index.embedder)
    assert services.pipeline.stages == stages and services.chat.hooks == hooks
