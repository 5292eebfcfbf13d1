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
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from assistant.app import create_app

    settings = _settings()
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    app = create_app(settings, prepare=True)
    print(f"Serving on http://{host}:{port}  (data: {settings.data_path})", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from assistant.db.session import Database, current_revision, downgrade, head_revision

    settings = _settings()
    settings.ensure_dirs()
    db = Database(settings.database_url, settings.database)
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
    from assistant.services import make_index

    settings = _settings()
    settings.ensure_dirs()
    index = make_index(settings)
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
    from assistant.risk.model import (
        CORPUS_FILE,
        corpus_digest,
        load_corpus,
        model_path,
        save_model,
        train_model,
    )
    from assistant.text import load_or_train, normalize

    settings = _settings()
    settings.ensure_dirs()
    restorer = load_or_train(settings.models_dir, extra_dirs=[settings.knowledge_base_dir])
    version = corpus_digest(CORPUS_FILE)
    path = model_path(settings.models_dir, version)
    if path.exists() and not args.force:
        print(f"risk model {version} is up to date: {path}")
        return EXIT_OK
    examples = load_corpus(CORPUS_FILE, split="train")
    model = train_model(examples, lambda t: normalize(t, restorer).folded)
    model.version = version
    save_model(model, path)
    print(json.dumps({"version": version, "path": str(path), "examples": len(examples), **model.metrics,
                      "threshold_escalate": round(model.threshold_escalate, 4),
                      "threshold_imminent": round(model.threshold_imminent, 4)}))
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
    return parser


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
