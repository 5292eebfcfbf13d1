"""The bot's own sentences, loaded from ``prompts/replies.vi.yaml``.

Nothing the bot says outside retrieved articles is written in code: it all
comes from the reviewed prompts file, so the child-protection team can edit it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
REPLIES_FILE = PROMPTS_DIR / "replies.vi.yaml"


class PromptBook:
    """Reply templates keyed by intent and audience."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.version = int(data.get("version", 0))

    @classmethod
    def load(cls, path: Path = REPLIES_FILE) -> PromptBook:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return cls(data)

    def has(self, intent: str) -> bool:
        return intent in self._data

    def text(self, intent: str, audience: str, seed: str = "") -> str:
        """One variant of ``intent`` for ``audience``, stable for a given seed."""
        try:
            variants = self._data[intent][audience]
        except KeyError as exc:
            raise KeyError(f"prompts: no text for {intent}.{audience}") from exc
        if isinstance(variants, str):
            return variants
        index = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(variants)
        return str(variants[index])

    def suggestions(self, key: str) -> list[str]:
        return [str(s) for s in self._data.get("suggestions", {}).get(key, [])]


@lru_cache(maxsize=1)
def default_prompts() -> PromptBook:
    return PromptBook.load()
