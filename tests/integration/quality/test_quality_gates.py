"""Quality gates on a real SQLite silo: the quarantine queue across runs, the size gate and a
steward's approval, schema drift, a registration's own checks, Data Docs per run."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from base.errors import GateHeld
from base.settings import get_settings
from cli import main as cli
from exchange import stages
from quality.gates import SchemaDrift
from tests.conftest import register_demo_source, stored

SOURCE, DATASET, TABLE = "smr_business_licence", "business_licence.market_regulation", "yyzz_djxx"
NOT_NULL_NAME = "expect_column_values_to_not_be_null(holder_name)"


def _ledger():
    from base.settings import get_settings
    from catalog.ledger.service import Ledger

    return Ledger(get_settings().catalog_url)


def _catalog():
    from catalog.service import Catalog
    s = get_settings()
    return Catalog(s.catalog_url, s.store)


@pytest.fixture
def silo(home, silo_2k, tmp_path):
    path, manifest = silo_2k
    copy = tmp_path / "silo.db"
    shutil.copy(path, copy)
    register_demo_source(home, copy)
    return copy, manifest


def _sql(path, *statements):
    con = sqlite3.connect(path)
    with con:
        for st in statements:
            con.execute(*st) if isinstance(st, tuple) else con.execute(st)
    con.close()


def _cli_json(capsys, *argv):
    capsys.readouterr()
    assert cli([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_quarantine_queue_lists_reasons_keeps_reviews_and_lets_fixed_rows_leave(silo, capsys):
    path, manifest = silo
    first = stages.run_all(SOURCE, "r1")
    assert first["state"] == "published"
    run1 = _ledger().runs(SOURCE)[0]
    queue = _cli_json(capsys, "quarantine", DATASET)
    assert queue["rows"] == len(queue["entries"]) > 0
    assert queue["by_reason"][NOT_NULL_NAME] == len(manifest["blank_holder_name"])
    assert sum(queue["by_reason"].values()) >= run1["quarantined"] - len(manifest["duplicate_licence_number"])
    assert queue["samples"][NOT_NULL_NAME]

    entries = {e["raw"]["ID"]: e for e in queue["entries"]}
    fixed_id = next(i for i in map(str, manifest["blank_holder_name"])
                    if entries[i]["reasons"] == [NOT_NULL_NAME])
    reviewed_id = next(str(i) for i in manifest["bad_uscc_check"] if str(i) != fixed_id)
    key = entries[reviewed_id]["key"]
    out = _cli_json(capsys, "quarantine", "review", DATASET, key, "--by", "steward",
                    "--note", "asked the registry office to correct the code")
    assert out["state"] == "reviewed"

    _sql(path, (f"UPDATE {TABLE} SET QYMC = ? WHERE ID = ?", ("杭州示例科技有限公司", fixed_id)))
    stages.run_all(SOURCE, "r2")
    after = {e["raw"]["ID"]: e for e in _cli_json(capsys, "quarantine", DATASET)["entries"]}
    assert fixed_id not in after, "a row the silo fixed leaves the queue"
    assert after[reviewed_id]["state"] == "reviewed"
    assert after[reviewed_id]["review_note"].startswith("asked the registry")
    assert set(after) == set(entries) - {fixed_id}
    everything = _cli_json(capsys, "quarantine", DATASET, "--all")["entries"]
    gone = next(e for e in everything if e["raw"]["ID"] == fixed_id)
    assert gone["state"] == "resolved" and gone["resolved_run_id"] == _ledger().runs(SOURCE)[0]["id"]


def test_a_shrunken_export_is_held_until_a_steward_approves_it(silo, capsys):
    path, _ = silo
    first = stages.run_all(SOURCE, "r1")
    _sql(path, f"DELETE FROM {TABLE} WHERE rowid % 2 = 0")
    with pytest.raises(GateHeld, match=r"size gate: \d+ records against .*limit ±30%"):
        stages.run_all(SOURCE, "r2")
    held = _ledger().get_run(SOURCE, "r2")
    assert held.state == "held"
    assert f"`exchange approve {SOURCE} r2 --by NAME --note TEXT`" in held.message   # the exact command
    assert _catalog().datasets()[0]["version"] == first["version"] == 1, "nothing was published"
    gate = _ledger().run_quality(held.id)["size_gate"]
    assert gate["held"] and gate["change"] < -0.3

    with pytest.raises(GateHeld):                   # running it again does not slip through
        stages.publish(SOURCE, "r2")
    out = _cli_json(capsys, "approve", SOURCE, "r2", "--by", "steward", "--note", "half were merged")
    assert out["state"] == "published" and out["version"] == 2
    assert _ledger().run_quality(held.id)["approved_by"] == "steward"
    # the records gone from the silo stay in the version, signed, as withdrawn (issue 4)
    assert _catalog().datasets()[0]["records"] == out["records"] > held.accepted
    assert _catalog().current_size(DATASET) == held.accepted


def test_a_small_change_publishes_without_approval(silo):
    path, _ = silo
    stages.run_all(SOURCE, "r1")
    _sql(path, f"DELETE FROM {TABLE} WHERE rowid % 10 = 0")
    assert stages.run_all(SOURCE, "r2")["version"] == 2


def test_a_retyped_mapped_column_fails_naming_it_and_new_columns_are_recorded(silo):
    path, _ = silo
    stages.run_all(SOURCE, "r1")
    _sql(path, f"ALTER TABLE {TABLE} ADD COLUMN LXDH TEXT")
    stages.extract(SOURCE, "r2")
    r2 = _ledger().get_run(SOURCE, "r2")
    assert _ledger().run_quality(r2.id)["new_columns"] == ["LXDH"]
    assert "LXDH" in _ledger().run_quality(r2.id)["unmapped_columns"]

    con = sqlite3.connect(path)
    create = con.execute("SELECT sql FROM sqlite_master WHERE name = ?", (TABLE,)).fetchone()[0]
    con.close()
    retyped = create.replace('"ZCZB" TEXT', '"ZCZB" REAL').replace(f'"{TABLE}"', '"t2"', 1)
    assert retyped != create
    _sql(path, retyped, f"INSERT INTO t2 SELECT * FROM {TABLE}", f"DROP TABLE {TABLE}",
         f"ALTER TABLE t2 RENAME TO {TABLE}")
    with pytest.raises(SchemaDrift, match="'ZCZB' changed type from TEXT to REAL"):
        stages.extract(SOURCE, "r3")
    assert _ledger().get_run(SOURCE, "r3").state == "failed"


def test_a_registrations_own_checks_quarantine_rows_and_every_run_has_data_docs(silo):
    path, _ = silo
    reg_file = get_settings().sources_dir / f"{SOURCE}.toml"
    reg_file.write_text(reg_file.read_text("utf-8").replace("[connector]", (
        '[[checks]]\ntype = "expect_column_values_to_match_regex"\n'
        'column = "licence_number"\nregex = "^[0-9]{14}[13579]$"\n\n[connector]')), "utf-8")
    stored(reg_file)                     # the catalogue's copy is what the stages read
    stages.extract(SOURCE, "r1")
    stages.conform(SOURCE, "r1")
    out = stages.validate(SOURCE, "r1")
    run = _ledger().runs(SOURCE)[0]
    rule = "expect_column_values_to_match_regex(licence_number)"
    assert 0 < run["reasons"][rule] < out["extracted"]
    assert out["extracted"] == out["accepted"] + out["quarantined"]

    docs = run["data_docs"]
    assert docs == out["data_docs"] and docs.endswith("data_docs/index.html")
    store = get_settings().store
    pages = [k for k in store.list(f"staging/{SOURCE}/r1/data_docs") if k.endswith(".html")]
    assert len(pages) >= 2 and docs in pages     # the index and the version's results
    page = store.read_text(next(k for k in pages if k.endswith("/version.html")))
    assert "values must match this regular expression" in page
    assert f"{run['reasons'][rule]} unexpected" in page or str(run["reasons"][rule]) in page


def _clean_ids(manifest, n: int) -> list[str]:
    bad = {i for k, ids in manifest.items() if k != "cosmetic" for i in ids}
    return [str(i) for i in range(1, 200) if i not in bad][:n]


BLANK_RULE = "expect_column_values_to_not_be_blank_when_normalised"


def test_blank_licence_numbers_and_null_marker_names_are_quarantined_not_published(silo, capsys):
    path, manifest = silo
    ids = _clean_ids(manifest, 4)
    _sql(path, (f"UPDATE {TABLE} SET ZCH = '' WHERE ID = ?", (ids[0],)),
         (f"UPDATE {TABLE} SET ZCH = ' \u3000' WHERE ID = ?", (ids[1],)),
         (f"UPDATE {TABLE} SET QYMC = 'NULL' WHERE ID = ?", (ids[2],)),
         (f"UPDATE {TABLE} SET QYMC = '---' WHERE ID = ?", (ids[3],)))
    stages.run_all(SOURCE, "r1")
    entries = {e["raw"]["ID"]: e for e in _cli_json(capsys, "quarantine", DATASET)["entries"]}
    assert f"{BLANK_RULE}(licence_number)" in entries[ids[0]]["reasons"]
    assert f"{BLANK_RULE}(licence_number)" in entries[ids[1]]["reasons"]
    assert entries[ids[2]]["reasons"] == [f"{BLANK_RULE}(holder_name)"]
    assert entries[ids[3]]["reasons"] == [f"{BLANK_RULE}(holder_name)"]
    import sqlalchemy as sa
    with _catalog().engine.connect() as c:
        published = c.execute(sa.text("select licence_number, holder_name from records")).all()
    assert published and not [r for r in published if r[0].strip() == "" or r[1] in ("NULL", "---")]


def test_a_suite_without_the_licence_number_checks_still_publishes_no_blank_licence_number(
        silo, tmp_path, monkeypatch):
    from base.errors import DataError
    from quality import suites

    path, manifest = silo
    edited = tmp_path / "suites"
    edited.mkdir()
    data = json.loads(suites.suite_path("business_licence").read_text("utf-8"))
    data["expectations"] = [e for e in data["expectations"]
                            if e["kwargs"].get("column") != "licence_number"]
    (edited / "business_licence.json").write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    monkeypatch.setattr(suites, "SUITES_DIR", edited)
    row = _clean_ids(manifest, 1)[0]
    _sql(path, (f"UPDATE {TABLE} SET ZCH = 'N/A' WHERE ID = ?", (row,)))
    with pytest.raises(DataError, match=f"blank licence number \\(first: silo row {row}\\)"):
        stages.run_all(SOURCE, "r1")
    assert _catalog().datasets()[0]["version"] is None, "nothing was published"
    assert _ledger().get_run(SOURCE, "r1").state == "failed"


def test_every_quarantined_row_is_in_the_queue_conflicting_duplicates_too(silo, capsys):
    path, manifest = silo
    a, b = _clean_ids(manifest, 2)
    cols = [r[1] for r in sqlite3.connect(path).execute(f"PRAGMA table_info({TABLE})")]
    _sql(path,   # b now has a's licence number (different content); a's row again but for its ID
         f"UPDATE {TABLE} SET ZCH = (SELECT ZCH FROM {TABLE} WHERE ID = {a}) WHERE ID = {b}",
         f"INSERT INTO {TABLE} SELECT {', '.join('900000' if c == 'ID' else c for c in cols)} "
         f"FROM {TABLE} WHERE ID = {a}")
    stages.run_all(SOURCE, "r1")
    run = _ledger().runs(SOURCE)[0]
    queue = _cli_json(capsys, "quarantine", DATASET)
    assert queue["rows"] == len(queue["entries"]) == run["quarantined"], "one entry per quarantined row"
    assert len(manifest["duplicate_licence_number"]) > 0
    con = sqlite3.connect(path)
    number = con.execute(f"SELECT ZCH FROM {TABLE} WHERE ID = ?", (a,)).fetchone()[0]
    con.close()
    conflicting = [e for e in queue["entries"] if e["key"] == number]
    assert sorted(e["raw"]["ID"] for e in conflicting) == sorted([a, b, "900000"]), "each with its raw row"
    assert len({e["row_hash"] for e in conflicting}) == 3

    stages.run_all(SOURCE, "r2")                     # the same rows again: the same entries
    again = _cli_json(capsys, "quarantine", DATASET)
    assert again["rows"] == _ledger().runs(SOURCE)[0]["quarantined"] == run["quarantined"]
    assert {e["id"] for e in again["entries"]} == {e["id"] for e in queue["entries"]}

    out = _cli_json(capsys, "quarantine", "review", DATASET, number, "--by", "steward", "--note", "same number twice")
    assert out["state"] == "reviewed" and out["entries"] == 3
    states = [e["state"] for e in _cli_json(capsys, "quarantine", DATASET)["entries"] if e["key"] == number]
    assert states == ["reviewed"] * 3
    # one of them changes but still conflicts: its entry (and the review) carries on
    _sql(path, (f"UPDATE {TABLE} SET ZS = '另一个住所' WHERE ID = ?", (b,)))
    stages.run_all(SOURCE, "r3")
    after = [e for e in _cli_json(capsys, "quarantine", DATASET)["entries"] if e["key"] == number]
    assert sorted(e["id"] for e in after) == sorted(e["id"] for e in conflicting)
    assert [e["state"] for e in after] == ["reviewed"] * 3
    assert next(e for e in after if e["raw"]["ID"] == b)["raw"]["ZS"] == "另一个住所"


@pytest.mark.parametrize("gone", [3, 700])
def test_the_queue_marks_rows_seen_again_and_resolves_the_rest(silo, gone):
    """Entries seen again carry the run (one statement when few are not seen again, 500 ids
    at a time otherwise); the others are resolved; a resolved one seen again is open again (a
    row twice in a run is one entry)."""
    ledger = _ledger()
    rows = [{"key": f"K{i}", "row_hash": f"{i:040x}", "reasons": [NOT_NULL_NAME], "values": f'{{"i": {i}}}'}
            for i in range(1_200)]
    runs = [ledger.start_run(SOURCE, f"q{n}").id for n in range(3)]
    ledger.sync_quarantine(runs[0], SOURCE, DATASET, rows)
    assert ledger.sync_quarantine(runs[1], SOURCE, DATASET, rows[gone:]) == {
        "new": 0, "still": 1_200 - gone, "resolved": gone}
    assert ledger.sync_quarantine(runs[2], SOURCE, DATASET, rows[1:] + [rows[1]]) == {
        "new": 0, "still": 1_199, "resolved": 0}
    queue = {e["key"]: e for e in ledger.quarantine(DATASET, True)}
    assert len(queue) == 1_200 and queue["K0"]["state"] == "resolved" and queue["K0"]["resolved_run_id"] == runs[1]
    again = [queue[f"K{i}"] for i in range(1, 1_200)]
    assert {(e["state"], e["last_run_id"], e["first_run_id"], e["resolved_run_id"]) for e in again} == {
        ("open", runs[2], runs[0], None)}
    assert all(e["reasons"] == [NOT_NULL_NAME] for e in again)
