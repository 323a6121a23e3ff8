"""Where a machine without the key directory finds the signing key: EXCHANGE_SIGNING_KEY (the
PEM), else EXCHANGE_SIGNING_KEY_FILE, else (inside Airflow) the Variable exchange_signing_key;
none of them: the key directory's (None)."""
from __future__ import annotations

import pytest

from base.errors import ConfigError
from base.settings import get_settings, reset_settings

PEM = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("EXCHANGE_HOME", str(tmp_path / "home"))
    for name in ("EXCHANGE_SIGNING_KEY", "EXCHANGE_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield monkeypatch
    reset_settings()


def test_no_key_given_means_the_key_directory(env):
    assert get_settings().signing_key() is None


def test_the_pem_in_the_environment_wins_over_the_file(env, tmp_path):
    (tmp_path / "k.pem").write_text("from the file")
    env.setenv("EXCHANGE_SIGNING_KEY_FILE", str(tmp_path / "k.pem"))
    reset_settings()
    assert get_settings().signing_key() == (b"from the file", f"EXCHANGE_SIGNING_KEY_FILE ({tmp_path / 'k.pem'})")
    env.setenv("EXCHANGE_SIGNING_KEY", PEM + "\n\n")
    assert get_settings().signing_key() == ((PEM + "\n").encode(), "EXCHANGE_SIGNING_KEY")


def test_a_missing_key_file_is_a_config_error(env, tmp_path):
    env.setenv("EXCHANGE_SIGNING_KEY_FILE", str(tmp_path / "absent.pem"))
    reset_settings()
    with pytest.raises(ConfigError, match="cannot read EXCHANGE_SIGNING_KEY_FILE"):
        get_settings().signing_key()
