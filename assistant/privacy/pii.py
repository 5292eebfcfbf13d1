"""A pattern-based detector of personal data in Vietnamese text, and ``redact``.

What it finds (with and without diacritics; the text is read in NFC):

    email     ten.em@gmail.com
    id        CCCD (12 digits), CMND (9 digits), also when led by "CCCD/CMND/căn cước"
    phone     0912 345 678, 091.234.5678, +84 912345678, 84-28-3822-1234, 028 3822 1234
    school    Trường THCS Nguyễn Du, truong THPT Ngo Quyen, Tiểu học Số 2, Mầm non Hoa Sen
    address   số nhà 12, 45/3 đường Phạm Văn Thuận, phường Tân Phong, xa Phuoc Tan, huyện Long Thành
    name      Nguyễn Văn An, Tran Thi Mai (a common family name and 1–3 capitalised syllables)

It is a high-recall filter for transcripts shown or exported outside the report
evidence: it over-redacts rather than leak (a street named after a person is
redacted as an address or as a name, both fine). It is NOT a guarantee: free
text can always carry identifying details no pattern sees.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

UPPER = "A-ZÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬĐÈÉẺẼẸÊỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢÙÚỦŨỤƯỪỨỬỮỰỲÝỶỸỴ"
CAP = rf"[{UPPER}][^\W\d_]*"  # one capitalised syllable
CAPS = rf"{CAP}(?:[ \t]+{CAP}){{0,3}}"  # up to four of them
PLACE_NAME = rf"(?:{CAPS}|(?:số[ \t]+|so[ \t]+)?\d+[A-Za-z]?)"

FAMILY_NAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trương", "Lâm", "Mai", "Trịnh", "Đào", "Cao", "Lưu", "Tô", "Tạ", "Hà", "Châu", "Quách", "Thái", "Kiều", "Lương", "Đoàn", "Vương", "Tăng", "Lạc", "Triệu", "Từ", "Nguyen", "Tran", "Le", "Pham", "Hoang", "Huynh", "Vu", "Vo", "Dang", "Bui", "Do", "Ho", "Ngo", "Duong", "Ly", "Dinh", "Truong", "Lam", "Trinh", "Dao", "Luu", "To", "Ta", "Ha", "Chau", "Quach", "Thai", "Kieu", "Luong", "Doan", "Vuong", "Tang", "Trieu", "Tu"]

_FAMILY = "|".join(sorted({re.escape(n) for n in FAMILY_NAMES}, key=len, reverse=True))
_FAMILY_UPPER = "|".join(
    sorted({re.escape(n.upper()) for n in FAMILY_NAMES}, key=len, reverse=True)
)

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")),
    (
        "id",
        re.compile(
            r"(?:(?i:cccd|cmnd|căn cước|can cuoc|chứng minh(?: nhân dân)?|chung minh(?: nhan dan)?|"
            r"số định danh|so dinh danh)[ \t:.#-]*(?:số|so)?[ \t:.]*\d{9}(?:\d{3})?(?!\d))"
            r"|(?<!\d)\d{12}(?!\d)"
        ),
    ),
    ("phone", re.compile(r"(?<![\d+])(?:\+84|84|0)(?:[ .\-]?\d){8,10}(?!\d)")),
    (
        "school",
        re.compile(
            rf"(?:(?i:trường|truong)[ \t]+)?"
            rf"(?:THCS|THPT|PTDTNT|PTTH|(?i:tiểu học|tieu hoc|mầm non|mam non|trung học cơ sở|trung hoc co so|"
            rf"trung học phổ thông|trung hoc pho thong|liên cấp|lien cap|tiểu học và THCS))"
            rf"[ \t]+(?:(?i:số|so)[ \t]+\d+|{CAPS}|\d+)"
            rf"|(?i:trường|truong)[ \t]+{CAPS}"
        ),
    ),
    (
        "address",
        re.compile(
            rf"(?i:số nhà|so nha|nhà số|nha so)[ \t]*\d+[\w/\-]*"
            rf"|\d+[\w/\-]*[ \t]+(?i:đường|duong|phố|pho)[ \t]+{CAPS}"
            rf"|(?i:đường|duong|phố|hẻm|hem|kiệt|ngõ|phường|phuong|xã|quận|quan|huyện|huyen|"
            rf"khu phố|khu pho|ấp|thôn|thon|tổ dân phố|to dan pho|tổ|KP)[ \t]+{PLACE_NAME}"
            rf"|(?i:xa|ap)[ \t]+{CAPS}"
        ),
    ),
    ("name", re.compile(rf"\b(?:{_FAMILY})(?:[ \t]+{CAP}){{1,3}}\b|\b(?:{_FAMILY_UPPER})(?:[ \t]+[{UPPER}]+){{1,3}}\b")),
    ("id", re.compile(r"(?<![\d+])\d{9}(?!\d)")),
)

LABELS = {
    "email": "[EMAIL]",
    "id": "[SỐ GIẤY TỜ]",
    "phone": "[SĐT]",
    "school": "[TRƯỜNG]",
    "address": "[ĐỊA CHỈ]",
    "name": "[HỌ TÊN]",
}


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int
    end: int
    text: str


def find(text: str) -> list[PiiMatch]:
    """Non-overlapping matches in the NFC form of ``text``; earlier patterns win ties."""
    text = unicodedata.normalize("NFC", text)
    taken: list[PiiMatch] = []
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(text):
            if m.end() == m.start():
                continue
            if any(m.start() < t.end and t.start < m.end() for t in taken):
                continue
            taken.append(PiiMatch(kind, m.start(), m.end(), m.group()))
    return sorted(taken, key=lambda t: t.start)


def redact(text: str, kinds: frozenset[str] | None = None) -> str:
    """``text`` (NFC) with each detected item replaced by a label such as ``[SĐT]``."""
    text = unicodedata.normalize("NFC", text)
    out, pos = [], 0
    for m in find(text):
        if kinds is not None and m.kind not in kinds:
            continue
        out.append(text[pos : m.start])
        out.append(LABELS[m.kind])
        pos = m.end
    out.append(text[pos:])
    return "".join(out)
