from __future__ import annotations

import importlib.util
import json

import pytest

from escalation.wards import WARDS_FILE, extract_ward, load_wards, ward_by_code

pytestmark = pytest.mark.unit


def test_shipped_wards_are_dong_nai_after_2025_and_match_the_package() -> None:
    wards = load_wards()
    assert len(wards) == 95
    assert {w.type for w in wards} == {"phường", "xã"}
    data = json.loads(WARDS_FILE.read_text(encoding="utf-8"))
    assert data["province"] == {"code": 75, "name": "Đồng Nai"}
    spec = importlib.util.spec_from_file_location("make_wards", WARDS_FILE.parent / "make_wards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build()["wards"] == data["wards"], "re-run escalation/data/make_wards.py"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("em ở phường Biên Hòa", "Phường Biên Hòa"),
        ("em o phuong bien hoa", "Phường Biên Hòa"),
        ("nhà em ở P. Long Bình", "Phường Long Bình"),
        ("em sống ở Tân Phú, Đồng Nai", "Xã Tân Phú"),
        ("nha em o x.trang bom", "Xã Trảng Bom"),
        ("em học ở xã Xuân Lộc", "Xã Xuân Lộc"),
        ("EM Ở PHƯỜNG BIÊN HOÀ", "Phường Biên Hòa"),
        ("nhà ở Lộc Thạnh", "Xã Lộc Thạnh"),
    ],
)
def test_ward_extracted_with_and_without_diacritics(text: str, name: str) -> None:
    match = extract_ward(text)
    assert match is not None and match.ward is not None
    assert match.ward.name == name
    assert ward_by_code(match.ward.code) == match.ward


@pytest.mark.parametrize(
    "text",
    ["sáng nay bình minh rất đẹp", "cả lớp thống nhất đi chơi", "em tên Tân Phú", "", "phường nào cũng được"],
)
def test_ward_names_used_as_ordinary_words_are_not_places(text: str) -> None:
    assert extract_ward(text) is None


def test_accent_free_name_of_two_wards_is_ambiguous_not_guessed() -> None:
    match = extract_ward("nha em o xa loc thanh")
    assert match is not None and match.ward is None and match.ambiguous
    assert {w.name for w in match.candidates} == {"Xã Lộc Thành", "Xã Lộc Thạnh"}
