"""``python -m assistant bench chat``: end-to-end load, soak and a side-by-side baseline.

The bench drives the chat API over HTTP (``POST /api/v1/chat``) with N concurrent
clients in a closed loop (each sends its next message when the previous answer
arrived), or, with ``--rate``/``--soak``, paced to a steady rate. The messages
come from the project's own data:

- children's and parents' questions (``evaluation/data/retrieval/questions_*.jsonl``,
  every writing style: with and without diacritics, teen code), some with the
  small openings and endings people type ("cho em hỏi", "ạ", "??");
- chit-chat and greetings;
- ~2% disclosures: the held-out severity >= 3 messages of
  ``evaluation/data/risk/messages.jsonl`` (each sent once, first in a new
  conversation, so each must open exactly one tip report).

A conversation lasts a few turns, then the client starts a new one.

Unless ``--url`` points at a running service, the bench starts it with uvicorn in
a subprocess on a scratch data directory: the trained models of ``--data-dir``
(default: the settings' data directory) are linked, its index copied, and the
database is a fresh SQLite file, so nothing is rebuilt and nothing of the source
is written. Rate limits are off in that instance (every client shares one IP).
The baseline (``evaluation/baseline_rag.py``) is started the same way on a copy
of the same index and driven with the same message sequence.

After the load, both are asked the held-out evaluation questions once
(sequentially) and the article each cites is compared with the gold ones (R@1).
The tip reports are counted in the service's database: every disclosure sent
must have opened one; missed disclosures (each a classifier miss or a lost report)
and reports opened by messages that were not disclosures are listed.

Peak RSS is read from ``/proc`` (the service process and its uvicorn workers):
the sum of each process's high-water mark (``VmHWM``), and PSS sampled during the
run (shared pages counted once). Figures are printed and written as JSON plus
two PNG charts under ``evaluation/reports/`` (or ``--out``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

if TYPE_CHECKING:
    from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(__file__).resolve().parent / "data"
REPORTS_DIR = Path(__file__).resolve().parent / "reports"
CHAT_PATH = "/api/v1/chat"
MIB = 1024 * 1024

CHITCHAT: dict[str, tuple[str, ...]] = {
    "child": (
        "chào bạn", "xin chào", "chao ban", "hi", "hello bot", "alo", "bạn ơi", "ad ơi", "bot ơi có ai không",
        "cảm ơn bạn nhiều", "cam on nha", "thanks", "tks ad", "ok", "oki", "dạ vâng", "uk", "vâng ạ",
        "bạn là ai vậy", "ban la ai", "bạn có phải người thật không", "bạn tên gì", "tạm biệt", "bye", "hihi",
        "haha", "bạn giúp được gì cho mình", "mình muốn hỏi một chuyện", "e hỏi cái này đc ko", "hay quá",
        "chúc ngủ ngon", "hôm nay trời nóng quá",
    ),
    "parent": (
        "chào bạn", "xin chào", "cảm ơn", "cam on ban", "ok cảm ơn", "bạn là ai", "trang này của ai vậy",
        "tôi muốn hỏi về con tôi", "bạn giúp được gì cho phụ huynh", "tạm biệt",
    ),
}
OPENINGS = {
    "child": ("cho em hỏi ", "ad ơi ", "mn ơi cho hỏi ", "cho mình hỏi ", "bot ơi "),
    "parent": ("cho tôi hỏi ", "xin hỏi ", "chào bạn, ", "cho mình hỏi "),
}
ENDINGS = (" ạ", " vậy", "?", " với ạ", "??", " nhé")


# -- the message mix ------------------------------------------------------------
@dataclass(frozen=True)
class BenchMessage:
    text: str
    audience: str
    kind: str  # question | chitchat | disclosure
    ref: str = ""  # question or corpus message id


@dataclass
class MessageMix:
    questions: dict[str, list[dict[str, Any]]]
    disclosures: list[dict[str, Any]]
    disclosure_share: float = 0.02
    chitchat_share: float = 0.2
    child_share: float = 0.75
    _next_disclosure: int = 0

    @classmethod
    def load(cls, seed: int = 7, disclosure_share: float = 0.02) -> MessageMix:
        questions: dict[str, list[dict[str, Any]]] = {"child": [], "parent": []}
        for path in sorted((DATA_DIR / "retrieval").glob("questions_*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    questions[row["audience"]].append(row)
        disclosures = [
            row
            for line in (DATA_DIR / "risk" / "messages.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip() and (row := json.loads(line))["split"] == "heldout" and row["severity"] >= 3
        ]
        random.Random(seed).shuffle(disclosures)
        return cls(questions, disclosures, disclosure_share)

    def draw(self, rng: random.Random, audience: str) -> BenchMessage:
        roll = rng.random()
        if roll < self.disclosure_share and self.disclosures:
            row = self.disclosures[self._next_disclosure % len(self.disclosures)]
            self._next_disclosure += 1  # one event loop: no lock needed
            return BenchMessage(row["text"], row["audience"], "disclosure", row["id"])
        if roll < self.disclosure_share + self.chitchat_share:
            return BenchMessage(rng.choice(CHITCHAT[audience]), audience, "chitchat")
        row = rng.choice(self.questions[audience])
        text = row["question"]
        if rng.random() < 0.25:
            text = rng.choice(OPENINGS[audience]) + text
        if rng.random() < 0.25:
            text = text.rstrip("?") + rng.choice(ENDINGS)
        return BenchMessage(text, audience, "question", row["id"])


# -- processes and memory -------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (uvicorn's worker processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time used so far by ``pids`` (from /proc; 0 for a process gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def pid_listening_on(port: int) -> int | None:
    """The pid of the process holding the listening socket on ``port`` (for ``--url``)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found.append(int(entry))
                break
    # With several uvicorn workers the supervisor and every worker hold the socket: the oldest is the root.
    return min(found) if found else None


class MemorySampler:
    """Samples RSS and PSS of a process tree once a second in a thread."""

    def __init__(self, pid: int | None, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (t, rss MiB, pss MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)
        self.t0 = time.perf_counter()

    def pids(self) -> list[int]:
        return [] if self.pid is None else [self.pid, *_children(self.pid)]

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self.pids()
            rss = sum(_status_kib(p, "VmRSS") for p in pids) / 1024
            pss = sum(_pss_kib(p) for p in pids) / 1024
            self.samples.append((time.perf_counter() - self.t0, rss, pss))
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        if self.pid is not None:
            self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the peak figures (read before the service stops)."""
        pids = self.pids()
        hwm = sum(_status_kib(p, "VmHWM") for p in pids) / 1024
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.pid is None:
            return {"available": False}
        return {
            "available": True,
            "processes": len(pids),
            "peak_rss_mib": round(hwm, 1),
            "peak_pss_mib": round(max((s[2] for s in self.samples), default=0.0), 1),
            "samples": [(round(t, 1), round(r, 1), round(p, 1)) for t, r, p in self.samples],
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scratch_data_dir(source: Path, target: Path) -> Path:
    """A data directory that reuses ``source``'s trained models (linked) and index (copied)."""
    target.mkdir(parents=True)
    if (source / "models").is_dir():
        (target / "models").symlink_to((source / "models").resolve(), target_is_directory=True)
    if (source / "index").is_dir():
        shutil.copytree(source / "index", target / "index", symlinks=False)
    return target


def note_unprepared(source: Path) -> None:
    """Say so when ``source`` lacks the trained models or the index a bench would reuse."""
    if not (source / "index").is_dir() or not (source / "models").is_dir():
        print(f"note: no models/index under {source}: built in a scratch directory and dropped after "
              "(minutes; `make run` builds them once in the data directory)", file=sys.stderr)


def service_env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(data_dir),
        "ASSISTANT_DATABASE__URL": database_url or "",  # default: a fresh SQLite file in the scratch directory
        "ASSISTANT_WIDGET__RATE_LIMIT_ENABLED": "false",  # all clients share 127.0.0.1
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ANONYMIZED_TELEMETRY": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


def service_app() -> FastAPI:
    """uvicorn factory of the assistant as ``serve`` builds it. With several workers the data
    directory is prepared once beforehand (``BENCH_PREPARED=1``), not by every worker at once."""
    from assistant.app import create_app
    from assistant.settings import Settings

    settings = Settings()
    prepare = os.environ.get("BENCH_PREPARED") != "1"
    return create_app(settings, prepare=prepare, run_worker=settings.escalation.worker_in_serve)


def prepare_service() -> None:
    """Migrations, cached models and index of the data directory in the environment."""
    from assistant.logs import configure_logging
    from assistant.services import build_services
    from assistant.settings import Settings

    settings = Settings()
    configure_logging(settings.logging)
    build_services(settings, prepare=True).close()


class ServiceProcess:
    """uvicorn in a subprocess (its own session, stopped with SIGTERM)."""

    def __init__(self, name: str, app: str, data_dir: Path, workers: int, database_url: str | None = None) -> None:
        self.name = name
        self.app = app
        self.data_dir = data_dir
        self.workers = workers
        self.env = service_env(data_dir, database_url)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0

    def run_prepare(self) -> None:
        self.env["BENCH_PREPARED"] = "1"
        with self.log_path.open("ab") as log:
            code = "from evaluation.bench_chat import prepare_service; prepare_service()"
            done = subprocess.run(
                [sys.executable, "-c", code], env=self.env, cwd=ROOT, stdout=log, stderr=log, check=False
            )
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: preparing the data directory failed:\n{self.log_tail()}")

    def start(self, timeout: float = 600) -> ServiceProcess:
        started = time.perf_counter()
        cmd = [
            sys.executable, "-m", "uvicorn", self.app, "--factory", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning",
            "--no-access-log",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        self.started_in = time.perf_counter() - started
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_errors(self, limit: int = 12) -> list[str]:
        """The last error lines of the service's log (to explain failed requests)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        keys = ('"level": "ERROR"', '"level": "CRITICAL"', "Traceback", "Error:", "error:")
        return [line[:400] for line in lines if any(k in line for k in keys)][-limit:]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.proc.wait()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# -- the load -------------------------------------------------------------------
@dataclass
class Record:
    start: float  # seconds since the run started
    latency: float  # seconds
    status: int  # HTTP status; 0 = no answer (connection error, timeout)
    kind: str
    error: str = ""


@dataclass
class LoadRun:
    name: str
    records: list[Record] = field(default_factory=list)
    disclosures: list[tuple[str, BenchMessage]] = field(default_factory=list)  # (conversation_id, message)
    disclosure_replies: list[str] = field(default_factory=list)  # reply texts to the disclosures
    conversations: dict[str, list[str]] = field(default_factory=dict)  # id -> user texts stored, in order
    texts_sent: set[str] = field(default_factory=set)
    wall: float = 0.0


async def _client_loop(
    client: httpx.AsyncClient, run: LoadRun, mix: MessageMix, rng: random.Random, t0: float, end: float,
    interval: float,
) -> None:
    conversation: str | None = None
    turns_left = 0
    audience = "child"
    next_at = time.perf_counter() + rng.random() * interval
    while True:
        if interval:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at + interval, time.perf_counter() - interval)
        if time.perf_counter() >= end:
            return
        if turns_left <= 0:
            conversation, turns_left = None, rng.randint(2, 5)
            audience = "child" if rng.random() < mix.child_share else "parent"
        message = mix.draw(rng, audience)
        if message.kind == "disclosure":
            conversation = None  # a disclosure opens its own conversation (and report)
        payload: dict[str, Any] = {"text": message.text, "audience": message.audience}
        if conversation:
            payload["conversation_id"] = conversation
        run.texts_sent.add(message.text)
        started = time.perf_counter()
        try:
            response = await client.post(CHAT_PATH, json=payload)
            status, error = response.status_code, ""
            body = response.json() if status == 200 else None
            if status != 200:
                error = response.text[:200]
        except (httpx.HTTPError, ValueError) as exc:
            status, error, body = 0, f"{type(exc).__name__}: {exc}"[:200], None
        run.records.append(Record(started - t0, time.perf_counter() - started, status, message.kind, error))
        turns_left -= 1
        if body is not None:
            conversation = body["conversation_id"]
            run.conversations.setdefault(body["conversation_id"], []).append(message.text)
            if message.kind == "disclosure":
                run.disclosures.append((body["conversation_id"], message))
                run.disclosure_replies.append(body["reply"]["text"])
        if message.kind == "disclosure" or body is None:
            turns_left = 0


async def drive(
    name: str, url: str, mix: MessageMix, concurrency: int, duration: float, seed: int, rate: float | None = None,
) -> LoadRun:
    """``concurrency`` clients for ``duration`` seconds; closed loop, or paced to ``rate`` msg/s in total."""
    run = LoadRun(name)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    interval = concurrency / rate if rate else 0.0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        t0 = time.perf_counter()
        end = t0 + duration
        await asyncio.gather(
            *(
                _client_loop(client, run, mix, random.Random(seed * 1000 + i), t0, end, interval)
                for i in range(concurrency)
            )
        )
        run.wall = time.perf_counter() - t0
    return run


def summarize(run: LoadRun, warmup: float) -> dict[str, Any]:
    measured = [r for r in run.records if r.start >= warmup]
    ok = [r for r in measured if r.status == 200]
    errors = [r for r in run.records if r.status != 200]
    window = max(1e-9, max((r.start + r.latency for r in measured), default=warmup) - warmup)
    lat = np.array([r.latency for r in ok]) * 1000 if ok else np.zeros(1)
    per_second = np.zeros(int(np.ceil(run.wall)) + 1, dtype=int)
    for r in run.records:
        if r.status == 200:
            per_second[int(r.start + r.latency)] += 1
    by_kind = {}
    for kind in ("question", "chitchat", "disclosure"):
        values = [r.latency * 1000 for r in ok if r.kind == kind]
        if values:
            by_kind[kind] = {"n": len(values), "p50_ms": round(float(np.percentile(values, 50)), 1),
                             "p95_ms": round(float(np.percentile(values, 95)), 1)}
    return {
        "messages": len(measured),
        "messages_total": len(run.records),
        "distinct_texts": len(run.texts_sent),
        "window_s": round(window, 2),
        "throughput_msg_s": round(len(ok) / window, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
            "mean": round(float(lat.mean()), 1),
        },
        "latency_by_kind": by_kind,
        "errors": len(errors),
        "error_rate": round(len(errors) / max(1, len(run.records)), 4),
        "error_examples": sorted({f"{r.status} {r.error}" for r in errors})[:5],
        "throughput_per_second": per_second.tolist(),
        "latencies_ms": [round(float(v), 2) for v in lat] if ok else [],
    }


# -- tip reports and answer quality ---------------------------------------------
class ReportsNotCounted(RuntimeError):
    """The database given to count tip reports in is not the one the service wrote to."""


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy can parse: never echo what may hold a password
        return "the database URL given"


def count_reports(
    database_url: str, disclosures: Sequence[tuple[str, BenchMessage]], conversations: dict[str, list[str]]
) -> dict[str, Any]:
    """Every disclosure sent must have opened a report on its conversation.

    A missed disclosure is either a classifier miss (every turn of its conversation was
    stored with severity < 3, listed with ``judged``) or a loss: a conversation with a
    turn stored at severity >= 3 and no report. Losses are counted over all the bench's
    conversations (``escalated_without_report``, must be 0 whatever the classifier does).
    Reports on other conversations were opened by a message judged severity >= 3 that is
    not one of the labelled disclosures; message texts are encrypted at rest, so the
    message is named from what the bench sent (the n-th user message of its conversation).
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from assistant.settings import DatabaseSettings

    try:
        url = DatabaseSettings(url=database_url).url or database_url
    except ValueError as exc:
        raise ReportsNotCounted(f"not a database URL this service supports: {_safe_url(database_url)}") from exc
    try:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                reported = {row[0] for row in conn.execute(text("SELECT conversation_id FROM tip_report"))}
                order: dict[str, list[int]] = {}
                for conv, severity in conn.execute(
                    text("SELECT conversation_id, severity FROM message WHERE role = 'user' ORDER BY id")
                ):
                    order.setdefault(conv, []).append(severity or 0)
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        raise ReportsNotCounted(f"cannot read {_safe_url(url)}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if conversations and not set(conversations) & set(order):
        # Every disclosure would look missed: the database is not the one the service wrote to.
        raise ReportsNotCounted(
            f"none of this run's {len(conversations)} conversations are in {_safe_url(url)}; "
            "with --url, pass the service's database as --database-url"
        )
    sent = dict(disclosures)
    judged = {conv: max(severities) for conv, severities in order.items()}  # the conversation's highest turn
    missed: list[dict[str, Any]] = [
        {"id": msg.ref, "text": msg.text, "judged": judged.get(conv, 0)}
        for conv, msg in sent.items()
        if conv not in reported
    ]
    lost = [c for c in set(conversations) - reported if judged.get(c, 0) >= 3]
    others = sorted((reported & set(conversations)) - set(sent))  # only the bench's own conversations
    examples: list[str] = []
    for conv in others:
        texts = conversations.get(conv, [])
        examples += [t for t, sev in zip(texts, order.get(conv, []), strict=False) if sev >= 3][:1]
    return {
        "disclosures_sent": len(sent),
        "reports_for_disclosures": len(sent) - len(missed),
        "equal": not missed,
        "missed": missed,
        "classifier_misses": sum(1 for m in missed if m["judged"] < 3),
        "escalated_without_report": len(lost),
        "reports_total": len(reported & set(conversations)),
        "reports_from_other_messages": len(others),
        "conversations_without_disclosure": len(set(conversations) - set(sent)),
        "share_of_them_reported": round(len(others) / max(1, len(set(conversations) - set(sent))), 3),
        "other_report_examples": list(dict.fromkeys(examples))[:20],
    }


def heldout_questions(limit: int | None = None) -> list[Any]:
    from evaluation.retrieval import load_questions

    questions = [q for q in load_questions() if q.split == "heldout"]
    return questions[:limit] if limit else questions


def measure_quality(url: str, questions: Sequence[Any], aliases: dict[str, str]) -> dict[str, Any]:
    """R@1 of the cited article against the gold ones, one new conversation per question."""
    hits, answered = 0, 0
    per_style: dict[str, list[int]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for q in questions:
            response = client.post(CHAT_PATH, json={"text": q.text, "audience": q.audience})
            response.raise_for_status()
            citations = response.json()["reply"]["citations"]
            cited = aliases.get(citations[0]["id"], citations[0]["id"]) if citations else None
            gold = {aliases.get(g, g) for g in q.gold}
            ok = cited in gold
            hits += ok
            answered += cited is not None
            style = per_style.setdefault(q.style, [0, 0])
            style[0] += ok
            style[1] += 1
    n = max(1, len(questions))
    return {
        "n": len(questions),
        "r@1": round(hits / n, 3),
        "answered_with_citation": round(answered / n, 3),
        "r@1_by_style": {s: round(h / max(1, t), 3) for s, (h, t) in sorted(per_style.items())},
    }


def alias_map(content_dir: Path) -> dict[str, str]:
    from knowledge_base.articles import load_articles

    out: dict[str, str] = {}
    for article in load_articles(content_dir):
        out[article.id] = article.id
        for alias in article.aliases:
            out[alias] = article.id
    return out


def scrape_stages(url: str) -> dict[str, tuple[float, float]]:
    """``(sum, count)`` of the service's pipeline-stage and chat-request histograms and of its
    SQLite write lock's waits and holds (``/metrics``)."""
    try:
        text = httpx.get(url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    return parse_stages(text)


def parse_stages(text: str) -> dict[str, tuple[float, float]]:
    """``scrape_stages`` of one ``/metrics`` text."""
    out: dict[str, list[float]] = {}
    for m in re.finditer(r'^assistant_pipeline_stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$', text, re.M):
        out.setdefault(m.group(2), [0.0, 0.0])[m.group(1) == "count"] += float(m.group(3))
    pattern = r'^assistant_http_request_seconds_(sum|count)\{method="POST",route="/api/v1/chat",status="\d+"\} (\S+)$'
    for m in re.finditer(pattern, text, re.M):
        out.setdefault("request", [0.0, 0.0])[m.group(1) == "count"] += float(m.group(2))
    # SQLite's write lock (every write transaction takes it in turn): mean wait and hold per write.
    lock = dict(re.findall(r"^assistant_sqlite_write_lock_(\w+)_total (\S+)$", text, re.M))
    if "acquisitions" in lock:
        for name in ("wait", "held"):
            out[f"write_lock_{name}"] = [float(lock[f"{name}_seconds"]), float(lock["acquisitions"])]
    return {k: (v[0], v[1]) for k, v in out.items()}


def stage_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    means = {}
    for name, (total, count) in after.items():
        t0, c0 = before.get(name, (0.0, 0.0))
        if count > c0:
            means[name] = round((total - t0) / (count - c0) * 1000, 2)
    return means


# -- one system, both phases ----------------------------------------------------
@dataclass
class BenchConfig:
    concurrency: int = 20
    duration: float = 60.0
    url: str | None = None
    soak: bool = False
    baseline: bool | None = None  # None: on, except in soak mode
    out: Path = REPORTS_DIR
    workers: int = 1
    rate: float | None = None  # steady phase rate; None: 50 msg/s; 0: no steady phase
    warmup: float | None = None
    data_dir: Path | None = None
    database_url: str | None = None
    disclosure_share: float = 0.02
    quality_limit: int | None = None
    seed: int = 7


@dataclass
class SystemResult:
    summary: dict[str, Any]
    disclosures: list[tuple[str, BenchMessage]]
    disclosure_replies: list[str]
    conversations: dict[str, list[str]]


def measure_system(
    name: str, url: str, pid: int | None, config: BenchConfig, rate: float, warmup: float
) -> SystemResult:
    """The steady phase (paced to ``rate``), then, unless soaking, the capacity phase (closed loop)."""
    mix = MessageMix.load(config.seed, config.disclosure_share)  # one mix: no disclosure sent twice
    memory = MemorySampler(pid).start()
    summary: dict[str, Any] = {}
    disclosures: list[tuple[str, BenchMessage]] = []
    replies: list[str] = []
    conversations: dict[str, list[str]] = {}
    phases = [("steady", rate)] if rate else []
    if not config.soak:
        phases.append(("capacity", 0.0))
    for i, (phase, phase_rate) in enumerate(phases):
        label = f"paced to {phase_rate:g} msg/s" if phase_rate else "closed loop"
        print(f"{name}: {phase} phase, {config.concurrency} clients {label}, {warmup + config.duration:.0f} s ...",
              file=sys.stderr, flush=True)
        before = scrape_stages(url) if name == "service" else {}
        cpu_before = cpu_seconds(memory.pids())
        client_before = time.process_time()
        run = asyncio.run(
            drive(name, url, mix, config.concurrency, warmup + config.duration, config.seed + i, phase_rate or None)
        )
        client_used = time.process_time() - client_before
        summary[phase] = summarize(run, warmup)
        summary[phase]["rate"] = phase_rate or None
        # The load generator runs on the same cores: what it takes is not left to the system.
        summary[phase]["client_cpu_ms_per_message"] = round(1000 * client_used / max(1, len(run.records)), 2)
        if memory.pid is not None:
            # CPU time per message: what a message costs the service, whatever else the
            # machine was doing (throughput on a shared 2-core machine moves with its load).
            used = cpu_seconds(memory.pids()) - cpu_before
            summary[phase]["cpu_ms_per_message"] = round(1000 * used / max(1, len(run.records)), 2)
        if before:
            summary[phase]["stage_means_ms"] = stage_means(before, scrape_stages(url))
        disclosures += run.disclosures
        replies += run.disclosure_replies
        conversations.update(run.conversations)
    summary["memory"] = memory.stop()
    summary["errors"] = sum(summary[p]["errors"] for p, _ in phases)
    return SystemResult(summary, disclosures, replies, conversations)


# -- report ---------------------------------------------------------------------
COLORS = {"service": "tab:blue", "baseline": "tab:orange"}


def plot(report: dict[str, Any], latency_png: Path, throughput_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, cfg = report["runs"], report["config"]
    systems = list(runs)
    phases = [p for p in ("steady", "capacity") if p in runs["service"]]
    fig, axes = plt.subplots(1, len(phases), figsize=(6 * len(phases), 4), squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=True):
        values = [v for s in systems for v in runs[s][phase]["latencies_ms"]]
        if values:
            bins = np.logspace(np.log10(max(0.5, min(values))), np.log10(max(values) * 1.05), 60).tolist()
            for s in systems:
                ph = runs[s][phase]
                if ph["latencies_ms"]:
                    lat = ph["latency_ms"]
                    ax.hist(ph["latencies_ms"], bins=bins, alpha=0.55, color=COLORS[s],
                            label=f"{s}: p50 {lat['p50']:g}, p95 {lat['p95']:g}, p99 {lat['p99']:g} ms")
                    ax.axvline(lat["p95"], color=COLORS[s], linestyle="--", linewidth=1)
            ax.set_xscale("log")
        ax.axvline(100, color="grey", linestyle=":", linewidth=1, label="target p95 100 ms")
        rate = runs["service"][phase]["rate"]
        title = f"paced to {rate:g} msg/s" if rate else "closed loop (capacity)"
        ax.set_title(f"Latency, {cfg['concurrency']} clients, {title}", fontsize=10)
        ax.set_xlabel("latency per message (ms, log scale)")
        ax.set_ylabel("messages")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(latency_png, dpi=110)
    plt.close(fig)

    memory = {name: runs[name]["memory"] for name in systems if runs[name]["memory"].get("samples")}
    panels = len(phases) + (1 if memory else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=False):
        for s in systems:
            series = runs[s][phase]["throughput_per_second"]
            ax.plot(range(len(series)), series, color=COLORS[s],
                    label=f"{s}: {runs[s][phase]['throughput_msg_s']:g} msg/s")
        ax.axhline(50, color="grey", linestyle=":", linewidth=1, label="target 50 msg/s")
        ax.axvspan(0, cfg["warmup_s"], color="grey", alpha=0.12, label="warm-up (not measured)")
        ax.set_xlabel("seconds")
        ax.set_ylabel("answers per second")
        rate = runs["service"][phase]["rate"]
        ax.set_title("Throughput, " + (f"paced to {rate:g} msg/s" if rate else "closed loop (capacity)"), fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
    if memory:
        ax = axes[0][-1]
        for name, mem in memory.items():
            ax.plot([x[0] for x in mem["samples"]], [x[1] for x in mem["samples"]], color=COLORS[name],
                    label=f"{name} RSS (peak {mem['peak_rss_mib']:g})")
            ax.plot([x[0] for x in mem["samples"]], [x[2] for x in mem["samples"]], color=COLORS[name],
                    linestyle="--", linewidth=1, label=f"{name} PSS")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds (all phases)")
        ax.set_ylabel("MiB (all processes of the service)")
        ax.set_title("Memory", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(throughput_png, dpi=110)
    plt.close(fig)


def print_report(report: dict[str, Any]) -> None:
    cfg, runs, m = report["config"], report["runs"], report["machine"]
    svc, base = runs["service"], runs.get("baseline")
    print(
        f"\nbench chat: {cfg['concurrency']} clients, {cfg['duration_s']:g} s measured per phase after "
        f"{cfg['warmup_s']:g} s warm-up, {cfg['workers']} uvicorn worker(s), {m['cpus']} CPUs, "
        f"load average {m['load_before']} before / {m['load_after']} after"
    )
    rows: list[tuple[str, str, str, str]] = []
    ratios = report.get("ratios", {})

    def cell(run: dict[str, Any] | None, phase: str, *keys: str) -> str:
        if run is None or phase not in run:
            return "-"
        value: Any = run[phase]
        for k in keys:
            if k not in value:
                return "-"
            value = value[k]
        return f"{value:g}" if isinstance(value, float) else str(value)

    for phase in ("steady", "capacity"):
        if phase not in svc:
            continue
        rate = svc[phase]["rate"]
        rows.append((f"[{phase}] " + (f"paced to {rate:g} msg/s" if rate else "closed loop"), "", "", ""))
        for q in ("p50", "p95", "p99"):
            ratio = ratios.get(f"{phase}_latency_{q}")
            rows.append((f"  latency {q} ms", cell(svc, phase, "latency_ms", q), cell(base, phase, "latency_ms", q),
                         f"{ratio:g}x lower" if ratio else ""))
        ratio = ratios.get(f"{phase}_throughput")
        rows.append(("  throughput msg/s", cell(svc, phase, "throughput_msg_s"), cell(base, phase, "throughput_msg_s"),
                     f"{ratio:g}x higher" if ratio else ""))
        ratio = ratios.get(f"{phase}_cpu_per_message")
        rows.append(("  service CPU ms per message", cell(svc, phase, "cpu_ms_per_message"),
                     cell(base, phase, "cpu_ms_per_message"), f"{ratio:g}x less" if ratio else ""))
        rows.append(("  load generator CPU ms per message", cell(svc, phase, "client_cpu_ms_per_message"),
                     cell(base, phase, "client_cpu_ms_per_message"), ""))
        rows.append(("  messages (distinct texts)",
                     f"{cell(svc, phase, 'messages')} ({cell(svc, phase, 'distinct_texts')})",
                     f"{cell(base, phase, 'messages')} ({cell(base, phase, 'distinct_texts')})", ""))
        rows.append(("  errors (rate)", f"{cell(svc, phase, 'errors')} ({cell(svc, phase, 'error_rate')})",
                     f"{cell(base, phase, 'errors')} ({cell(base, phase, 'error_rate')})", ""))

    def rss(run: dict[str, Any] | None) -> str:
        if run is None:
            return "-"
        mem = run["memory"]
        return f"{mem['peak_rss_mib']:g} (PSS {mem['peak_pss_mib']:g})" if mem.get("available") else "n/a"

    rows.append(("peak RSS MiB", rss(svc), rss(base), ""))
    quality = report.get("quality", {})
    if quality:
        rows.append((f"answer R@1 held-out (n={quality['service']['n']})", f"{quality['service']['r@1']:g}",
                     f"{quality['baseline']['r@1']:g}" if "baseline" in quality else "-", ""))
    print(f"{'':34s}{'service':>20s}{'baseline':>20s}   ratio")
    for label, a, b, ratio in rows:
        print(f"{label:34s}{a:>20s}{b:>20s}   {ratio}")
    for phase in ("steady", "capacity"):
        if svc.get(phase, {}).get("stage_means_ms"):
            means = ", ".join(f"{k} {v:g}" for k, v in svc[phase]["stage_means_ms"].items())
            print(f"service stage means in the {phase} phase (ms, from /metrics): {means}")
    for name, run in (("service", svc), ("baseline", base)):
        for phase in ("steady", "capacity"):
            if run is not None and run.get(phase, {}).get("error_examples"):
                print(f"{name} {phase} errors: {run[phase]['error_examples']}")
        for line in (run or {}).get("log_errors", [])[-5:]:
            print(f"  {name} log: {line}")
    if "three_x_budget" in report:
        t = report["three_x_budget"]
        print(
            f"3x the baseline ({t['target_msg_s']:g} msg/s) allows {t['cpu_ms_per_message_allowed']:g} ms of CPU per "
            f"message on the {m['cpus']} CPUs, service and load generator together; this run's capacity phase took "
            f"{t['cpu_ms_per_message_used']:g} (service {t['service']:g} + load generator {t['load_generator']:g}); "
            "`bench turn` splits the service's share by part"
        )
    d = report.get("disclosures")
    if d and d.get("counted") is False:
        print(f"tip reports NOT COUNTED: {d['reason']}")
    elif d:
        verdict = "EQUAL" if d["equal"] else "NOT EQUAL"
        print(
            f"disclosures sent {d['disclosures_sent']} = tip reports created for them "
            f"{d['reports_for_disclosures']}: {verdict}. Reports in total {d['reports_total']}: "
            f"{d['reports_from_other_messages']} were opened by messages that are not disclosures "
            f"({d['share_of_them_reported']:.1%} of the {d['conversations_without_disclosure']} other conversations)"
        )
        print(
            f"  conversations escalated without a report (lost): {d['escalated_without_report']}; "
            f"missed disclosures judged severity < 3 (classifier misses): {d['classifier_misses']} of {len(d['missed'])}"
        )
        for miss in d["missed"]:
            print(f"  missed disclosure {miss['id']} (judged {miss['judged']}): {miss['text']}")
        if d["other_report_examples"]:
            print("  e.g. " + " | ".join(d["other_report_examples"][:6]))
    if "baseline_disclosures" in report:
        b = report["baseline_disclosures"]
        print(f"baseline keyword filter answered {b['answered_as_disclosure']} of {b['sent']} disclosures with 111")
    if quality:
        print(f"R@1 by style: service {quality['service']['r@1_by_style']}"
              + (f"; baseline {quality['baseline']['r@1_by_style']}" if "baseline" in quality else "")
              + f"; answered with a citation: service {quality['service']['answered_with_citation']:g}"
              + (f", baseline {quality['baseline']['answered_with_citation']:g}" if "baseline" in quality else ""))
    if "soak" in report:
        s = report["soak"]
        print(f"soak: memory growth {s['rss_growth_mib']} MiB RSS from the first to the last minute (PSS "
              f"{s['pss_growth_mib']} MiB, which also moves when other processes map the same libraries); "
              f"errors {s['errors']}")
    verdicts = [f"{k} {'ok' if v else 'MISSED'}" for k, v in report["targets"].items() if v is not None]
    print("targets: " + ", ".join(verdicts))
    print(f"written: {', '.join(report['written'])}")


# -- the command ----------------------------------------------------------------
@contextmanager
def _started(
    name: str, app: str, data_dir: Path, workers: int, prepare: bool, database_url: str | None = None
) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(name, app, data_dir, workers, database_url)
    try:
        if prepare:
            proc.run_prepare()
        yield proc.start()
    finally:
        proc.stop()


def _load_label() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def run_bench(config: BenchConfig) -> dict[str, Any]:
    from assistant.settings import Settings

    settings = Settings()
    rate = 50.0 if config.rate is None else config.rate
    if config.soak and not rate:
        raise ValueError("--soak needs a steady rate (--rate > 0)")
    warmup = config.warmup if config.warmup is not None else min(5.0, max(1.0, config.duration / 10))
    with_baseline = config.baseline if config.baseline is not None else not config.soak
    source = (config.data_dir or settings.data_path).expanduser().resolve()
    report: dict[str, Any] = {
        "config": {
            "concurrency": config.concurrency, "duration_s": config.duration, "warmup_s": warmup,
            "steady_rate_msg_s": rate or None, "soak": config.soak, "workers": config.workers,
            "disclosure_share": config.disclosure_share, "seed": config.seed, "url": config.url,
            "data_dir": str(source), "rate_limits": "off in the instances the bench starts",
        },
        "machine": {"cpus": os.cpu_count(), "load_before": _load_label()},
        "runs": {},
    }
    aliases = alias_map(settings.knowledge_base_dir)
    questions = heldout_questions(config.quality_limit)
    scratch = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    try:
        note_unprepared(source)
        index_source = source
        service_cm: AbstractContextManager[ServiceProcess | None] = nullcontext()
        if config.url:
            url = config.url.rstrip("/")
            pid = pid_listening_on(httpx.URL(url).port or 80)
            database_url = config.database_url or settings.database_url
        else:
            svc_dir = index_source = scratch_data_dir(source, scratch / "service")
            database_url = config.database_url or f"sqlite:///{svc_dir / 'assistant.sqlite3'}"
            service_cm = _started(
                "service", "evaluation.bench_chat:service_app", svc_dir, config.workers,
                prepare=config.workers > 1, database_url=config.database_url,
            )
        with service_cm as service:
            if service is not None:
                url, pid = service.url, service.pid
                print(f"service up in {service.started_in:.1f} s at {url} (pid {pid})", file=sys.stderr)
            result = measure_system("service", url, pid, config, rate, warmup)
            report["runs"]["service"] = result.summary
            if result.summary["errors"] and service is not None:
                result.summary["log_errors"] = service.log_errors()
            try:
                report["disclosures"] = count_reports(database_url, result.disclosures, result.conversations)
            except ReportsNotCounted as exc:
                report["disclosures"] = {"counted": False, "reason": str(exc)}
            report["quality"] = {"service": measure_quality(url, questions, aliases)}
        if with_baseline:
            base_dir = scratch_data_dir(index_source, scratch / "baseline")  # the index the service used
            with _started("baseline", "evaluation.baseline_rag:create_app", base_dir, config.workers, False) as base:
                print(f"baseline up in {base.started_in:.1f} s at {base.url} (pid {base.pid})", file=sys.stderr)
                bresult = measure_system("baseline", base.url, base.pid, config, rate, warmup)
                report["runs"]["baseline"] = bresult.summary
                if bresult.summary["errors"]:
                    bresult.summary["log_errors"] = base.log_errors()
                report["quality"]["baseline"] = measure_quality(base.url, questions, aliases)
            from evaluation.baseline_rag import DISCLOSURE_REPLY

            report["baseline_disclosures"] = {
                "sent": len(bresult.disclosure_replies),
                "answered_as_disclosure": sum(t == DISCLOSURE_REPLY for t in bresult.disclosure_replies),
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["machine"]["load_after"] = _load_label()
    _finish(report)
    name = "bench_soak" if config.soak else "bench_chat"
    config.out.mkdir(parents=True, exist_ok=True)
    paths = [config.out / f"{name}.json", config.out / f"{name}_latency.png", config.out / f"{name}_throughput.png"]
    report["written"] = [str(p) for p in paths]
    plot(report, paths[1], paths[2])
    paths[0].write_text(json.dumps(_without_raw(report), indent=1, ensure_ascii=False) + "\n")
    print_report(report)
    return report


def cpu_budget_for(times: float, baseline_msg_s: float, cpus: int) -> float:
    """CPU ms per message that ``times`` the baseline's throughput leaves on ``cpus`` cores."""
    return round(cpus * 1000 / (times * baseline_msg_s), 2)


def _finish(report: dict[str, Any]) -> None:
    cfg, runs = report["config"], report["runs"]
    svc, base = runs["service"], runs.get("baseline")
    quality = report.get("quality", {})
    if base is not None:
        ratios: dict[str, float] = {}
        for phase in ("steady", "capacity"):
            if phase in svc and phase in base:
                s, b = svc[phase], base[phase]
                ratios[f"{phase}_throughput"] = round(s["throughput_msg_s"] / max(1e-9, b["throughput_msg_s"]), 2)
                for q in ("p50", "p95", "p99"):
                    ratios[f"{phase}_latency_{q}"] = round(b["latency_ms"][q] / max(1e-9, s["latency_ms"][q]), 2)
                if s.get("cpu_ms_per_message") and b.get("cpu_ms_per_message"):
                    ratios[f"{phase}_cpu_per_message"] = round(b["cpu_ms_per_message"] / s["cpu_ms_per_message"], 2)
        report["ratios"] = ratios
        s, b = svc.get("capacity"), base.get("capacity")
        if s and b and s.get("cpu_ms_per_message") and report["machine"]["cpus"]:
            # 3x the baseline's capacity on this machine's cores: the CPU time one message may
            # take, service and load generator together, against what this run's took.
            report["three_x_budget"] = {
                "target_msg_s": round(3 * b["throughput_msg_s"], 1),
                "cpu_ms_per_message_allowed": cpu_budget_for(3, b["throughput_msg_s"], report["machine"]["cpus"]),
                "cpu_ms_per_message_used": round(s["cpu_ms_per_message"] + s["client_cpu_ms_per_message"], 2),
                "service": s["cpu_ms_per_message"],
                "load_generator": s["client_cpu_ms_per_message"],
            }
    if cfg["soak"]:
        samples = svc["memory"].get("samples", [])
        start = cfg["warmup_s"]
        first = [x for x in samples if start <= x[0] < start + 60]
        last = [x for x in samples if x[0] >= samples[-1][0] - 60] if samples else []
        report["soak"] = {
            "rss_growth_mib": round(float(np.mean([x[1] for x in last]) - np.mean([x[1] for x in first])), 1)
            if first and last else None,
            "pss_growth_mib": round(float(np.mean([x[2] for x in last]) - np.mean([x[2] for x in first])), 1)
            if first and last else None,
            "errors": svc["errors"],
        }
    steady, capacity = svc.get("steady"), svc.get("capacity")
    mem = svc["memory"]
    report["targets"] = {
        "p95<=100ms at 20 clients": steady["latency_ms"]["p95"] <= 100
        if steady and cfg["concurrency"] >= 20 else None,
        ">=50 msg/s sustained": steady["rate"] >= 50 and steady["throughput_msg_s"] >= 0.97 * steady["rate"]
        if steady else (capacity["throughput_msg_s"] >= 50 if capacity else None),
        "RSS<=1GiB": mem["peak_rss_mib"] <= 1024 if mem.get("available") else None,
        "0 errors": svc["errors"] == 0,
        "disclosures=reports": report.get("disclosures", {}).get("equal"),
        "no escalation without a report": report["disclosures"]["escalated_without_report"] == 0
        if "escalated_without_report" in report.get("disclosures", {}) else None,
        ">=3x baseline throughput": report["ratios"]["capacity_throughput"] >= 3
        if "capacity_throughput" in report.get("ratios", {}) else None,
        "R@1>=baseline": quality["service"]["r@1"] >= quality["baseline"]["r@1"] if "baseline" in quality else None,
    }


def _without_raw(report: dict[str, Any]) -> dict[str, Any]:
    """The JSON keeps the summaries and time series; latencies as a histogram, not one by one."""
    out: dict[str, Any] = json.loads(json.dumps(report))
    for run in out["runs"].values():
        for phase in ("steady", "capacity"):
            if phase in run:
                lat = run[phase].pop("latencies_ms", [])
                counts, edges = np.histogram(lat, bins=np.logspace(0, 4, 41))
                run[phase]["latency_histogram_ms"] = {
                    "edges": [round(float(e), 2) for e in edges], "counts": counts.tolist()
                }
    return out
