"""The chat pipeline: normalize -> assess risk -> respond, as pluggable stages.

Each stage reads and fills a ``ChatTurn``; the pipeline times every stage.
It holds no database state: the caller (``ChatService``) loads the
conversation, runs the pipeline, and stores the outcome in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from assistant.responder import Reply, Responder
from assistant.risk.base import RiskAssessment, RiskClassifier
from assistant.text import AccentRestorer, NormalizedText, normalize


@dataclass
class ChatTurn:
    """One user message moving through the pipeline."""

    text: str
    audience: str
    channel: str
    seed: str
    history: list[str] = field(default_factory=list)
    conversation_severity: int = 0
    normalized: NormalizedText | None = None
    history_normalized: list[NormalizedText] = field(default_factory=list)
    assessment: RiskAssessment | None = None
    reply: Reply | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Stage(Protocol):
    name: str

    def __call__(self, turn: ChatTurn) -> None: ...


class NormalizeStage:
    name = "normalize"

    def __init__(self, restorer: AccentRestorer | None) -> None:
        self.restorer = restorer

    def normalize(self, text: str) -> NormalizedText:
        return normalize(text, self.restorer)

    def __call__(self, turn: ChatTurn) -> None:
        turn.normalized = self.normalize(turn.text)
        turn.history_normalized = [self.normalize(t) for t in turn.history]


class RiskStage:
    name = "risk"

    def __init__(self, classifier: RiskClassifier) -> None:
        self.classifier = classifier

    def __call__(self, turn: ChatTurn) -> None:
        assert turn.normalized is not None, "normalize runs before risk"
        turn.assessment = self.classifier.assess(turn.normalized, turn.history_normalized)


class RespondStage:
    name = "respond"

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def __call__(self, turn: ChatTurn) -> None:
        assert turn.normalized is not None and turn.assessment is not None
        turn.reply = self.responder.respond(
            turn.normalized,
            turn.audience,
            turn.assessment,
            turn.seed,
        )


class ChatPipeline:
    def __init__(
        self,
        stages: Sequence[Stage],
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        self.stages = list(stages)
        self._observe = observe

    def run(self, turn: ChatTurn) -> ChatTurn:
        for stage in self.stages:
            started = time.perf_counter()
            stage(turn)
            elapsed = time.perf_counter() - started
            turn.timings[stage.name] = elapsed
            if self._observe is not None:
                self._observe(stage.name, elapsed)
        if turn.reply is None or turn.assessment is None:
            raise RuntimeError("the pipeline ended without an assessment and a reply")
        return turn

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)
