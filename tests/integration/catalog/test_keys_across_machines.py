"""Two machines, one catalogue (SQLite file and PostgreSQL): home A keeps the key directory and
made the key; home B has none and is given the active key through the environment or Airflow's
secrets backend (AIRFLOW_VAR_EXCHANGE_SIGNING_KEY). B publishes with A's key, B's API serves A's
JWKS (from the catalogue), a bundle B published verifies with A's JWKS, and B given a key the
catalogue does not publish refuses to sign and mints nothing."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from base.settings import get_settings, reset_settings
from cli import main as cli
from tests.conftest import ROOT, TEST_PASSPHRASE, catalog, stored

SOURCE = "smr_business_licence"
DATASET = "business_licence.market_regulation"


@pytest.fixture
def machines(shared_catalogue, tmp_path, monkeypatch):
    """machine("a" | "b"): this process is now that machine (its own EXCHANGE_HOME)."""
    for name in ("EXCHANGE_SIGNING_KEY", "EXCHANGE_SIGNING_KEY_FILE", "AIRFLOW_VAR_EXCHANGE_SIGNING_KEY",
                 "EXCHANGE_SOURCES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", shared_catalogue)

    def machine(name: str) -> Path:
        home = tmp_path / name
        monkeypatch.setenv("EXCHANGE_HOME", str(home))
        reset_settings()
        return home

    yield machine
    reset_settings()


def _register(silo: Path) -> None:
    """The demo registration in this home, without making a key (as `exchange register` does)."""
    text = (ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{SOURCE}.toml").write_text(text.replace("{silo}", str(silo)), encoding="utf-8")
    stored(sources / f"{SOURCE}.toml")


def _json(out: str):
    """The command's JSON (Airflow, once loaded, logs to stdout before it)."""
    for start in re.finditer(r"^[\[{]", out, re.M):
        try:
            return json.loads(out[start.start():])
        except ValueError:
            continue
    raise AssertionError(f"no JSON in {out!r}")


def _api_get(path: str):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(get_settings())) as client:
        return client.get(path)


def _a_record_id() -> str:
    with catalog().engine.connect() as c:
        return c.execute(sa.text("select record_id from records where dataset_id = :d order by leaf_index"),
                         {"d": DATASET}).scalars().first()


@pytest.mark.parametrize("given", ["env", "airflow_variable", "file"])
def test_a_second_machine_signs_with_the_exchanges_key_and_serves_its_jwks(machines, silo_2k, capsys,
                                                                          monkeypatch, tmp_path, given):
    from trust.verify import verify_bundle

    home_a = machines("a")
    assert cli(["keys", "create", "--json"]) == 0
    kid = json.loads(capsys.readouterr().out)["active"]
    jwks_a = json.loads((home_a / "keys" / "jwks.json").read_text())
    key_status_a = (home_a / "keys" / "key-status.jws").read_text().strip()
    pem = (home_a / "keys" / f"{kid}.pem").read_text()

    home_b = machines("b")                             # no key directory: the key comes from outside
    if given == "env":
        monkeypatch.setenv("EXCHANGE_SIGNING_KEY", pem)
    elif given == "file":
        (tmp_path / "handed.pem").write_text(pem)
        monkeypatch.setenv("EXCHANGE_SIGNING_KEY_FILE", str(tmp_path / "handed.pem"))
    else:                                 # Airflow's environment secrets backend, as in a task
        # base.settings asks Airflow only where it is loaded; Airflow sets up its logging as it
        # loads, on the streams of that moment: the session's, not this test's (closed after it)
        with capsys.disabled():
            import airflow.sdk  # noqa: F401
        monkeypatch.setenv("AIRFLOW_VAR_EXCHANGE_SIGNING_KEY", pem)
    reset_settings()
    _register(silo_2k[0])
    if given == "env":                                   # before it is given the key: told which one
        monkeypatch.delenv("EXCHANGE_SIGNING_KEY")
        assert cli(["run", SOURCE, "--local", "--key", "b0"]) == 2
        assert f"give it the exchange's active key {kid}" in capsys.readouterr().err
        monkeypatch.setenv("EXCHANGE_SIGNING_KEY", pem)
    assert cli(["keys", "create"]) == 2                   # the catalogue has the exchange's key
    assert "already has a signing key" in capsys.readouterr().err
    assert cli(["run", SOURCE, "--local", "--key", "b1", "--json"]) == 0
    assert _json(capsys.readouterr().out)["state"] == "published"
    assert not list((home_b / "keys").glob("*.pem"))      # B minted nothing and holds no key file
    assert catalog().versions(DATASET)[0]["kid"] == kid

    served = _api_get("/.well-known/jwks.json")           # an API host on B
    assert served.status_code == 200 and served.json() == jwks_a
    assert served.content == (home_a / "keys" / "jwks.json").read_bytes()
    assert _api_get("/v1/keys/key-status.jws").status_code == 200
    assert json.loads((home_b / "keys" / "jwks.json").read_text()) == jwks_a   # B's copies

    bundle = catalog().bundle(_a_record_id())
    assert verify_bundle(bundle, jwks_a, key_status_a).kid == kid    # with A's JWKS
    (tmp_path / "bundle.json").write_text(json.dumps(bundle, ensure_ascii=False))
    assert cli(["verify", str(tmp_path / "bundle.json"), "--jwks", str(home_a / "keys" / "jwks.json"),
                "--json"]) == 0
    assert _json(capsys.readouterr().out)["kid"] == kid
    (home_b / "keys" / "jwks.json").unlink()             # --online: the catalogue's key material
    assert cli(["verify", str(tmp_path / "bundle.json"), "--online", "--json"]) == 0
    assert _json(capsys.readouterr().out)["verified"] is True
    assert cli(["keys", "list", "--json"]) == 0           # B lists the catalogue's keys
    [row] = _json(capsys.readouterr().out)
    assert (row["kid"], row["status"], row["heads_signed"]) == (kid, "active", 1)
    assert cli(["audit-chain", DATASET, "--json"]) == 0    # against the catalogue's key material
    assert _json(capsys.readouterr().out)["ok"] is True
    assert cli(["audit-checkpoint", "--json"]) == 0        # B signs checkpoints with A's key too
    assert _json(capsys.readouterr().out)["kid"] == kid
    assert cli(["audit-verify", "--json"]) == 0
    capsys.readouterr()


def test_a_machine_with_a_key_the_catalogue_does_not_publish_refuses_to_sign(machines, silo_2k, capsys,
                                                                              monkeypatch, tmp_path):
    from catalog.signing.keys import KeyStore

    machines("a")
    assert cli(["keys", "create", "--json"]) == 0
    kid = json.loads(capsys.readouterr().out)["active"]
    stranger = KeyStore(tmp_path / "elsewhere", TEST_PASSPHRASE)
    other = stranger.create()
    pem = (tmp_path / "elsewhere" / f"{other}.pem").read_text()

    home_b = machines("b")
    monkeypatch.setenv("EXCHANGE_SIGNING_KEY", pem)
    reset_settings()
    _register(silo_2k[0])
    assert cli(["run", SOURCE, "--local", "--key", "b1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to sign" in err and other in err and "EXCHANGE_SIGNING_KEY" in err and kid in err
    assert catalog().datasets()[0]["version"] is None                 # nothing published
    assert not (home_b / "keys").exists() or not list((home_b / "keys").glob("*.pem"))
    assert [k["kid"] for k in _api_jwks()["keys"]] == [kid]           # the stranger is not published

    monkeypatch.delenv("EXCHANGE_SIGNING_KEY")            # B's own key directory: refused as well
    reset_settings()
    KeyStore(get_settings().keys_dir, TEST_PASSPHRASE).create()
    assert cli(["run", SOURCE, "--local", "--key", "b2"]) == 2
    assert "is not in" in capsys.readouterr().err
    assert catalog().datasets()[0]["version"] is None


def _api_jwks() -> dict:
    return _api_get("/.well-known/jwks.json").json()


def test_a_retired_key_refuses_to_sign_after_a_rotation(machines, silo_2k, capsys, monkeypatch):
    home_a = machines("a")
    assert cli(["keys", "create", "--json"]) == 0
    old = json.loads(capsys.readouterr().out)["active"]
    pem = (home_a / "keys" / f"{old}.pem").read_text()
    assert cli(["keys", "rotate", "--json"]) == 0
    new = json.loads(capsys.readouterr().out)["active"]

    machines("b")
    monkeypatch.setenv("EXCHANGE_SIGNING_KEY", pem)
    reset_settings()
    _register(silo_2k[0])
    assert cli(["run", SOURCE, "--local", "--key", "b1"]) == 2
    err = capsys.readouterr().err
    assert f"{old}" in err and "retired" in err and new in err
    assert [k["kid"] for k in _api_jwks()["keys"]] == [new, old]   # newest first, as jwks.json


def test_a_worker_takes_the_key_from_the_airflow_connection(machines, silo_2k, capsys):
    """The Airflow Connection exchange_signing_key from a secrets backend (here the environment's,
    AIRFLOW_CONN_EXCHANGE_SIGNING_KEY as JSON, the PEM in its password) signs on a machine without
    the key, in a process of its own as an Airflow worker is; the Variable wins when both are set."""
    import os
    import subprocess
    import sys

    from base.airflow_env import airflow_env

    home_a = machines("a")
    assert cli(["keys", "create", "--json"]) == 0
    kid = json.loads(capsys.readouterr().out)["active"]
    pem = (home_a / "keys" / f"{kid}.pem").read_text()
    home_b = machines("b")
    _register(silo_2k[0])
    code = ("import sys\nimport airflow.sdk  # noqa: F401  (as inside a task: Airflow is loaded)\n"
            "from base.settings import get_settings\nfrom cli import main\n"
            "print('signing key from:', get_settings().signing_key()[1], file=sys.stderr)\n"
            "sys.exit(main(sys.argv[1:]))\n")

    def worker(*argv, **extra):
        env = {k: v for k, v in airflow_env().items() if not k.startswith("AIRFLOW_VAR_EXCHANGE_SIGNING")}
        env.update(extra)
        return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)

    conn = json.dumps({"conn_type": "generic", "password": pem})
    out = worker("run", SOURCE, "--local", "--key", "b1", "--json", AIRFLOW_CONN_EXCHANGE_SIGNING_KEY=conn)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "signing key from: the Airflow Connection exchange_signing_key" in out.stderr
    assert _json(out.stdout)["state"] == "published"
    assert catalog().versions(DATASET)[0]["kid"] == kid
    assert not (home_b / "keys").exists() or not list((home_b / "keys").glob("*.pem"))

    in_extra = json.dumps({"conn_type": "generic", "extra": {"pem": pem}})
    out = worker("keys", "list", AIRFLOW_CONN_EXCHANGE_SIGNING_KEY=in_extra,
                 AIRFLOW_VAR_EXCHANGE_SIGNING_KEY="not a key")
    assert "signing key from: the Airflow Variable exchange_signing_key" in out.stderr, out.stderr[-2000:]
    out = worker("keys", "list", AIRFLOW_CONN_EXCHANGE_SIGNING_KEY=in_extra)
    assert "signing key from: the Airflow Connection exchange_signing_key" in out.stderr, out.stderr[-2000:]
    assert os.environ.get("AIRFLOW_CONN_EXCHANGE_SIGNING_KEY") is None        # nothing leaked here
