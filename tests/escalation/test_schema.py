from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from escalation.schemas import SCHEMA_FILE, ReportContent, TipReportUpdate, render_json_schema

pytestmark = pytest.mark.unit


def content(**incident: object) -> dict[str, object]:
    return {
        "reporter_role": "child",
        "incident": {"categories": ["grooming"], "primary_category": "grooming", "description": "x", **incident},
        "child": {"pseudonym": "abc"},
    }


def test_committed_json_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_json_schema(), (
        "regenerate it: python -m escalation.schemas"
    )
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["title"] == "TipReport"
    assert set(schema["required"]) == {"meta", "urgency", "incident", "child", "reported_person", "evidence", "handling"}
    # Evidence can never carry images.
    assert schema["$defs"]["Evidence"]["properties"]["images"]["const"] is False


def test_valid_content_and_defaults() -> None:
    c = ReportContent.model_validate(content())
    assert c.evidence.images is False and c.confidentiality == "restricted"


@pytest.mark.parametrize(
    "bad",
    [
        {"categories": ["none"]},
        {"categories": ["grooming"], "primary_category": "sextortion"},
        {"categories": []},
        {"description": ""},
        {"description": "a\x00b"},
        {"place": "moon"},
        {"ward": {"code": 1, "name": "x"}},
        {"unknown_field": 1},
    ],
)
def test_malformed_content_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ReportContent.model_validate(content(**bad))


def test_update_rejects_unknown_fields_and_bad_values() -> None:
    TipReportUpdate.model_validate({"version": 1, "child": {"age": 12}})
    for bad in (
        {"version": 1, "child": {"age": 30}},
        {"version": 1, "reported_person": {"phone_numbers": ["12345"]}},
        {"version": 1, "reported_person": {"profile_urls": ["javascript:alert(1)"]}},
        {"version": 1, "incident": {"ward_code": 99999}},
        {"version": 1, "severity": 1},
        {"version": 1, "status": "closed"},
        {"child": {"age": 3}},
    ):
        with pytest.raises(ValidationError):
            TipReportUpdate.model_validate(bad)


def test_evidence_item_fields() -> None:
    c = ReportContent.model_validate(
        {**content(), "evidence": {"items": [{"message_id": 1, "at": datetime.now(UTC).isoformat(),
                                              "excerpt": "x", "sha256": "0" * 64}]}}
    )
    assert c.evidence.items[0].kind == "message_excerpt"
