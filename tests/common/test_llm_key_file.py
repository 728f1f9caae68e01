"""ARCHLAB_LLM_API_KEY_FILE: the LLM client reads its key from a file (issue 13, point 3), and the CLI's
key file is written private and atomically (services/cli/secrets.py)."""
from __future__ import annotations

import stat

import pytest

from services.cli import secrets
from services.common.llm import LLMClient, LLMUnavailable, api_key
from services.common.settings import Settings


def test_the_key_file_wins_over_the_variable_and_is_stripped(tmp_path):
    f = tmp_path / "key"
    f.write_text("  sk-from-file\n")
    s = Settings(data_dir=tmp_path, llm_api_key="sk-from-env", llm_api_key_file=str(f))
    assert s.llm_configured and api_key(s) == "sk-from-file"
    assert api_key(Settings(data_dir=tmp_path, llm_api_key="sk-from-env")) == "sk-from-env"
    assert api_key(Settings(data_dir=tmp_path)) is None


def test_a_key_file_alone_configures_the_llm(tmp_path, monkeypatch):
    monkeypatch.delenv("ARCHLAB_LLM_API_KEY", raising=False)
    monkeypatch.delenv("ARCHLAB_LLM_BASE_URL", raising=False)
    monkeypatch.setenv("ARCHLAB_LLM_API_KEY_FILE", str(tmp_path / "key"))
    assert Settings().llm_configured
    monkeypatch.setenv("ARCHLAB_LLM_API_KEY_FILE", "")  # compose passes an empty value when no file is given
    assert not Settings().llm_configured


@pytest.mark.parametrize("content", [None, "  \n"])
def test_a_missing_or_empty_key_file_is_a_clear_error(tmp_path, content):
    f = tmp_path / "key"
    if content is not None:
        f.write_text(content)
    s = Settings(data_dir=tmp_path, llm_api_key_file=str(f))
    with pytest.raises(LLMUnavailable, match="ARCHLAB_LLM_API_KEY_FILE") as e:
        LLMClient(s, cache=False)._openai()
    assert str(f) in str(e.value)


def test_the_cli_writes_the_key_private_and_atomically(tmp_path):
    path = secrets.write_key_file(tmp_path / "lab", "sk-secret\n")
    assert path == (tmp_path / "lab" / "secrets" / "llm_api_key").resolve() and path.read_text() == "sk-secret"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    secrets.write_key_file(tmp_path / "lab", "sk-new")
    assert path.read_text() == "sk-new" and [p.name for p in path.parent.iterdir()] == ["llm_api_key"]


def test_in_process_callers_are_not_replaced(tmp_path, monkeypatch):
    """Under pytest (or typer's CliRunner) this process is not the `archlab` CLI: nothing is exec'd."""
    monkeypatch.setenv("ARCHLAB_LLM_API_KEY", "sk-secret")
    secrets.drop_secrets_from_environment(tmp_path)
    assert not (tmp_path / "secrets").exists()
