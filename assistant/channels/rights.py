"""Privacy commands a Zalo or Messenger user types, and the consent answers.

    "mã dữ liệu", "xem dữ liệu", "tải dữ liệu", "xoá dữ liệu" ...  -> a one-time code and how to use it
    "xoá <MÃ>"                                                  -> delete the current conversation
                                                                   (a report under legal hold: explained)
    "xem <MÃ>", "tải <MÃ>"                                      -> a short summary sent back, and where
                                                                   to download the whole conversation

Only the WHOLE message counts, compared accent-folded and in lower case, so
"ma du lieu" and "Mã dữ liệu!" are the same command while a real message ("em
muốn xoá ảnh bạn ấy gửi") always goes through the risk pipeline. A command is
not a chat turn: it is not risk-classified, not stored as a message, and the
code is never logged (the inbox row keeps the text only until it is processed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from assistant.text import fold_accents

PRIVACY_CODE_PAYLOAD = "PRIVACY_CODE"
CONSENT_PAYLOAD = "PRIVACY_ACCEPT"
VIETNAM = timezone(timedelta(hours=7), "ICT")  # no daylight saving time

_OWNERS = ("", " cua em", " cua toi", " cua minh", " cua con", " cua chau")
_REQUESTS = frozenset(
    {f"{verb}du lieu{owner}" for verb in ("", "lay ", "xem ", "xem lai ", "tai ", "tai ve ", "xoa ")
     for owner in _OWNERS}
    | {f"{head}ma du lieu{owner}" for head in ("", "lay ", "cho em ", "cho toi ") for owner in _OWNERS}
    | {"ma xoa du lieu", "ma xem du lieu", "xoa cuoc tro chuyen", "xoa tro chuyen", "quyen rieng tu"}
)
# Codes use CODE_ALPHABET of assistant.privacy.service (no 0/O, 1/I/L), typed in any case,
# with or without the dash.
_CODE = r"(?P<code>[2-9a-hjkmnp-z]{5}[\s-]?[2-9a-hjkmnp-z]{5})"
_USE = re.compile(rf"^(?P<verb>xoa|xem|tai ve|tai)(?: du lieu)?:?\s+{_CODE}$")
_CONSENT_ANSWERS = frozenset(
    {"dong y", "em dong y", "toi dong y", "minh dong y", "con dong y", "dong y a", "ok", "oke", "okay",
     "ok dong y", "da dong y"}
)


@dataclass(frozen=True)
class PrivacyCommand:
    action: Literal["code", "export", "delete"]
    code: str | None = None


def _fold(text: str) -> str:
    """Lower case, no diacritics, punctuation around words dropped (the code's dash kept)."""
    folded = fold_accents(text).lower()
    folded = re.sub(r"[^\w\s-]", " ", folded)
    return " ".join(folded.replace("_", " ").split()).strip(" -")


def privacy_command(text: str, payload: str | None = None) -> PrivacyCommand | None:
    """The command in ``text`` (the whole message), or ``None`` for an ordinary message."""
    if payload == PRIVACY_CODE_PAYLOAD:
        return PrivacyCommand("code")
    if len(text) > 60:
        return None
    folded = _fold(text)
    if folded in _REQUESTS:
        return PrivacyCommand("code")
    match = _USE.match(folded)
    if match is None:
        return None
    code = re.sub(r"[\s-]", "", match["code"]).upper()
    return PrivacyCommand("delete" if match["verb"] == "xoa" else "export", f"{code[:5]}-{code[5:]}")


def consent_answer(text: str, payload: str | None = None) -> bool:
    """An explicit "Đồng ý" to the privacy notice (button or typed)."""
    return payload == CONSENT_PAYLOAD or _fold(text) in _CONSENT_ANSWERS


def local_time(value: datetime) -> str:
    """``14:05 ngày 02/12/2026`` in Vietnam's time."""
    return value.astimezone(VIETNAM).strftime("%H:%M ngày %d/%m/%Y")
