"""Risk assessment of every message: taxonomy, classifier layers, conversation context."""

from assistant.risk.base import ModelNotTrained, RiskAssessment, RiskClassifier, RiskError
from assistant.risk.taxonomy import CATEGORIES, HIGH_CATEGORIES, Severity, escalates

__all__ = [
    "CATEGORIES",
    "HIGH_CATEGORIES",
    "ModelNotTrained",
    "RiskAssessment",
    "RiskClassifier",
    "RiskError",
    "Severity",
    "escalates",
]
