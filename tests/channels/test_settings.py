from __future__ import annotations

import pytest
from pydantic import ValidationError

from assistant.settings import Settings

pytestmark = pytest.mark.unit
KEY = "k" * 40
REAL = "a-real-platform-secret-0123456789"


def make(**env: object) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg, arg-type]


def messenger(**extra: object) -> dict[str, object]:
    return {
        "enabled": True, "app_secret": REAL, "verify_token": REAL, "page_id": "1122",
        "page_access_token": REAL, **extra,
    }


def zalo(**extra: object) -> dict[str, object]:
    return {"enabled": True, "app_id": "2553", "app_secret": REAL, "oa_secret_key": REAL, "refresh_token": REAL, **extra}


def test_channels_are_off_by_default() -> None:
    s = make()
    assert not s.channels.messenger.enabled and not s.channels.zalo.enabled


def test_an_enabled_channel_needs_its_secrets_in_every_mode() -> None:
    with pytest.raises(ValidationError, match="ASSISTANT_CHANNELS__ZALO__OA_SECRET_KEY"):
        make(channels={"zalo": {"enabled": True, "app_id": "1"}})


def test_environment_variables_fill_the_channel_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CHANNELS__MESSENGER__ENABLED", "true")
    for name, value in messenger().items():
        if name != "enabled":
            monkeypatch.setenv(f"ASSISTANT_CHANNELS__MESSENGER__{name.upper()}", str(value))
    monkeypatch.setenv("ASSISTANT_CHANNELS__MESSENGER__GRAPH_API_VERSION", "v24.0")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.channels.messenger.enabled and s.channels.messenger.graph_api_version == "v24.0"
    assert s.channels.messenger.app_secret.get_secret_value() == REAL


def test_production_refuses_placeholder_secrets_of_enabled_channels() -> None:
    with pytest.raises(ValidationError, match="channels.messenger.app_secret"):
        make(mode="production", security={"pseudonym_key": KEY, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]}, channels={"messenger": messenger(app_secret="change-me")})


def test_production_ignores_disabled_channels() -> None:
    s = make(mode="production", security={"pseudonym_key": KEY, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]}, channels={"zalo": {"app_secret": "test"}})
    assert s.production


def test_production_wants_https_platform_urls() -> None:
    with pytest.raises(ValidationError, match="api_base_url must be an https"):
        make(mode="production", security={"pseudonym_key": KEY, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]},
             channels={"zalo": zalo(api_base_url="http://127.0.0.1:9")})
    s = make(mode="production", security={"pseudonym_key": KEY, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]}, channels={"zalo": zalo(), "messenger": messenger()})
    assert s.channels.zalo.enabled and s.channels.messenger.enabled


def test_graph_api_version_is_checked() -> None:
    with pytest.raises(ValidationError, match="graph_api_version"):
        make(channels={"messenger": messenger(graph_api_version="latest")})
