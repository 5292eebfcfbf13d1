"""The risk-classifier interface shared by every layer.

    RiskError
     └── ModelNotTrained   the trained layer's artifact is missing or stale
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from assistant.risk.taxonomy import CATEGORIES, escalates
from assistant.text import NormalizedText


class RiskError(Exception):
    pass


class ModelNotTrained(RiskError):
    pass


def read_sidecar(path: Path, expected_format: int, what: str) -> dict[str, Any]:
    """The JSON file beside a trained artifact (``what`` names the artifact in errors),
    refused with ``ModelNotTrained`` when missing or of another format."""
    if not path.exists():
        raise ModelNotTrained(f"{path} is missing: not a {what}")
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != expected_format:
        raise ModelNotTrained(f"{path} has format {data.get('format')}, expected {expected_format}")
    return data


@dataclass(frozen=True)
class RiskAssessment:
    """What a classifier says of one message (in the context of its conversation)."""

    severity: int
    primary: str
    categories: dict[str, float]
    signals: list[str] = field(default_factory=list)
    model_version: str = ""
    carried: bool = False
    """The conversation had already escalated before this message, which alone
    would not: the state is kept (never lowered), and the reply follows up
    instead of repeating the disclosure reply. Not part of the JSON contract."""

    def __post_init__(self) -> None:
        if not 0 <= self.severity <= 4:
            raise ValueError(f"severity must be 0..4, got {self.severity}")
        unknown = set(self.categories) - set(CATEGORIES)
        if unknown or self.primary not in CATEGORIES:
            raise ValueError(f"unknown category codes: {sorted(unknown | {self.primary})}")

    @property
    def escalate(self) -> bool:
        return escalates(self.severity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "primary": self.primary,
            "categories": dict(self.categories),
            "escalate": self.escalate,
            "signals": list(self.signals),
            "model_version": self.model_version,
        }

    @classmethod
    def none(cls, model_version: str = "") -> RiskAssessment:
        return cls(severity=0, primary="none", categories={}, signals=[], model_version=model_version)


@runtime_checkable
class RiskClassifier(Protocol):
    """Judges the last message in the context of the earlier ones."""

    model_version: str

    def assess(
        self, message: NormalizedText, history: Sequence[NormalizedText] = ()
    ) -> RiskAssessment: ...
