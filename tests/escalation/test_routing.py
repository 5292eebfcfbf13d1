from __future__ import annotations

from pathlib import Path

import pytest

from escalation.errors import RoutingConfigError
from escalation.routing import Router
from escalation.settings import DEFAULT_ROUTING_FILE

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_file(DEFAULT_ROUTING_FILE)


@pytest.mark.parametrize(
    ("categories", "place", "ward", "agencies"),
    [
        (["sexual_abuse"], "home", None, ("city_police", "hotline_111")),
        (["grooming", "sextortion"], "online", 26068, ("city_police", "hotline_111")),
        (["self_harm"], "unknown", None, ("hotline_111",)),
        (["violence"], "home", 26068, ("hotline_111", "ward_focal_point:26068")),
        (["violence"], "school", 26068, ("hotline_111", "ward_focal_point:26068", "school")),
        (["trafficking"], "online", None, ("city_police", "hotline_111")),
        (["scam"], "online", None, ("hotline_111",)),
    ],
)
def test_category_place_and_ward_choose_agencies(
    router: Router, categories: list[str], place: str, ward: int | None, agencies: tuple[str, ...]
) -> None:
    assert router.route(categories, place, ward).agencies == agencies


def test_unknown_ward_drops_the_focal_point_with_a_note(router: Router) -> None:
    route = router.route(["violence"], "home", None)
    assert route.agencies == ("hotline_111",)
    assert route.notes and "ward" in route.notes[0]
    assert router.agency_name("ward_focal_point:26068").startswith("Cán bộ đầu mối")


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nreviewed: x\nagencies: {}\nrules: []\ndefault: [nobody]\n",
        "version: 1\nreviewed: x\nagencies: {a: {name: A, kind: police}}\n"
        "rules: [{name: r, categories: [not_a_category], agencies: [a]}]\ndefault: [a]\n",
        "version: [",
    ],
)
def test_invalid_routing_file_is_refused_clearly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RoutingConfigError):
        Router.from_file(path)
    with pytest.raises(RoutingConfigError):
        Router.from_file(tmp_path / "missing.yaml")
