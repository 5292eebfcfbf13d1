from __future__ import annotations

import pytest

from escalation.extract import (
    extract_age,
    extract_carer_knows,
    extract_gender,
    extract_ongoing,
    extract_phones,
    extract_place,
    extract_platforms,
    extract_relationship,
    extract_safe_now,
    extract_screen_names,
    extract_urls,
    extract_when,
    profile_urls,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("số của nó là 0912 345 678 nha", ["+84912345678"]),
        ("so cua no la 0912345678", ["+84912345678"]),
        ("gọi 090.123.4567", ["+84901234567"]),
        ("sdt: 0987-654-321", ["+84987654321"]),
        ("zalo +84 35 123 4567", ["+84351234567"]),
        ("+84912345678 và 84987654321", ["+84912345678", "+84987654321"]),
        ("máy bàn 0251 3822 123", ["+842513822123"]),
        ("hai số 0912345678, 0912345678", ["+84912345678"]),
    ],
)
def test_vietnamese_phone_numbers_are_found_and_normalised(text: str, expected: list[str]) -> None:
    assert extract_phones(text) == expected


@pytest.mark.parametrize(
    "text",
    ["gọi 111 hoặc 113, 115", "mã đơn 1234567890123", "năm 2024 em 12 tuổi", "otp 123456", "0112345678", "091234567"],
)
def test_things_that_are_not_phone_numbers_are_ignored(text: str) -> None:
    assert extract_phones(text) == []


def test_urls_with_and_without_scheme_and_profiles() -> None:
    text = "nó gửi facebook.com/nguyen.van.a, link https://www.tiktok.com/@bad_guy và www.abc.vn."
    urls = extract_urls(text)
    assert urls == ["https://facebook.com/nguyen.van.a", "https://www.tiktok.com/@bad_guy", "https://www.abc.vn"]
    assert profile_urls(urls) == urls[:2]
    assert profile_urls(["https://facebook.com/groups/123", "https://facebook.com/share/abc"]) == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("nick của nó là hotboy_2k9", ["hotboy_2k9"]),
        ("nick nó là hotboy_2k9", ["hotboy_2k9"]),
        ("nick cua no la hotboy_2k9", ["hotboy_2k9"]),
        ("tên fb: anhTuan99", ["anhTuan99"]),
        ("nó tên zalo là meo.con", ["meo.con"]),
        ("acc @kid_hunter nhắn em", ["kid_hunter"]),
        ("facebook.com/nguyen.van.a", ["nguyen.van.a"]),
        ("nick là gì vậy", []),
    ],
)
def test_screen_names(text: str, names: list[str]) -> None:
    assert extract_screen_names(text) == names


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("em 12 tuổi", (12, False)),
        ("e 12t", (12, False)),
        ("con tôi năm nay 9 tuổi", (9, False)),
        ("em học lớp 7", (13, True)),
        ("em hoc lop 10", (16, True)),
        ("ông ấy 45 tuổi", (None, False)),
        ("", (None, False)),
    ],
)
def test_age_stated_or_estimated_from_grade(text: str, age: tuple[int | None, bool]) -> None:
    assert extract_age(text) == age


def test_gender_safety_and_carer() -> None:
    assert extract_gender("em là con gái") == "female"
    assert extract_gender("con trai tôi bị dọa") == "male"
    assert extract_gender("em bị dọa") is None
    assert extract_safe_now("Em đang an toàn") is True
    assert extract_safe_now("em ko an toan") is False
    assert extract_safe_now("em không an toàn") is False
    assert extract_safe_now("an toàn là gì") is None
    assert extract_carer_knows("em chưa dám kể với bố mẹ") is False
    assert extract_carer_knows("em đã kể với mẹ rồi") is True


@pytest.mark.parametrize(
    ("text", "relationship"),
    [
        ("chú hàng xóm sờ vào người em", "neighbour"),
        ("bố dượng đánh em", "step_parent"),
        ("thầy giáo dạy thêm nhắn tin", "teacher"),
        ("người lạ trên mạng dọa em", "online_contact"),
        ("anh họ em", "relative"),
        ("nó dọa em", None),
    ],
)
def test_relationship(text: str, relationship: str | None) -> None:
    assert extract_relationship(text) == relationship


def test_incident_facts() -> None:
    text = "hôm qua anh ấy nhắn qua zalo với fb, vẫn đang nhắn mỗi ngày"
    assert extract_platforms(text) == ["facebook", "zalo"]
    assert extract_place(text, ["zalo"]) == "online"
    assert extract_place("ở trường bạn đánh em") == "school"
    assert extract_place("o nha em") == "home"
    assert extract_ongoing(text) == "ongoing"
    assert extract_ongoing("chỉ một lần thôi") == "once"
    assert extract_when(text) == "hôm qua"
    assert extract_when("3 ngày trước") == "3 ngày trước"
