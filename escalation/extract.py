"""Facts pulled from a conversation for the tip report, by tested patterns.

Everything here is a suggestion a counselor checks: phone numbers (Vietnamese
mobile and landline formats, normalised to E.164), URLs and profile links,
screen names, the child's age, gender, platforms, place, whether the harm is
ongoing, and the reported person's relationship to the child. Every pattern
works on text with and without diacritics (it is matched on the folded text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from assistant.text.normalize import fold_accents

# -- phone numbers -------------------------------------------------------------
# Mobile: 0 + 9 digits starting 3/5/7/8/9 (e.g. 0912 345 678, 090.123.4567),
# or +84 / 84 instead of the 0. Landline: 02xx + 7-8 digits (0251 3822 xxx).
# Separators: space, dot, dash, and a teen-style mix of them.
_SEP = r"[\s.\-]?"
_PHONE_RE = re.compile(
    r"(?<![\w+])"
    r"(?P<prefix>\+84|84|0)" + _SEP +
    r"(?P<rest>(?:[35789](?:" + _SEP + r"\d){8})|(?:2(?:" + _SEP + r"\d){9}))"
    r"(?!\w)"
)


def extract_phones(text: str) -> list[str]:
    """Vietnamese phone numbers in ``text`` as E.164 (``+84912345678``), in order, unique."""
    found: list[str] = []
    for m in _PHONE_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group("rest"))
        if m.group("prefix") == "84" and m.start() > 0 and text[m.start() - 1].isdigit():
            continue
        number = "+84" + digits
        if number not in found:
            found.append(number)
    return found


# -- URLs and profile links ------------------------------------------------------
_DOMAINS = (
    r"facebook\.com|fb\.com|m\.facebook\.com|fb\.me|messenger\.com|m\.me|zalo\.me|chat\.zalo\.me|"
    r"tiktok\.com|vt\.tiktok\.com|instagram\.com|instagr\.am|t\.me|telegram\.me|discord\.gg|discord\.com|"
    r"youtube\.com|youtu\.be|x\.com|twitter\.com|threads\.net|snapchat\.com|roblox\.com"
)
_URL_RE = re.compile(
    r"(?i)(?<![\w@])(?:(?:https?://|www\.)[^\s<>\"'()]+|(?:" + _DOMAINS + r")/[^\s<>\"'()]+)"
)
_TRAILING = ".,;:!?)]}…"


def extract_urls(text: str) -> list[str]:
    """URLs in ``text`` (with a scheme added when missing), unique, in order."""
    urls: list[str] = []
    for m in _URL_RE.finditer(text):
        url = m.group(0).rstrip(_TRAILING)
        if not url.lower().startswith(("http://", "https://")):
            url = "https://" + url
        if url not in urls:
            urls.append(url)
    return urls


_PROFILE_RE = re.compile(
    r"(?i)^https?://(?:www\.|m\.)?(?:facebook\.com|fb\.com|tiktok\.com|instagram\.com|t\.me|zalo\.me|"
    r"x\.com|twitter\.com|threads\.net|roblox\.com/users)/(?:@)?(?P<name>[\w.\-]{2,64})/?(?:\?.*)?$"
)
_NOT_PROFILES = frozenset({"groups", "share", "watch", "photo", "photo.php", "video", "reel", "reels", "p", "events"})


def profile_urls(urls: Iterable[str]) -> list[str]:
    """The URLs that point at a person's profile (not a post or a group)."""
    out = []
    for url in urls:
        m = _PROFILE_RE.match(url)
        if m and m.group("name").lower() not in _NOT_PROFILES:
            out.append(url)
    return out


# -- screen names ------------------------------------------------------------------
_SCREEN_CUE = (
    r"(?:nick(?:name)?|nic|ten nick|ten acc|ten tai khoan|tai khoan|acc(?:ount)?|username|user|"
    r"id|ten (?:fb|facebook|zalo|tiktok|insta|game)|fb|zalo|tiktok|ig)"
)
_SCREEN_RE = re.compile(
    r"(?i)(?<!\w)" + _SCREEN_CUE + r"\s*(?:(?:cua )?(?:no|nguoi do|ong ay|anh ay|chu ay|han|ong ta|hanh)\s*)?(?:la|ten|:)\s*"
    r"[\"'“]?(?P<name>@?[A-Za-z0-9_.\-]{3,32})"
)
_AT_RE = re.compile(r"(?<![\w@.])@(?P<name>[A-Za-z0-9_.]{3,30})(?![\w@])")
_STOP_NAMES = frozenset({"gi", "ai", "nao", "the", "vay", "khong", "ko", "dau"})


def extract_screen_names(text: str) -> list[str]:
    """Screen names: ``@handle``, ``nick là X``, ``tên fb: X``, and names in profile URLs."""
    folded = fold_accents(text)
    names: list[str] = []

    def add(name: str) -> None:
        name = name.strip(".-_").lstrip("@")
        if len(name) >= 3 and name.lower() not in _STOP_NAMES and name not in names:
            names.append(name)

    for m in _SCREEN_RE.finditer(folded):
        # Take the original spelling from the same span (folding keeps lengths).
        start, end = m.span("name")
        add(text[start:end] if len(folded) == len(text) else m.group("name"))
    for m in _AT_RE.finditer(text):
        add(m.group("name"))
    for url in profile_urls(extract_urls(text)):
        pm = _PROFILE_RE.match(url)
        if pm:
            add(pm.group("name"))
    return names


# -- the child -----------------------------------------------------------------------
_AGE_RE = re.compile(
    r"(?i)(?<!\w)(?:(?:em|con|chau|be|minh|toi|tui|t|e|no|con toi|con em|con minh|con gai|con trai)"
    r"\s+(?:nam nay\s+|moi\s+|da\s+|duoc\s+)?(?P<age>\d{1,2})\s*(?:tuoi|t)(?!\w))"
)
_GRADE_RE = re.compile(r"(?i)(?<!\w)(?:hoc\s+)?lop\s*(?P<grade>\d{1,2})(?!\d)")


def extract_age(text: str) -> tuple[int | None, bool]:
    """(age, estimated): a stated age ("em 12 tuổi") or one estimated from the grade ("lớp 7" → 13)."""
    folded = fold_accents(text).lower()
    m = _AGE_RE.search(folded)
    if m:
        age = int(m.group("age"))
        if 3 <= age <= 17:
            return age, False
    g = _GRADE_RE.search(folded)
    if g:
        grade = int(g.group("grade"))
        if 1 <= grade <= 12:
            return grade + 6, True
    return None, False


_FEMALE_RE = re.compile(r"(?i)(?<!\w)(?:em|con|chau|minh|toi) (?:la )?(?:con gai|ban nu|hoc sinh nu|nu)(?!\w)")
_MALE_RE = re.compile(r"(?i)(?<!\w)(?:em|con|chau|minh|toi) (?:la )?(?:con trai|ban nam|hoc sinh nam|nam)(?!\w)")
_FEMALE_CHILD_RE = re.compile(r"(?i)(?<!\w)(?:con gai|chau gai|be gai)(?: (?:toi|em|minh|nha|cua))")
_MALE_CHILD_RE = re.compile(r"(?i)(?<!\w)(?:con trai|chau trai|be trai)(?: (?:toi|em|minh|nha|cua))")


def extract_gender(text: str) -> str | None:
    folded = fold_accents(text).lower()
    if _FEMALE_RE.search(folded) or _FEMALE_CHILD_RE.search(folded):
        return "female"
    if _MALE_RE.search(folded) or _MALE_CHILD_RE.search(folded):
        return "male"
    return None


_SAFE_NO_RE = re.compile(r"(?i)(?<!\w)(?:khong|ko|k|kh|chua) (?:duoc )?an toan(?!\w)")
_SAFE_YES_RE = re.compile(r"(?i)(?<!\w)(?:dang|da|van|hien|bay gio|gio)\s*(?:dang\s*)?an toan(?!\w)")


def extract_safe_now(text: str) -> bool | None:
    """The child's answer to "em có đang an toàn không?" ("em đang an toàn" / "em không an toàn")."""
    folded = fold_accents(text).lower()
    if _SAFE_NO_RE.search(folded):
        return False
    if _SAFE_YES_RE.search(folded):
        return True
    return None


_CARER_KNOWS_NO = re.compile(
    r"(?i)(?:chua|khong|ko|k) (?:dam |muon )?(?:ke|noi|bao)(?: voi| cho)? (?:ai|bo|me|ba|ma|bo me|ba me|gia dinh|nguoi lon)"
)
_CARER_KNOWS_YES = re.compile(r"(?i)(?:da|vua|co) (?:ke|noi|bao)(?: voi| cho)? (?:bo|me|ba|ma|bo me|ba me|co giao|thay giao)")


def extract_carer_knows(text: str) -> bool | None:
    folded = fold_accents(text).lower()
    if _CARER_KNOWS_NO.search(folded):
        return False
    if _CARER_KNOWS_YES.search(folded):
        return True
    return None


# -- the incident ----------------------------------------------------------------------
PLATFORMS: dict[str, tuple[str, ...]] = {
    "facebook": ("facebook", "fb", "face"),
    "messenger": ("messenger", "mess", "mes"),
    "zalo": ("zalo",),
    "tiktok": ("tiktok", "tik tok", "tictoc"),
    "instagram": ("instagram", "insta", "ig"),
    "telegram": ("telegram", "tele"),
    "discord": ("discord",),
    "youtube": ("youtube",),
    "roblox": ("roblox",),
    "minecraft": ("minecraft",),
    "free_fire": ("free fire", "ff"),
    "lien_quan": ("lien quan", "lq"),
    "pubg": ("pubg",),
    "snapchat": ("snapchat", "snap"),
    "game_online": ("game online", "trong game"),
}
_PLATFORM_RES = {
    name: re.compile(r"(?<!\w)(?:" + "|".join(re.escape(a) for a in aliases) + r")(?!\w)")
    for name, aliases in PLATFORMS.items()
}


def extract_platforms(text: str) -> list[str]:
    folded = fold_accents(text).lower()
    return [name for name, rx in _PLATFORM_RES.items() if rx.search(folded)]


_PLACE_RES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("school", re.compile(r"(?<!\w)(?:o truong|tai truong|trong truong|trong lop|o lop|tren lop|nha ve sinh truong|thay giao|co giao)(?!\w)")),
    ("home", re.compile(r"(?<!\w)(?:o nha|tai nha|trong nha|nha em|nha minh|phong ngu|hang xom)(?!\w)")),
)


def extract_place(text: str, platforms: list[str] | None = None) -> str:
    """``online`` | ``home`` | ``school`` | ``unknown`` (``other`` is left to the counselor)."""
    folded = fold_accents(text).lower()
    for place, rx in _PLACE_RES:
        if rx.search(folded):
            return place
    if platforms or re.search(r"(?<!\w)(?:tren mang|online|nhan tin|inbox|ib|chat|video call|call video)(?!\w)", folded):
        return "online"
    return "unknown"


_ONGOING_RE = re.compile(
    r"(?<!\w)(?:van dang|van con|van tiep tuc|nhieu lan|suot|hay|thuong xuyen|moi ngay|hang ngay|ngay nao cung|lien tuc|cu|lai)(?!\w)"
)
_ONCE_RE = re.compile(r"(?<!\w)(?:mot lan|1 lan|lan dau)(?!\w)")
_WHEN_RE = re.compile(
    r"(?<!\w)(?:hom qua|hom kia|toi qua|dem qua|sang nay|chieu nay|toi nay|hom nay|tuan truoc|tuan nay|thang truoc|"
    r"nam ngoai|\d+ (?:ngay|tuan|thang|nam) truoc|\d{1,2}/\d{1,2}(?:/\d{2,4})?)(?!\w)"
)


def extract_ongoing(text: str) -> str:
    """``ongoing`` | ``once`` | ``unknown``."""
    folded = fold_accents(text).lower()
    if _ONGOING_RE.search(folded):
        return "ongoing"
    if _ONCE_RE.search(folded):
        return "once"
    return "unknown"


def extract_when(text: str) -> str | None:
    """When it happened, as the free text written ("hôm qua", "3 ngày trước", "12/10")."""
    folded = fold_accents(text).lower()
    m = _WHEN_RE.search(folded)
    if m is None:
        return None
    start, end = m.span()
    return text[start:end] if len(folded) == len(text) else m.group(0)


RELATIONSHIPS: tuple[tuple[str, str], ...] = (
    # Specific kinds first: "chú hàng xóm" is a neighbour, not an uncle.
    ("step_parent", r"bo duong|ba duong|me ke|cha duong|chong cua me|vo cua bo"),
    ("neighbour", r"hang xom|nha ben canh"),
    ("teacher", r"co giao|thay giao|giao vien|thay day them|co day them|gia su|thay chu nhiem|co chu nhiem"),
    ("online_contact", r"nguoi la|ban tren mang|nguoi quen tren mang|quen tren mang|quen qua game|ban game|anh tren mang|acc ao|nick ao"),
    ("employer", r"chu quan|ong chu|ba chu|nguoi tuyen dung|mon"),
    ("partner", r"nguoi yeu|ban trai|ban gai|nyc"),
    ("peer", r"ban cung lop|ban hoc|ban trong lop|dan anh|dan chi|may dua trong lop|ban than"),
    ("parent", r"bo em|ba em|me em|bo con|me con|bo minh|me minh|bo toi|me toi|bo no|ba no|me no"),
    ("relative", r"chu|bac|cau|di|anh ho|chi ho|ong noi|ong ngoai|anh trai|chi gai|anh ruot|chu ruot|duong|thim|mo"),
)
_REL_RES = tuple((code, re.compile(r"(?<!\w)(?:" + alts + r")(?!\w)")) for code, alts in RELATIONSHIPS)


def extract_relationship(text: str) -> str | None:
    """The reported person's relationship to the child: the first kind of the table that matches."""
    folded = fold_accents(text).lower()
    for code, rx in _REL_RES:
        if rx.search(folded):
            return code
    return None
