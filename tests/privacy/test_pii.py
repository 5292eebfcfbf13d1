"""Redaction of each kind of personal data, with and without diacritics."""

from __future__ import annotations

import pytest

from assistant.privacy.pii import find, redact

pytestmark = pytest.mark.unit

CASES = [
    ("phone", "Số của em là 0912 345 678 nha", "0912 345 678"),
    ("phone", "so dt cua em 091.234.5678", "091.234.5678"),
    ("phone", "gọi cho em +84 912345678", "+84 912345678"),
    ("phone", "nha em 028 3822 1234", "028 3822 1234"),
    ("email", "email em: be.na+1@gmail.com", "be.na+1@gmail.com"),
    ("id", "CCCD của mẹ em 075123456789", "075123456789"),
    ("id", "cmnd so 271234567", "cmnd so 271234567"),
    ("id", "ma so 271234567 do", "271234567"),
    ("address", "nhà em ở số nhà 12 gần chợ", "số nhà 12"),
    ("address", "em ở 45/3 đường Phạm Văn Thuận", "45/3 đường Phạm Văn Thuận"),
    ("address", "nha em o 45/3 duong Pham Van Thuan", "45/3 duong Pham Van Thuan"),
    ("address", "em ở phường Tân Phong, Biên Hòa", "phường Tân Phong"),
    ("address", "em o phuong Tan Phong", "phuong Tan Phong"),
    ("address", "nhà ở huyện Long Thành", "huyện Long Thành"),
    ("address", "nha o xa Phuoc Tan", "xa Phuoc Tan"),
    ("school", "em học Trường THCS Nguyễn Du", "Trường THCS Nguyễn Du"),
    ("school", "em hoc truong THPT Ngo Quyen", "truong THPT Ngo Quyen"),
    ("school", "em học tiểu học Số 2", "tiểu học Số 2"),
    ("school", "em hoc mam non Hoa Sen", "mam non Hoa Sen"),
    ("name", "bạn Nguyễn Văn An lớp em", "Nguyễn Văn An"),
    ("name", "ban Tran Thi Mai doa em", "Tran Thi Mai"),
    ("name", "thầy LÊ VĂN TÁM", "LÊ VĂN TÁM"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(CASES)])
def test_each_pattern_is_found_and_redacted(kind: str, text: str, secret: str) -> None:
    found = find(text)
    assert [(m.kind, m.text) for m in found] == [(kind, secret)]
    out = redact(text)
    assert secret not in out
    assert "[" in out


@pytest.mark.parametrize(
    "text",
    [
        "em buồn quá, không ai quan tâm",
        "tôi ở xa lắm",
        "em 13 tuổi, học lớp 8",
        "em co 2 tram nghin",
        "Có người lạ nhắn tin đòi ảnh của em",
    ],
)
def test_ordinary_sentences_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_decomposed_unicode_is_read_as_nfc() -> None:
    import unicodedata

    text = unicodedata.normalize("NFD", "bạn Nguyễn Văn An ở phường Tân Phong")
    assert redact(text) == "bạn [HỌ TÊN] ở [ĐỊA CHỈ]"
