"""Where settings come from (environment, secrets directory, TOML file, defaults; in that
order of precedence) and how a bad value is reported: one line naming its origin."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scoring.kinds import ModelKind
from streams.settings import (
    CONFIG_FILE_VAR,
    SECRETS_DIR_VAR,
    Settings,
    SettingsError,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No STREAMRANK_* variable of the developer's shell, and a working directory without a
    streamrank.toml."""
    for name in list(os.environ):
        if name.upper().startswith("STREAMRANK_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def problem() -> str:
    """The one line load_settings refuses the settings with."""
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return str(caught.value)


def test_defaults_without_any_source() -> None:
    settings = load_settings()
    assert settings.partitions == 4
    assert settings.scorer is ModelKind.ZEROSHOT


def test_scorer_is_a_model_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_SCORER", "cascade")
    assert load_settings().scorer is ModelKind.CASCADE
    monkeypatch.setenv("STREAMRANK_SCORER", "bm25")
    with pytest.raises(SettingsError, match=r"STREAMRANK_SCORER='bm25': .*zeroshot"):
        load_settings()


def test_env_wins_over_secrets_which_win_over_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "prod.toml"
    config.write_text('partitions = 8\nsasl_username = "from-toml"\nsasl_password = "toml"\n'
                      'app_id = "from-toml"\nsecurity_protocol = "SASL_SSL"\n')
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "STREAMRANK_SASL_PASSWORD").write_text("from-secret\n")
    (secrets / "streamrank_app_id").write_text("from-secret")  # any case
    monkeypatch.setenv(CONFIG_FILE_VAR, str(config))
    monkeypatch.setenv(SECRETS_DIR_VAR, str(secrets))
    monkeypatch.setenv("STREAMRANK_APP_ID", "from-env")

    settings = load_settings()
    assert settings.partitions == 8  # only the file sets it
    assert settings.sasl_username == "from-toml"
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "from-secret"  # secret over file
    assert settings.app_id == "from-env"  # env over both
    assert settings.masked()["sasl_password"] == "**********"
    assert settings.masked()["scorer"] == "zeroshot"  # logged as users write it


def test_streamrank_toml_in_the_working_directory_is_read(clean_env: Path) -> None:
    assert load_settings().partitions == 4
    (clean_env / "streamrank.toml").write_text("partitions = 6\n")
    assert load_settings().partitions == 6


def test_the_documented_example_file_loads(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    example = re.search(r"```toml\n(.*?)```", docs, re.DOTALL)
    assert example is not None
    (clean_env / "streamrank.toml").write_text(example.group(1))
    monkeypatch.setenv("STREAMRANK_SASL_PASSWORD", "s3cret")
    settings = load_settings()
    assert settings.scorer is ModelKind.EMBED and settings.security_protocol == "SASL_SSL"


def test_a_bad_env_value_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_PARTITIONS", "abc")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("STREAMRANK_PARTITIONS='abc': ")
    assert "integer" in message


def test_every_bad_value_on_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_PARTITIONS", "0")
    monkeypatch.setenv("STREAMRANK_DEVICE", "tpu")
    message = problem()
    assert "STREAMRANK_PARTITIONS='0'" in message and "STREAMRANK_DEVICE='tpu'" in message
    assert "\n" not in message


def test_a_bad_file_value_names_the_file_and_key(clean_env: Path) -> None:
    (clean_env / "streamrank.toml").write_text('partitions = "many"\n')
    message = problem()
    assert message.startswith("streamrank.toml: partitions = 'many': ")


def test_secret_values_are_never_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMRANK_SASL_PASSWORD", "hunter2")
    message = problem()
    assert "STREAMRANK_SASL_USERNAME" in message and "hunter2" not in message


def test_rules_between_settings_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_IMPRESSION_TTL_S", "60")
    message = problem()
    assert "STREAMRANK_IMPRESSION_TTL_S" in message
    assert "STREAMRANK_ATTRIBUTION_WINDOW_S" in message


def test_a_misspelt_key_in_the_file_is_an_error(clean_env: Path) -> None:
    (clean_env / "streamrank.toml").write_text("partitons = 8\n")
    with pytest.raises(SettingsError, match="unknown setting 'partitons'"):
        load_settings()


def test_a_file_that_is_not_toml(clean_env: Path) -> None:
    (clean_env / "streamrank.toml").write_text("partitions: 8\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings()


def test_a_named_file_or_folder_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_FILE_VAR, str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match=f"{CONFIG_FILE_VAR}=.*missing.toml: no such file"):
        load_settings()
    monkeypatch.delenv(CONFIG_FILE_VAR)
    monkeypatch.setenv(SECRETS_DIR_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(SettingsError, match="no such directory"):
        Settings()


def test_constructor_arguments_win_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_PARTITIONS", "3")
    assert Settings(partitions=5).partitions == 5
