"""Builds every long-lived part of one instance from its settings, once.

Used by the app's lifespan and by the CLI (``ask``, ``classify``, ``ingest``),
so the API and the command line run exactly the same pipeline.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.auth import AuthService
from assistant.channels.registry import build_channel_service
from assistant.channels.service import ChannelService
from assistant.child import child_detail, run_child
from assistant.conversations import ChatService
from assistant.db import Database
from assistant.db.session import sqlite_write_lock
from assistant.metrics import Metrics
from assistant.pipeline import ChatPipeline, NormalizeStage, RespondStage, RiskStage
from assistant.privacy.service import PrivacyService
from assistant.prompts import default_prompts
from assistant.responder import GroundedResponder, Relevance
from assistant.risk.base import ModelNotTrained, RiskClassifier
from assistant.risk.ensemble import EnsembleRiskClassifier
from assistant.risk.keyword import KeywordRiskClassifier
from assistant.risk.model import (
    ModelRiskClassifier,
    RiskModel,
    accent_training_texts,
    current_artifact,
    load_model,
    model_path,
)
from assistant.risk.model import load_or_train as load_or_train_risk
from assistant.risk.rules import RulesRiskClassifier
from assistant.settings import RetrievalSettings, RiskSettings, Settings
from assistant.text import AccentRestorer, NormalizedText, load_or_train, normalize
from assistant.text.accents import ARTIFACT_VERSION as ACCENT_ARTIFACT_VERSION
from escalation import audit as escalation_audit
from escalation.service import EscalationService
from knowledge_base.embedders import Embedder, make_embedder
from knowledge_base.index import IndexNotReady, IngestReport, KnowledgeIndex

log = logging.getLogger(__name__)

TEXT_DIR = Path(__file__).resolve().parent / "text"


def text_layer_version() -> str:
    """Changes whenever the normalisation code or its dictionaries change."""
    digest = hashlib.sha256(f"accent-{ACCENT_ARTIFACT_VERSION}".encode())
    for path in sorted([*TEXT_DIR.glob("*.py"), *TEXT_DIR.glob("data/*")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def risk_text_version(restorer: AccentRestorer) -> str:
    """What the risk model's input depends on: the text layer and the accent model."""
    return f"{text_layer_version()}-{restorer.fingerprint[:16]}"


def load_restorer(settings: Settings) -> AccentRestorer:
    """The accent restorer every command and the service use (trained once, then cached):
    the base corpora plus the knowledge base and the risk corpus's training messages."""
    return restorer_for(settings.models_dir, settings.knowledge_base_dir)


def restorer_for(models_dir: Path, knowledge_base_dir: Path) -> AccentRestorer:
    """:func:`load_restorer` from the two paths it needs (what child processes get)."""
    return load_or_train(models_dir, extra_dirs=[knowledge_base_dir], extra_texts=accent_training_texts())


def pin_numeric_threads(threads: int = 1) -> None:
    """One thread for BLAS/OpenMP pools: a worker serves many requests at once, and on a
    small busy machine extra math threads only fight over the cores (see ARCHITECTURE.md)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def settle_heap() -> int:
    """Take what start-up loaded out of the cyclic garbage collector's reach.

    The models, the index and their vocabularies are ~280,000 tracked objects that
    live as long as the process. Each full collection walked all of them: ~210 ms
    with the interpreter lock held, every request in flight waiting (measured on a
    loaded service). Collected once here and then frozen (``gc.freeze``), they are
    skipped by later collections, which only walk what requests create. Frozen
    objects are still freed by reference counting; only cyclic garbage among them
    (none expected: they are replaced only by a restart) would stay. Returns the
    number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class CachingNormalizeStage(NormalizeStage):
    """``NormalizeStage`` with an LRU cache: every turn normalises the conversation's
    earlier messages again, and many users send the same short texts."""

    def __init__(self, restorer: AccentRestorer | None, cache_size: int = 8192) -> None:
        super().__init__(restorer)

        @lru_cache(maxsize=cache_size)
        def cached(text: str) -> NormalizedText:
            return normalize(text, restorer)

        self._cached = cached

    def normalize(self, text: str) -> NormalizedText:
        return self._cached(text)


@dataclass
class Services:
    settings: Settings
    db: Database
    restorer: AccentRestorer
    index: KnowledgeIndex
    classifier: RiskClassifier
    pipeline: ChatPipeline
    chat: ChatService
    metrics: Metrics
    channels: ChannelService | None = None
    escalation: EscalationService | None = None
    auth: AuthService | None = None
    privacy: PrivacyService | None = None

    def close(self) -> None:
        if self.channels is not None:
            self.channels.close()
        self.db.dispose()


def train_risk_model(models_dir: Path, knowledge_base_dir: Path) -> Path:
    """Train (or find) the risk model for this text layer; what the child of
    :func:`risk_model_in_child` runs. Returns the artifact's path."""
    restorer = restorer_for(models_dir, knowledge_base_dir)
    model = load_or_train_risk(models_dir, lambda t: normalize(t, restorer), text_version=risk_text_version(restorer))
    return model_path(models_dir, model.version)


def train_risk_model_command(models_dir: Path, knowledge_base_dir: Path) -> list[str]:
    """A child Python process running :func:`train_risk_model`; it prints the artifact's path."""
    code = (
        "import sys; from pathlib import Path; from assistant.services import train_risk_model; "
        "print(train_risk_model(Path(sys.argv[1]), Path(sys.argv[2])))"
    )
    return [sys.executable, "-c", code, str(models_dir), str(knowledge_base_dir)]


def risk_model_in_child(
    models_dir: Path, knowledge_base_dir: Path, restorer: AccentRestorer, timeout: float = 3600.0
) -> RiskModel:
    """The risk model for a serving process: loaded when its artifact exists, else
    trained first by a child Python process, so the training's memory is never the
    service's. Trained in-process, the heap it left stayed until the next restart: a
    service started without the model held 904 MiB RSS after 200 messages, against
    760 MiB with the child (765 when the model was trained before the start)."""
    _, path = current_artifact(models_dir, risk_text_version(restorer))
    if not path.exists():
        log.info("training the risk model in a child process (minutes)", extra={"path": str(path)})
        what = f"training the risk model in a child process (into {path})"
        done = run_child(train_risk_model_command(models_dir, knowledge_base_dir), what, ModelNotTrained, timeout)
        if not path.exists():
            raise ModelNotTrained(f"{what} left nothing there (exit {done.returncode}): {child_detail(done)}")
    return load_model(path)


def make_classifier(
    settings: RiskSettings, models_dir: Path, restorer: AccentRestorer, knowledge_base_dir: Path | None = None
) -> RiskClassifier:
    """Pick the risk classifier by name; the trained model is loaded (or trained once) here,
    in a child process when ``knowledge_base_dir`` is given (see :func:`risk_model_in_child`)."""
    if settings.classifier == "keyword":
        return KeywordRiskClassifier()
    rules = RulesRiskClassifier()
    if settings.classifier == "rules":
        return rules
    if knowledge_base_dir is not None:
        trained = risk_model_in_child(models_dir, knowledge_base_dir, restorer)
    else:
        trained = load_or_train_risk(
            models_dir, lambda t: normalize(t, restorer), text_version=risk_text_version(restorer)
        )
    model = ModelRiskClassifier(trained)
    if settings.classifier == "model":
        return model
    if settings.classifier == "transformer":
        # Optional layer: needs `python -m assistant risk train-transformer` first.
        from assistant.risk.transformer import load_transformer_classifier

        return load_transformer_classifier(
            models_dir, settings.transformer_dir, category_model=model, threads=settings.transformer_threads
        )
    return EnsembleRiskClassifier(
        rules, model, second_opinion=load_second_opinion(settings, models_dir, model.model, restorer)
    )


def load_second_opinion(
    settings: RiskSettings, models_dir: Path, tfidf: Any, restorer: AccentRestorer
) -> tuple[Any, Any] | None:
    """The transformer and its fitted combiner when one is trained (``second_opinion=auto``)."""
    if settings.second_opinion == "off":
        return None
    from assistant.risk.second_opinion import load_or_fit
    from assistant.risk.transformer import TransformerRiskClassifier, current_dir

    try:
        directory = settings.transformer_dir or current_dir(models_dir)
    except ModelNotTrained:
        return None  # the usual case: no transformer trained here, the ensemble runs alone

    try:
        # One thread: requests run in parallel threads already. The int8 ONNX export
        # is made here once if `risk train-transformer` did not make it.
        transformer = TransformerRiskClassifier(directory, threads=1, engine="onnx-int8")
        opinion = load_or_fit(transformer, tfidf, lambda t: normalize(t, restorer))
    except (ModelNotTrained, ValueError, ImportError, RuntimeError, OSError) as exc:
        # The optional layer never keeps the service from judging messages: the
        # ensemble alone (the higher-recall setting) runs instead.
        log.error("risk second opinion unavailable, the ensemble runs alone", extra={"error": str(exc)})
        return None
    log.info(
        "risk second opinion on",
        extra={"transformer": transformer.meta.version, "gate": round(opinion.gate, 4), **opinion.metrics},
    )
    return transformer, opinion


def settings_embedder(settings: Settings) -> Embedder:
    """The configured embedder (the e5 export lives in ``<models_dir>/embedder/``)."""
    return _embedder(settings.retrieval, settings.models_dir)


def _embedder(retrieval: RetrievalSettings, models_dir: Path) -> Embedder:
    return make_embedder(
        retrieval.embedder, retrieval.model_dir, retrieval.embed_threads, cache_dir=models_dir / "embedder"
    )


def make_index(settings: Settings, restorer: AccentRestorer) -> KnowledgeIndex:
    return _index(settings.index_dir, settings.knowledge_base_dir, settings.models_dir, settings.retrieval, restorer)


def _index(
    index_dir: Path, knowledge_base_dir: Path, models_dir: Path, retrieval: RetrievalSettings, restorer: AccentRestorer
) -> KnowledgeIndex:
    return KnowledgeIndex(
        index_dir,
        _embedder(retrieval, models_dir),
        knowledge_base_dir,
        retrieval.chroma_url,
        normalizer=lambda text: normalize(text, restorer),
        normalizer_version=text_layer_version(),
    )


def _index_spec(settings: Settings) -> str:
    """What a child process needs to build this instance's index (no secrets)."""
    return json.dumps({
        "index_dir": str(settings.index_dir),
        "knowledge_base_dir": str(settings.knowledge_base_dir),
        "models_dir": str(settings.models_dir),
        "retrieval": settings.retrieval.model_dump(mode="json"),
    })


def build_index(spec: str) -> dict[str, Any] | None:
    """Ingest the index described by ``spec`` (:func:`_index_spec`) if missing or stale;
    what the child of :func:`ensure_index_in_child` runs. Returns the ingest report."""
    data = json.loads(spec)
    models_dir, knowledge_base_dir = Path(data["models_dir"]), Path(data["knowledge_base_dir"])
    restorer = restorer_for(models_dir, knowledge_base_dir)
    retrieval = RetrievalSettings.model_validate(data["retrieval"])
    index = _index(Path(data["index_dir"]), knowledge_base_dir, models_dir, retrieval, restorer)
    report = index.ensure()
    return report.to_dict() if report is not None else None


def build_index_command(settings: Settings) -> list[str]:
    """A child Python process running :func:`build_index`; its last line is the report as JSON."""
    code = (
        "import json, sys; from assistant.services import build_index; "
        "print(json.dumps(build_index(sys.argv[1])))"
    )
    return [sys.executable, "-c", code, _index_spec(settings)]


def ensure_index_in_child(settings: Settings, index: KnowledgeIndex, timeout: float = 3600.0) -> IngestReport | None:
    """``index.ensure()`` for a serving process: a missing or stale index is built by a
    child Python process first, then loaded here, so the ingest's memory (the
    embedding engine's buffers for 16 long chunks at a time) never stays in the
    service: started on a stale index, it held 938 MiB RSS (peak 1,443) after 200
    messages with the ingest in-process, 765 (peak 765) with the child."""
    if not index.is_stale():
        return index.ensure()  # loads; the file lock still guards against a racing ingest
    log.info("building the knowledge-base index in a child process (minutes)", extra={"index": str(index.index_dir)})
    done = run_child(
        build_index_command(settings), "building the knowledge-base index in a child process", IndexNotReady, timeout
    )
    lines = done.stdout.strip().splitlines()
    built = json.loads(lines[-1]) if lines else None
    report = index.ensure()  # the child's index is current: loaded, not built again
    if report is not None:
        log.warning("the knowledge-base index built by the child was stale here; built again in-process")
        return report
    return IngestReport(**built) if built else None


def build_services(settings: Settings, prepare: bool = True) -> Services:
    """Open the database, load models and the index.

    With ``prepare`` (the default for ``serve`` and ``make run``), migrations are
    applied, the accent model is trained if its cached artifact is missing, and
    the knowledge-base index is built if missing or stale.
    """
    started = time.perf_counter()
    pin_numeric_threads()
    settings.ensure_dirs()
    db = Database(settings.database_url, settings.database, settings.security.keyring())
    if prepare:
        db.upgrade()
    restorer = load_restorer(settings)
    index = make_index(settings, restorer)
    if prepare:
        # On a fresh data directory both take minutes: the index build spends them in
        # the embedding engine (no interpreter lock held), the risk model's training in
        # Python and scikit-learn, so side by side they use both cores of a small machine.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-build") as pool:
            building = pool.submit(ensure_index_in_child, settings, index)
            classifier = make_classifier(settings.risk, settings.models_dir, restorer, settings.knowledge_base_dir)
            report = building.result()
        if report is not None:
            log.info("knowledge base ingested", extra=report.to_dict())
    else:
        index.load()
        classifier = make_classifier(settings.risk, settings.models_dir, restorer)
    metrics = Metrics()
    if (write_lock := sqlite_write_lock(db.engine)) is not None:
        metrics.watch_write_lock(write_lock)
    prompts = default_prompts()
    responder = GroundedResponder(
        index, prompts, Relevance(settings.retrieval.min_bm25, settings.retrieval.min_dense)
    )
    pipeline = ChatPipeline(
        [CachingNormalizeStage(restorer), RiskStage(classifier), RespondStage(responder)],
        observe=metrics.observe_stage,
    )
    escalation = EscalationService(db, settings)
    escalation.check_config()
    auth = AuthService(db, settings, audit=escalation_audit.auth_hook)
    # Tip reports are opened inside the transaction that stores the disclosure.
    chat = ChatService(
        db, pipeline, history_turns=settings.chat.history_turns, hooks=[escalation.on_turn]
    )
    channels = build_channel_service(settings, db, chat, prompts, metrics)
    log.info("services ready", extra={"seconds": round(time.perf_counter() - started, 2)})
    return Services(
        settings, db, restorer, index, classifier, pipeline, chat, metrics, channels,
        escalation=escalation, auth=auth, privacy=PrivacyService(db, settings.privacy),
    )
