"""Builds every long-lived part of one instance from its settings, once.

Used by the app's lifespan and by the CLI (``ask``, ``classify``, ``ingest``),
so the API and the command line run exactly the same pipeline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.conversations import ChatService
from assistant.db import Database
from assistant.metrics import Metrics
from assistant.pipeline import ChatPipeline, NormalizeStage, RespondStage, RiskStage
from assistant.prompts import default_prompts
from assistant.responder import GroundedResponder, Relevance
from assistant.risk.base import RiskClassifier
from assistant.risk.ensemble import EnsembleRiskClassifier
from assistant.risk.keyword import KeywordRiskClassifier
from assistant.risk.model import ModelRiskClassifier
from assistant.risk.model import load_or_train as load_or_train_risk
from assistant.risk.rules import RulesRiskClassifier
from assistant.settings import RiskSettings, Settings
from assistant.text import AccentRestorer, load_or_train, normalize
from knowledge_base.embedders import make_embedder
from knowledge_base.index import KnowledgeIndex

log = logging.getLogger(__name__)


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

    def close(self) -> None:
        self.db.dispose()


def make_classifier(settings: RiskSettings, models_dir: Path, restorer: AccentRestorer) -> RiskClassifier:
    """Pick the risk classifier by name; the trained model is loaded (or trained once) here."""
    if settings.classifier == "keyword":
        return KeywordRiskClassifier()
    rules = RulesRiskClassifier()
    if settings.classifier == "rules":
        return rules
    model = ModelRiskClassifier(load_or_train_risk(models_dir, lambda t: normalize(t, restorer).folded))
    if settings.classifier == "model":
        return model
    return EnsembleRiskClassifier(rules, model)


def make_index(settings: Settings) -> KnowledgeIndex:
    embedder = make_embedder(
        settings.retrieval.embedder, settings.retrieval.model_dir, settings.retrieval.embed_threads
    )
    return KnowledgeIndex(
        settings.index_dir, embedder, settings.knowledge_base_dir, settings.retrieval.chroma_url
    )


def build_services(settings: Settings, prepare: bool = True) -> Services:
    """Open the database, load models and the index.

    With ``prepare`` (the default for ``serve`` and ``make run``), migrations are
    applied, the accent model is trained if its cached artifact is missing, and
    the knowledge-base index is built if missing or stale.
    """
    started = time.perf_counter()
    settings.ensure_dirs()
    db = Database(settings.database_url, settings.database)
    if prepare:
        db.upgrade()
    restorer = load_or_train(settings.models_dir, extra_dirs=[settings.knowledge_base_dir])
    index = make_index(settings)
    if prepare:
        report = index.ensure()
        if report is not None:
            log.info("knowledge base ingested", extra=report.to_dict())
    else:
        index.load()
    metrics = Metrics()
    classifier = make_classifier(settings.risk, settings.models_dir, restorer)
    prompts = default_prompts()
    responder = GroundedResponder(
        index, prompts, Relevance(settings.retrieval.min_bm25, settings.retrieval.min_dense)
    )
    pipeline = ChatPipeline(
        [NormalizeStage(restorer), RiskStage(classifier), RespondStage(responder)],
        observe=metrics.observe_stage,
    )
    chat = ChatService(db, pipeline, history_turns=settings.chat.history_turns)
    log.info("services ready", extra={"seconds": round(time.perf_counter() - started, 2)})
    return Services(settings, db, restorer, index, classifier, pipeline, chat, metrics)
