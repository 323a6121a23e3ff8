"""The exchange's local state is private to its OS account: the home, key, staging and store
directories 0700, the SQLite catalogue (and its WAL files) and key files 0600; an older home
made world-readable is tightened on the next command."""
from __future__ import annotations

import os
import stat

import pytest

from cli import main as cli
from tests.conftest import TEST_PASSPHRASE, register_demo_source

SOURCE = "smr_business_licence"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    from base.settings import reset_settings

    home = tmp_path / "state" / "home"
    monkeypatch.setenv("EXCHANGE_HOME", str(home))
    monkeypatch.delenv("EXCHANGE_CATALOG_URL", raising=False)
    monkeypatch.delenv("EXCHANGE_SOURCES_DIR", raising=False)
    monkeypatch.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
    old = os.umask(0o022)                       # the usual umask: files 0644, directories 0755
    reset_settings()
    yield home
    os.umask(old)
    reset_settings()


def _private(home) -> dict[str, str]:
    """Every path of the state that others could read or enter, with its mode."""
    wide = {}
    for d in (home, home / "keys", home / "staging", home / "store"):
        if _mode(d) != 0o700:
            wide[str(d)] = oct(_mode(d))
    for f in [home / "catalog.db", *home.glob("catalog.db-*"), *(home / "keys").glob("*.pem")]:
        if _mode(f) != 0o600:
            wide[str(f)] = oct(_mode(f))
    return wide


def test_a_new_home_is_private(fresh_home, silo_2k, capsys):
    assert cli(["keys", "create"]) == 0
    register_demo_source(fresh_home, silo_2k[0])
    assert cli(["run", SOURCE, "--local", "--key", "r1"]) == 0
    assert (fresh_home / "catalog.db").exists() and any((fresh_home / "store").iterdir())
    assert _private(fresh_home) == {}


def test_an_older_world_readable_home_is_tightened(fresh_home, capsys):
    for d in (fresh_home, fresh_home / "staging", fresh_home / "store"):
        d.mkdir(parents=True, mode=0o755)
        os.chmod(d, 0o755)
    (fresh_home / "catalog.db").touch(mode=0o644)
    os.chmod(fresh_home / "catalog.db", 0o644)
    assert cli(["datasets", "--json"]) == 0
    assert cli(["keys", "create"]) == 0
    assert _private(fresh_home) == {}
