"""Registrations live in the catalogue (#16): one "machine" (its own EXCHANGE_HOME) loads its
sources folder into a shared catalogue (SQLite file, and PostgreSQL); another, with an empty
sources folder, parses the DAGs (Airflow's DagBag, in a subprocess) and runs the source from
the catalogue's copy. `exchange sources sync` reports each file; a stored registration that no
longer parses is reported and hides no other; `sources remove` takes a DAG away everywhere."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from base.settings import get_settings, reset_settings
from cli import main as cli
from tests.conftest import ROOT, TEST_PASSPHRASE, catalog, store_unchecked

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"
DAG = f"source__{SOURCE}"


@pytest.fixture
def machine(shared_catalogue, tmp_path, monkeypatch):
    """machine("a" | "b"): this process is now that machine (its own home and sources folder)."""
    for name in ("EXCHANGE_SIGNING_KEY", "EXCHANGE_SIGNING_KEY_FILE", "EXCHANGE_SOURCES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", shared_catalogue)

    def become(name: str) -> Path:
        monkeypatch.setenv("EXCHANGE_HOME", str(tmp_path / name))
        reset_settings()
        return tmp_path / name
    yield become
    reset_settings()


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _dag_ids() -> list[str]:
    """The DAGs Airflow's DagBag finds in dags/ on this machine (a process of its own)."""
    from base.airflow_env import airflow_env

    code = ("import json\nfrom airflow.dag_processing.dagbag import DagBag\n"
            "bag = DagBag(dag_folder='dags')\n"
            "assert not bag.import_errors, bag.import_errors\n"
            "print(json.dumps(sorted(bag.dag_ids)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=airflow_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_source_stored_on_one_machine_is_parsed_and_run_on_another(machine, silo_2k, capsys, monkeypatch):
    home_a = machine("a")
    assert cli(["keys", "create", "--json"]) == 0
    kid = _json(capsys)["active"]
    pem = (home_a / "keys" / f"{kid}.pem").read_text()
    sources = get_settings().sources_dir
    sources.mkdir(parents=True)
    text = (ROOT / "demo" / "registrations" / f"{SOURCE}.toml").read_text("utf-8").replace("{silo}", str(silo_2k[0]))
    (sources / f"{SOURCE}.toml").write_text(text, "utf-8")
    (sources / "junk.toml").write_text("id = ", "utf-8")

    assert cli(["sources", "sync", "--json"]) == 2          # one refused, the other stored
    report = {Path(r["file"]).name: r for r in _json(capsys)}
    assert {k: r["state"] for k, r in report.items()} == {f"{SOURCE}.toml": "added", "junk.toml": "refused"}
    assert "not valid TOML" in report["junk.toml"]["reason"]
    (sources / "junk.toml").unlink()
    assert cli(["sources", "sync", "--json"]) == 0
    assert [r["state"] for r in _json(capsys)] == ["unchanged"]
    (sources / f"{SOURCE}.toml").write_text(text.replace('steward = "', 'steward = "Wang Li, '), "utf-8")
    assert cli(["sources", "sync", "--json", "--by", "steward-a"]) == 0
    assert [r["state"] for r in _json(capsys)] == ["updated"]

    home_b = machine("b")                          # another machine: no sources folder, no key directory
    assert not get_settings().sources_dir.exists()
    assert _dag_ids() == ["exchange_notices", "exchange_watch", DAG]
    monkeypatch.setenv("EXCHANGE_SIGNING_KEY", pem)
    assert cli(["run", SOURCE, "--local", "--key", "b1", "--json"]) == 0
    assert _json(capsys)["state"] == "published"
    assert catalog().dataset("business_licence.market_regulation")["steward"].startswith("Wang Li, ")
    assert not get_settings().sources_dir.exists() and not (home_b / "sources").exists()
    assert cli(["sources", "list", "--json"]) == 0
    [row] = _json(capsys)
    assert (row["source"], row["state"], row["by"], row["origin"]) == (SOURCE, "ok", "steward-a",
                                                                        str(sources / f"{SOURCE}.toml"))

    # a stored registration that no longer parses (say, after an upgrade): reported, hides no other
    store_unchecked("smr_old", text.replace(f'id = "{SOURCE}"', 'id = "smr_old"').replace(
        "[connector]", "retired_key = 1\n[connector]"), "/elsewhere/smr_old.toml")
    assert _dag_ids() == ["exchange_notices", "exchange_watch", DAG]
    assert cli(["status", "--json"]) == 0
    bad = {r["source"]: r for r in _json(capsys)}["smr_old"]
    assert bad["registration_file"] == "/elsewhere/smr_old.toml"
    assert "registration smr_old in the catalogue" in bad["registration_error"]
    assert "unknown keys ['retired_key']" in bad["registration_error"]
    assert cli(["run", "smr_old", "--local", "--key", "b2"]) == 2
    assert "unknown keys ['retired_key']" in capsys.readouterr().err

    machine("a")                                   # removed on A: gone from B's parse too
    assert cli(["sources", "remove", SOURCE, "--json"]) == 0
    assert _json(capsys)["still_in_folder"] == [str(sources / f"{SOURCE}.toml")]
    machine("b")
    assert _dag_ids() == ["exchange_notices", "exchange_watch"]
    assert cli(["run", SOURCE, "--local", "--key", "b3"]) == 2
    assert "not registered in the catalogue" in capsys.readouterr().err
    assert cli(["sources", "remove", SOURCE]) == 7
    assert "no registration" in capsys.readouterr().err
