"""Fixtures for the Vietnamese text layer tests.

The accent model is trained once per test session into a temporary directory
(about 3 s) and shared by every test that needs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.text.accents import AccentRestorer, load_or_train


@pytest.fixture(scope="session")
def accent_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory shared by the session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def restorer(accent_models_dir: Path) -> AccentRestorer:
    """The default accent restorer, trained once and cached under ``accent_models_dir``."""
    return load_or_train(accent_models_dir)
