"""A split SQL source through the stages in-process: four partitions planned, extracted,
conformed and validated one by one, merged by publish. The version is the one an unsplit run of
the same silo publishes (root hash, records), and the quarantine the same rows for the same
reasons, duplicates across partitions included."""
from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from base.settings import get_settings
from exchange import stages
from tests.conftest import TODAY, catalog, home_env, ledger, register_demo_source, stored

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"
UNIQUE = "expect_column_values_to_be_unique(licence_number)"


def register_split(home, silo, run: str = "partitions = 4"):
    """The demo registration, split by the silo's key ID."""
    reg = register_demo_source(home, silo)
    text = reg.path.read_text("utf-8").replace('table = "yyzz_djxx"', 'table = "yyzz_djxx"\nkey = "ID"')
    reg.path.write_text(f"{text}\n[run]\n{run}\n", encoding="utf-8")
    return stored(reg.path)


def _outcome(run_key: str) -> dict:
    cat, led = catalog(), ledger()
    dataset = "business_licence.market_regulation"
    run = led.runs(SOURCE)[0]
    version = cat.current_version_files(dataset)
    quarantine = pq.read_table(run_quarantine(run_key)).to_pylist()
    return {"counts": (run["extracted"], run["accepted"], run["quarantined"]), "reasons": run["reasons"],
            "records": pq.read_table(version.open_input("records.parquet")).to_pylist(),
            "quarantine": Counter((q["key"], q["row_hash"], tuple(q["reasons"]), q["values"]) for q in quarantine)}


def run_quarantine(run_key: str):
    """The run's quarantine file, read from the store."""
    return get_settings().store.open_input(stages.handoff(SOURCE, run_key, "quarantine"))


def test_four_partitions_publish_what_one_does(tmp_path, silo_2k):
    silo, manifest = silo_2k
    whole_home, split_home = tmp_path / "whole", tmp_path / "split"
    with home_env(whole_home):
        register_demo_source(whole_home, silo)
        whole = stages.run_all(SOURCE, "r1", TODAY)
        unsplit = _outcome("r1")
    with home_env(split_home):
        reg = register_split(split_home, silo)
        parts = stages.plan(SOURCE, "r1")
        assert [p["index"] for p in parts] == [0, 1, 2, 3] and {p["of"] for p in parts} == {4}
        assert [p["after"] for p in parts][0] is None and parts[-1]["upto"] is None and parts[-1]["nulls"]
        counts = [stages.extract(SOURCE, "r1", None, p)["rows"] for p in parts]
        assert sum(counts) == 2_000 and min(counts) == max(counts) == 500, "NTILE: even ranges of ID"
        for p in parts:
            assert stages.conform(SOURCE, "r1", p)["part"] == p
            checked = stages.validate(SOURCE, "r1", TODAY, p)
            assert checked["rows"] == 500 and checked["part"] == p
        # the planted duplicate pairs: some straddle two partitions, which only the merge can see
        bounds = [int(p["upto"]) for p in parts[:-1]]
        pairs = list(zip(manifest["duplicate_licence_number"][0::2], manifest["duplicate_licence_number"][1::2]))
        part_of = [lambda i: sum(i + 1 > b for b in bounds)][0]     # silo IDs are row numbers + 1
        assert any(part_of(a) != part_of(b) for a, b in pairs)
        split = stages.publish(SOURCE, "r1", parts)
        assert reg.partitioned
        merged = _outcome("r1")
        left = get_settings().store.list(stages.handoff_prefix(SOURCE, "r1"))
        assert left and not [k for k in left if ".p0" in k], "the partitions' files are gone after the merge"
    assert split["state"] == whole["state"] == "published"
    assert (split["root_hash"], split["tree_size"]) == (whole["root_hash"], whole["tree_size"])
    assert merged["records"] == unsplit["records"]
    assert merged["counts"] == unsplit["counts"] and merged["counts"][0] == 2_000
    assert merged["reasons"] == unsplit["reasons"]
    assert merged["reasons"][UNIQUE] == len(manifest["duplicate_licence_number"])
    assert merged["quarantine"] == unsplit["quarantine"], "the same rows for the same reasons"


def test_a_split_run_rerun_or_retried_publishes_once(home, silo_2k):
    silo, _ = silo_2k
    register_split(home, silo, "partition_rows = 700")       # 2000 rows: three partitions
    parts = stages.plan(SOURCE, "r1")
    assert len(parts) == 3
    first = stages.run_all(SOURCE, "r1", TODAY)
    assert first["state"] == "published"
    again = stages.publish(SOURCE, "r1", parts)             # Airflow retrying publish
    assert (again["state"], again["version"]) == ("published", first["version"])
    second = stages.run_all(SOURCE, "r2", TODAY)
    assert second["state"] == "unchanged"
    runs = ledger().runs(SOURCE)
    assert [r["extracted"] for r in runs] == [2_000, 2_000]
    docs = json.loads(get_settings().store.read_text(stages.handoff(SOURCE, "r2", "validation")))
    assert docs["rows"] == 2_000, "validation.json speaks for the whole run"


def _drop_source(home, drop, source_id: str, run: str = ""):
    from tests.conftest import register_source
    reg = register_source(home, source_id, {"kind": "files", "path": str(drop), "pattern": "*.csv"})
    if run:
        reg.path.write_text(reg.path.read_text("utf-8") + f"\n[run]\n{run}\n", encoding="utf-8")
        return stored(reg.path)
    return reg


def test_a_drop_split_by_file_publishes_what_one_does_and_takes_every_file(tmp_path):
    """Three CSV files in two partitions (two files, then one): the same version as the drop
    taken whole, and every file recorded as taken and moved to processed/ only after publish."""
    import pyarrow.csv as pacsv

    from demo.synth import business_licences

    rows, _ = business_licences(900, seed=3, today=TODAY)
    results = {}
    for how, run in (("whole", ""), ("split", "partitions = 2")):
        drop = tmp_path / how / "drop"
        drop.mkdir(parents=True)
        for i in range(3):
            pacsv.write_csv(rows.slice(i * 300, 300), drop / f"export_{i}.csv")
        with home_env(tmp_path / how / "home"):
            _drop_source(tmp_path / how / "home", drop, "drop_src", run)
            parts = stages.plan("drop_src", "r1")
            assert len(parts) == (2 if run else 1)
            assert [p.get("files") for p in parts] == ([["export_0.csv", "export_1.csv"], ["export_2.csv"]]
                                                       if run else [None])
            results[how] = stages.run_all("drop_src", "r1", TODAY)
            assert sorted(p.name for p in (drop / "processed").iterdir()) == [f"export_{i}.csv" for i in range(3)]
            assert len(ledger().taken_files("drop_src")) == 3
            assert ledger().runs("drop_src")[0]["extracted"] == 900
    assert results["split"]["state"] == results["whole"]["state"] == "published"
    assert results["split"]["root_hash"] == results["whole"]["root_hash"]
