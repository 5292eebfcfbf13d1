from __future__ import annotations

import pytest

from assistant.pseudonym import pseudonymize

pytestmark = pytest.mark.unit


def test_same_user_same_pseudonym_and_no_raw_id() -> None:
    a = pseudonymize("k" * 32, "zalo", "123456789")
    assert a == pseudonymize("k" * 32, "zalo", "123456789")
    assert "123456789" not in a and len(a) == 64


def test_key_and_channel_change_the_pseudonym() -> None:
    base = pseudonymize("k" * 32, "zalo", "42")
    assert base != pseudonymize("j" * 32, "zalo", "42")
    assert base != pseudonymize("k" * 32, "messenger", "42")


def test_empty_id_is_rejected() -> None:
    with pytest.raises(ValueError):
        pseudonymize("k", "web", "")
