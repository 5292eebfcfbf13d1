"""Routing: which agencies receive a report (category + place + ward -> agencies).

The rules live in a reviewed YAML file (``data/routing.yaml`` by default,
``escalation.routing_file`` in settings). The file is validated at start-up:
a bad file stops the service with a clear message instead of misrouting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.risk.taxonomy import CATEGORIES
from escalation.errors import RoutingConfigError

WARD_FOCAL_POINT = "ward_focal_point"


class AgencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["police", "hotline", "ward", "school", "other"]


class RuleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    categories: list[str] = Field(min_length=1)
    place: list[str] | None = None
    wards: list[int] | None = None
    agencies: list[str] = Field(min_length=1)


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    reviewed: str
    agencies: dict[str, AgencyConfig]
    rules: list[RuleConfig]
    default: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_codes(self) -> RoutingConfig:
        problems = []
        for rule in self.rules:
            for cat in rule.categories:
                if cat not in CATEGORIES or cat == "none":
                    problems.append(f"rule {rule.name!r}: unknown category {cat!r}")
            for agency in rule.agencies:
                if agency not in self.agencies:
                    problems.append(f"rule {rule.name!r}: unknown agency {agency!r}")
        for agency in self.default:
            if agency not in self.agencies:
                problems.append(f"default: unknown agency {agency!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class Route:
    agencies: tuple[str, ...]
    rules: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> str | None:
        return self.agencies[0] if self.agencies else None


def base_agency(agency: str) -> str:
    """``ward_focal_point:26068`` -> ``ward_focal_point``."""
    return agency.split(":", 1)[0]


class Router:
    def __init__(self, config: RoutingConfig) -> None:
        self.config = config

    @classmethod
    def from_file(cls, path: Path) -> Router:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls(RoutingConfig.model_validate(raw))
        except FileNotFoundError as exc:
            raise RoutingConfigError(f"Không tìm thấy tệp định tuyến {path}.", f"Routing file not found: {path}") from exc
        except (yaml.YAMLError, ValidationError) as exc:
            raise RoutingConfigError(
                f"Tệp định tuyến {path} không hợp lệ.", f"Invalid routing file {path}: {exc}"
            ) from exc

    def agency_name(self, agency: str) -> str:
        cfg = self.config.agencies.get(base_agency(agency))
        return cfg.name if cfg else agency

    def route(self, categories: list[str], place: str = "unknown", ward_code: int | None = None) -> Route:
        chosen: list[str] = []
        rules: list[str] = []
        notes: list[str] = []
        cats = set(categories)
        for rule in self.config.rules:
            if not cats & set(rule.categories):
                continue
            if rule.place is not None and place not in rule.place:
                continue
            if rule.wards is not None and ward_code not in rule.wards:
                continue
            rules.append(rule.name)
            for agency in rule.agencies:
                if agency == WARD_FOCAL_POINT:
                    if ward_code is None:
                        notes.append("ward unknown: the ward focal point cannot be chosen; set the ward")
                        continue
                    agency = f"{WARD_FOCAL_POINT}:{ward_code}"
                if agency not in chosen:
                    chosen.append(agency)
        if not chosen:
            chosen = list(self.config.default)
            rules.append("default")
        return Route(tuple(chosen), tuple(rules), tuple(notes))
