"""Migration 0017 on a catalogue made by the exchange before the append-only log (tests/fixtures/prelog:
two versions published by commit 08243d8, and bundles exported from each): after `exchange db
upgrade` the old bundles still verify and the chain audit passes; the next run appends only
the changed record state, its version is consistent with version 2 (the log's first
checkpoint), not with version 1 (before the log), and its bundles carry the map proof."""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base.errors import NotFound, VerificationError
from base.settings import get_settings
from cli import main as cli
from exchange import stages
from tests.conftest import ROOT, catalog, register_demo_source
from tests.independent import tlog
from trust.merkle import verify_consistency
from trust.verify import verify_bundle, verify_tree_head

PRELOG = ROOT / "tests" / "fixtures" / "prelog"
PICKS = json.loads((PRELOG / "picks.json").read_text("utf-8"))
DATASET, SOURCE = PICKS["dataset"], PICKS["source"]
IDS = {name: r["record_id"] for name, r in PICKS["records"].items()}
BUNDLES = {p.stem: json.loads(p.read_text("utf-8")) for p in sorted((PRELOG / "bundles").glob("v*.json"))}
OLD_JWKS = json.loads((PRELOG / "jwks.json").read_text("utf-8"))
OFFLINE, WITH_MAP = (1, 2, 3, 4, 5, 6), (1, 2, 3, 4, 5, 6, 7)
ONLINE = {"v1-amended": "superseded", "v1-revoked": "revoked", "v1-untouched": "valid", "v1-withdrawn": "withdrawn",
          "v2-amended": "valid", "v2-revoked": "revoked", "v2-untouched": "valid", "v2-withdrawn": "withdrawn"}


def _note_key(jwk: dict, name: str) -> str:
    """The signed-note verifier key of an Ed25519 JWK named `name` (C2SP signed-note, "Verifier keys")."""
    key = b"\x01" + base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    key_id = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    return f"{name}+{key_id.hex()}+{base64.b64encode(key).decode()}"


def _cli_json(capsys, argv: list[str]) -> tuple[int, dict]:
    capsys.readouterr()
    code = cli([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _audit(capsys) -> dict:
    code, out = _cli_json(capsys, ["audit-chain", DATASET])
    assert code == 0 and out["ok"], out["first_break"]
    return out


def _bundles_still_verify(jwks: dict, key_status: str) -> None:
    assert len(BUNDLES) == 8 and {b["format"] for b in BUNDLES.values()} == {"exchange-record-bundle/1"}
    for name, b in BUNDLES.items():
        for keys, status in ((OLD_JWKS, None), (jwks, key_status)):
            v = verify_bundle(b, keys, status)
            assert (v.steps, v.record_id, v.head["version"]) == (OFFLINE, b["record_id"], int(name[1])), name


def _fifth_record(cat, silo) -> str:
    """The licence number of a current, valid, open-ended record with one silo row, none of the four exported."""
    with cat.engine.connect() as c:
        numbers = c.execute(sa.text(
            "select licence_number from records where superseded_in is null and status = 'valid' "
            "and valid_to is null and record_id not in (:a, :b, :c, :d) order by leaf_index"),
            dict(zip("abcd", IDS.values()))).scalars().all()
    with sqlite3.connect(silo) as db:
        rows = {n: db.execute("select count(*) from yyzz_djxx where ZCH = ?", (n,)).fetchone()[0] for n in numbers}
    return next(n for n in numbers if rows[n] == 1)


def _online(cat, b: dict) -> str:
    """The copy's status by step 8 ("valid" when it passes), the offline steps passing first."""
    def status_of(x):
        return cat.record_status(x["record_id"], x["version"], x["leaf_hash"])
    try:
        return verify_bundle(b, json.loads(cat.key_material()[0]), cat.key_material()[1], status_of).status["status"]
    except VerificationError as exc:
        assert exc.step == 8, exc
        return status_of(b)["status"]


@pytest.fixture
def upgraded(home, tmp_path, capsys):
    """The prelog catalogue in a fresh home, upgraded by `exchange db upgrade`; its silo file."""
    shutil.copytree(PRELOG / "home", home)
    silo = tmp_path / "silo" / "market_regulation.db"
    silo.parent.mkdir()
    shutil.copy(PRELOG / "silo" / "market_regulation.db", silo)
    with sqlite3.connect(home / "catalog.db") as db:
        assert db.execute("select version_num from alembic_version").fetchone() == ("0016_store_keys",)
    code, done = _cli_json(capsys, ["db", "upgrade"])
    assert code == 0 and done["from"] == "0016_store_keys" and done["to"] == done["head"]
    return silo


def test_an_upgraded_catalogue_keeps_its_bundles_and_chain(upgraded, capsys):
    cat = catalog()
    jwks_text, key_status = cat.key_material()
    jwks = json.loads(jwks_text)
    assert [k["kid"] for k in jwks["keys"]] == [k["kid"] for k in OLD_JWKS["keys"]]
    _bundles_still_verify(jwks, key_status)
    assert {name: _online(cat, b) for name, b in BUNDLES.items()} == ONLINE
    with cat.engine.connect() as c:     # 0017: version 1's rows superseded by version 2's, no leaf hashes
        assert c.execute(sa.text("select version, superseded_in, count(*), count(leaf_hash) from records "
                                 "group by version, superseded_in order by version")).all() == [
            (1, 2, 200, 0), (2, None, 200, 0)]
    out = _audit(capsys)
    assert (out["versions_checked"], out["records_checked"]) == (2, 400)
    # nothing is adopted before the next publish; the bundles it serves are still version 2's
    assert cat.dataset(DATASET)["current_version"] == 2
    for name in ("revoked", "withdrawn", "amended", "untouched"):
        b = cat.bundle(IDS[name])
        old = BUNDLES[f"v2-{name}"]
        assert b["format"] == "exchange-record-bundle/1"
        # the same bundle; newer code adds the unsigned dispute fields (migration 0022: objections)
        added = {"disputed", "dispute", "disputes"}
        assert set(b) - set(old) == added and set(added) <= set(b["unsigned"]), name
        assert (b["disputed"], b["dispute"], b["disputes"]) == (False, None, [])
        assert {k: v for k, v in b.items() if k not in {"unsigned", *added}} == {
            k: old[k] for k in b if k not in {"unsigned", *added}}, name
    with pytest.raises(NotFound, match="predates its append-only log"):
        cat.consistency(DATASET, 1, 2)


def test_the_next_run_appends_to_the_log(upgraded, home, capsys):
    cat = catalog()
    silo = upgraded
    register_demo_source(home, silo)                 # the same source, its silo at its new path
    number = _fifth_record(cat, silo)
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附3号' where ZCH = ?", (number,))
    amended3 = cat.current_records_by_licence(DATASET, [number])[number]

    assert stages.run_all(SOURCE, "r3")["version"] == 3

    files = get_settings().store.sub(f"store/{DATASET}/v000003")
    records = pq.read_table(files.open_input("records.parquet"))
    assert records.column("record_id").to_pylist() == [amended3]
    assert records.column("address").to_pylist()[0].endswith("附3号")

    jwks_text, key_status = cat.key_material()
    jwks = json.loads(jwks_text)
    proof = cat.consistency(DATASET, 2, 3)
    first = verify_tree_head(proof["first_checkpoint"]["signed_tree_head"], jwks, key_status)[0]
    second = verify_tree_head(proof["second_checkpoint"]["signed_tree_head"], jwks, key_status)[0]
    assert proof["first_checkpoint"]["signed_tree_head"] == BUNDLES["v2-untouched"]["signed_tree_head"]
    assert (first["version"], first["tree_size"], second["version"], second["tree_size"]) == (2, 200, 3, 201)
    verify_consistency(first["tree_size"], second["tree_size"], bytes.fromhex(first["root_hash"]),
                       bytes.fromhex(second["root_hash"]), [bytes.fromhex(h) for h in proof["proof"]])
    assert _cli_json(capsys, ["consistency", DATASET, "--from", "2", "--to", "3"]) == (0, proof)
    note = get_settings().store.read_text(f"store/{DATASET}/log/checkpoint")
    assert note == proof["second_checkpoint"]["checkpoint"] and proof["first_checkpoint"]["checkpoint"] is None
    # signed by the old key, checked apart from the exchange's code
    text = tlog.open_note(note, _note_key(OLD_JWKS["keys"][0], get_settings().log_origin))
    assert text is not None and tlog.read_checkpoint(text)[1:3] == (201, bytes.fromhex(second["root_hash"]))
    with cat.engine.connect() as c:      # the index: one new row; the record's version 2 row superseded by it
        assert c.execute(sa.text("select version, superseded_in, leaf_hash is not null from records "
                                 "where record_id = :r order by version"), {"r": amended3}).all() == [
            (1, 2, 0), (2, 3, 0), (3, None, 1)]
        v3 = c.execute(sa.text("select record_id, leaf_index from records where version = 3")).all()
        assert v3 == [(amended3, 200)]
    with pytest.raises(NotFound, match="version 1 of .* predates its append-only log .*starts at version 2"):
        cat.consistency(DATASET, 1, 3)

    fresh = {name: cat.bundle(rid) for name, rid in (("amended3", amended3), ("untouched", IDS["untouched"]))}
    for name, b in fresh.items():
        assert (b["format"], b["version"], b["tree_size"]) == ("exchange-record-bundle/2", 3, 201), name
        assert verify_bundle(b, jwks, key_status).steps == WITH_MAP, name
        assert _online(cat, b) == "valid", name
    assert fresh["amended3"]["leaf_index"] == 200
    old = BUNDLES["v2-untouched"]             # adopted: version 2's leaf is the log's, same index
    assert (fresh["untouched"]["leaf_index"], fresh["untouched"]["leaf_hash"]) == (old["leaf_index"], old["leaf_hash"])
    _bundles_still_verify(jwks, key_status)
    assert {name: _online(cat, b) for name, b in BUNDLES.items()} == ONLINE

    out = _audit(capsys)
    assert (out["versions_checked"], out["records_checked"]) == (3, 601)
