from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant.settings import Settings

pytestmark = pytest.mark.unit


def make(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg, arg-type]


def test_defaults_put_every_runtime_file_under_the_data_dir(tmp_path: Path) -> None:
    s = make(data_dir=str(tmp_path / "d"))
    assert s.database_url == f"sqlite:///{tmp_path / 'd' / 'assistant.sqlite3'}"
    assert s.models_dir == tmp_path / "d" / "models"
    assert s.index_dir == tmp_path / "d" / "index"


def test_two_data_dirs_never_share_files(tmp_path: Path) -> None:
    a, b = make(data_dir=str(tmp_path / "a")), make(data_dir=str(tmp_path / "b"))
    assert {a.database_url, str(a.models_dir), str(a.index_dir)}.isdisjoint(
        {b.database_url, str(b.models_dir), str(b.index_dir)}
    )


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ASSISTANT_CHAT__MAX_MESSAGE_CHARS", "500")
    monkeypatch.setenv("ASSISTANT_DATABASE__URL", "postgresql://u@127.0.0.1/db")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.chat.max_message_chars == 500
    assert s.database_url == "postgresql+psycopg://u@127.0.0.1/db"
    assert s.data_path == tmp_path.resolve()


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("ASSISTANT_CHAT__HISTORY_TURNS=3\nASSISTANT_MODE=test\n")
    s = Settings(_env_file=str(env))  # type: ignore[call-arg]
    assert s.chat.history_turns == 3 and s.mode == "test"


def test_production_refuses_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="pseudonym_key"):
        make(mode="production")


def test_production_accepts_a_real_secret() -> None:
    s = make(mode="production", security={"pseudonym_key": "x" * 40, "data_keys": ["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="]})  # type: ignore[arg-type]
    assert s.production


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("database", {"url": "mysql://x"}, "must start with 'sqlite' or 'postgresql'"),
        ("chat", {"max_message_chars": 0}, "greater than or equal to 1"),
        ("retrieval", {"embedder": "sentence-transformers"}, "model_dir"),
        ("mode", "staging", "Input should be"),
    ],
)
def test_invalid_values_have_clear_messages(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(**{field: value})  # type: ignore[arg-type]


def test_request_threads_default_and_bounds() -> None:
    """Three blocking handlers at once by default (README, Performance: fewer threads
    contend less for the interpreter and SQLite's write lock); 0 would serve nothing."""
    assert make().server.request_threads == 3
    assert make().database.sqlite_pool_size > make().server.request_threads
    with pytest.raises(ValidationError):
        Settings(server={"request_threads": 0})  # type: ignore[arg-type]
