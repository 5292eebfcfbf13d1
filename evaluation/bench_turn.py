"""``python -m assistant bench turn``: what one chat turn costs, part by part, in CPU time.

``bench chat`` measures the service from outside (HTTP, 20 clients, two cores shared
with the load generator). This runs the same message mix through the same services
in-process, on one thread, with nothing else running, and charges the CPU time of
that thread to each part of a turn:

- ``history``: reading the conversation and its recent user messages (a continued one);
- ``normalize``, ``risk``, ``respond``: the pipeline's stages; ``respond`` holds
  ``retrieval`` (hybrid search), which holds ``query embedding`` (the ONNX embedder,
  only on a query-cache miss when BM25 alone does not settle the answer);
- ``store``: the turn's one write transaction, which holds ``escalation`` (the hook that
  opens or extends a tip report).

A turn without ``retrieval`` is the part of the service that no faster embedder or
search can remove. With a ``bench chat`` report of the same machine beside it, the run
also prints what the HTTP layer, the request threads and the delivery worker add (that
report's service CPU per message minus this run's total), what the load generator takes,
and the CPU time per message that 3x the baseline's capacity would leave.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.bench_chat import (
    REPORTS_DIR,
    BenchMessage,
    MessageMix,
    cpu_budget_for,
    note_unprepared,
    scratch_data_dir,
)

PARTS = (
    ("total", 0),
    ("history", 1),
    ("normalize", 1),
    ("risk", 1),
    ("respond", 1),
    ("retrieval", 2),
    ("query embedding", 3),
    ("store", 1),
    ("escalation", 2),
)
"""Report order and nesting depth (a part's time is included in its parent's)."""


@dataclass
class PartTimes:
    """CPU seconds of the calling thread and call counts, per part."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)

    def timed(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.thread_time() - started
                self.calls[part] += 1

        return wrapper


class _TimedStage:
    def __init__(self, stage: Any, times: PartTimes) -> None:
        self.name = stage.name
        self._call = times.timed(stage.name, stage)

    def __call__(self, turn: Any) -> None:
        self._call(turn)


@contextmanager
def instrumented(services: Any, times: PartTimes) -> Iterator[None]:
    """Charge each part of ``services.chat.handle`` to ``times``; everything is put back after."""
    chat, pipeline, index = services.chat, services.pipeline, services.index
    with ExitStack() as undo:

        def patch(obj: Any, attr: str, part: str) -> None:
            had_own = attr in vars(obj)
            original = getattr(obj, attr)
            setattr(obj, attr, times.timed(part, original))
            undo.callback(lambda: setattr(obj, attr, original) if had_own else delattr(obj, attr))

        stages, hooks = pipeline.stages, chat.hooks
        pipeline.stages = [_TimedStage(s, times) for s in stages]
        undo.callback(setattr, pipeline, "stages", stages)
        chat.hooks = [times.timed("escalation", h) for h in hooks]
        undo.callback(setattr, chat, "hooks", hooks)
        patch(chat, "handle", "total")
        patch(chat, "_store", "store")
        patch(index, "search", "retrieval")
        patch(index.embedder, "embed_queries", "query embedding")
        yield


def conversation_plan(mix: MessageMix, count: int, seed: int) -> list[tuple[BenchMessage, bool]]:
    """``count`` messages as ``bench chat``'s clients send them: conversations of 2-5 turns
    of one audience; a disclosure opens a conversation of its own and ends it. Each item:
    (message, whether it continues the previous message's conversation)."""
    rng = random.Random(seed)
    plan: list[tuple[BenchMessage, bool]] = []
    while len(plan) < count:
        audience = "child" if rng.random() < mix.child_share else "parent"
        for turn in range(rng.randint(2, 5)):
            message = mix.draw(rng, audience)
            plan.append((message, turn > 0 and message.kind != "disclosure"))
            if message.kind == "disclosure" or len(plan) == count:
                break
    return plan


def profile_turns(services: Any, messages: int = 3000, warmup: int = 200, seed: int = 7,
                  disclosure_share: float = 0.02) -> dict[str, Any]:
    """Run ``warmup`` then ``messages`` turns through ``services.chat`` on this thread."""
    mix = MessageMix.load(seed, disclosure_share)
    plan = conversation_plan(mix, warmup + messages, seed)

    def run(items: list[tuple[BenchMessage, bool]]) -> Counter[str]:
        kinds: Counter[str] = Counter()
        conversation: str | None = None
        for message, continues in items:
            result = services.chat.handle(
                message.text, message.audience, conversation_id=conversation if continues else None
            )
            conversation = result.conversation_id
            kinds[message.kind] += 1
        return kinds

    run(plan[:warmup])  # caches and lazily loaded parts, as in a service that has been up a while
    index = services.index
    misses, skips = index.query_cache_misses, index.dense_skips
    times = PartTimes()
    wall, process = time.perf_counter(), time.process_time()
    with instrumented(services, times):
        kinds = run(plan[warmup:])
    wall, process = time.perf_counter() - wall, time.process_time() - process
    n = sum(kinds.values())
    ms = {part: 1000 * times.seconds[part] / n for part, _ in PARTS}
    ms["history"] = ms["total"] - ms["normalize"] - ms["risk"] - ms["respond"] - ms["store"]
    embeds = times.calls["query embedding"]
    return {
        "messages": n,
        "kinds": dict(kinds),
        "cpu_ms_per_message": {part: round(ms[part], 3) for part, _ in PARTS},
        "share_of_total": {part: round(ms[part] / ms["total"], 3) for part, _ in PARTS if part != "total"},
        "query_embeddings": embeds,
        "ms_per_query_embedding": round(1000 * times.seconds["query embedding"] / embeds, 2) if embeds else None,
        "retrievals": times.calls["retrieval"],
        "dense_skips": index.dense_skips - skips,
        "query_cache_misses": index.query_cache_misses - misses,
        "tip_report_hook_calls": times.calls["escalation"],
        "process_cpu_ms_per_message": round(1000 * process / n, 3),
        "wall_ms_per_message": round(1000 * wall / n, 3),
        "one_thread_ceiling_msg_s": round(1000 / ms["total"], 1),
        "without_retrieval_ms_per_message": round(ms["total"] - ms["retrieval"], 3),
    }


def compare_with_chat(profile: dict[str, Any], chat_report: dict[str, Any]) -> dict[str, Any] | None:
    """What the HTTP layer and the load generator add, from a ``bench chat`` report of the
    same machine, and the CPU per message 3x the baseline's capacity would allow."""
    runs = chat_report.get("runs", {})
    service, baseline = runs.get("service", {}).get("capacity"), runs.get("baseline", {}).get("capacity")
    cpus = chat_report.get("machine", {}).get("cpus")
    if not service or not service.get("cpu_ms_per_message"):
        return None
    out: dict[str, Any] = {
        "service_cpu_ms_per_message_over_http": service["cpu_ms_per_message"],
        "http_and_threads_ms_per_message": round(
            service["cpu_ms_per_message"] - profile["cpu_ms_per_message"]["total"], 2
        ),
    }
    if service.get("client_cpu_ms_per_message") is not None:
        out["client_cpu_ms_per_message"] = service["client_cpu_ms_per_message"]
    if baseline and cpus:
        out["baseline_capacity_msg_s"] = baseline["throughput_msg_s"]
        out["cpu_budget_ms_for_3x"] = cpu_budget_for(3, baseline["throughput_msg_s"], cpus)
    return out


def print_profile(report: dict[str, Any]) -> None:
    p = report["profile"]
    print(f"\nbench turn: {p['messages']} messages {p['kinds']} in-process on one thread "
          f"({report['config']['warmup']} before, not counted); CPU time of that thread:")
    for part, depth in PARTS:
        share = "" if part == "total" else f"{p['share_of_total'][part]:7.1%}"
        print(f"  {'  ' * depth}{part:<{24 - 2 * depth}s}{p['cpu_ms_per_message'][part]:8.3f} ms/msg {share}")
    embed = p["ms_per_query_embedding"]
    print(f"query embeddings {p['query_embeddings']} of {p['retrievals']} retrievals "
          f"({p['dense_skips']} settled by BM25 alone, the rest from the query cache)"
          + (f", {embed:g} ms each" if embed else ""))
    print(f"tip-report hook calls {p['tip_report_hook_calls']}; whole process CPU "
          f"{p['process_cpu_ms_per_message']:g} ms/msg, wall {p['wall_ms_per_message']:g} ms/msg")
    print(f"one interpreter thread, no HTTP: at most {p['one_thread_ceiling_msg_s']:g} msg/s; without retrieval "
          f"a turn still costs {p['without_retrieval_ms_per_message']:g} ms")
    c = report.get("bench_chat")
    if c:
        line = (f"with bench chat's last report ({report['config']['chat_report']}): service CPU over HTTP "
                f"{c['service_cpu_ms_per_message_over_http']:g} ms/msg, so the HTTP layer, request threads and the "
                f"delivery worker add {c['http_and_threads_ms_per_message']:g}")
        if "client_cpu_ms_per_message" in c:
            line += f"; the load generator {c['client_cpu_ms_per_message']:g}"
        if "cpu_budget_ms_for_3x" in c:
            line += (f"; 3x the baseline's {c['baseline_capacity_msg_s']:g} msg/s leaves "
                     f"{c['cpu_budget_ms_for_3x']:g} ms of CPU per message on all cores, service and client together")
        print(line)
    print(f"written: {report['written']}")


def run_bench_turn(
    messages: int = 3000, warmup: int = 200, data_dir: Path | None = None, out: Path = REPORTS_DIR,
    seed: int = 7, services: Any = None, database_url: str | None = None,
) -> dict[str, Any]:
    """Profile on ``services``, or on services built over a scratch copy of ``data_dir``
    (its models and index reused; ``database_url``, or a fresh SQLite file)."""
    from assistant.settings import Settings

    scratch: Path | None = None
    own = services is None
    try:
        if own:
            settings = Settings()
            source = (data_dir or settings.data_path).expanduser().resolve()
            scratch = Path(tempfile.mkdtemp(prefix="bench-turn-"))
            work = scratch_data_dir(source, scratch / "data")
            settings = settings.model_copy(update={
                "data_dir": work, "database": settings.database.model_copy(update={"url": database_url or ""}),
            })
            from assistant.services import build_services

            note_unprepared(source)
            print(f"loading the services on a scratch copy of {source} ...", file=sys.stderr, flush=True)
            services = build_services(settings, prepare=True)
        profile = profile_turns(services, messages, warmup, seed)
    finally:
        if own and services is not None:
            services.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    chat_path = out / "bench_chat.json"
    report: dict[str, Any] = {
        "config": {"messages": messages, "warmup": warmup, "seed": seed, "chat_report": str(chat_path)},
        "profile": profile,
    }
    if chat_path.is_file():
        report["bench_chat"] = compare_with_chat(profile, json.loads(chat_path.read_text(encoding="utf-8")))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_turn.json"
    report["written"] = str(path)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print_profile(report)
    return report
