"""Each dataset is an append-only log (docs/verification.md, "The log"), checked against a real
SQLite silo that changes between three runs, with a second Merkle implementation that imports
nothing of the exchange (tests/independent/tlog.py):
- a version stores and indexes only the record states that changed;
- consistency proofs between versions verify against the roots of the signed checkpoints (JWS
  heads and C2SP signed notes), from the CLI and the public API;
- a bundle proves its leaf is the record's latest state at its version; the revoked record's
  old (valid) state, though still in the log, does not verify as current;
- audit-chain walks the log, and a tampered tile is caught.
"""
from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import time

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base.errors import VerificationError
from base.settings import get_settings
from catalog.publish.log_version import log_prefix
from catalog.signing.tiles import TileLog
from cli import main as cli
from exchange import stages
from tests.conftest import TODAY, register_demo_source
from tests.independent import tlog
from trust.verify import verify_bundle

SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"


def _catalog():
    from catalog.service import Catalog
    s = get_settings()
    return Catalog(s.catalog_url, s.store)


def single_row_records(cat, silo) -> list:
    """(record_id, licence number) of up to 40 valid records without a validity end, in log
    order, each from a licence number the silo has one row of."""
    with cat.engine.connect() as c:
        picks = c.execute(sa.text(
            "select record_id, licence_number from records where status = 'valid' and valid_to is null "
            "order by leaf_index limit 40")).all()
    with sqlite3.connect(silo) as db:
        return [p for p in picks if db.execute("select count(*) from yyzz_djxx where ZCH = ?",
                                               (p[1],)).fetchone()[0] == 1]


def _jwks() -> dict:
    return json.loads(get_settings().jwks_path.read_text())


def _payload(jws: str) -> dict:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _vkey(kid: str) -> str:
    """The signed-note verifier key of a JWKS key (Ed25519: name+id+base64(0x01 ‖ key)), made here."""
    import hashlib

    jwk = next(k for k in _jwks()["keys"] if k["kid"] == kid)
    raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    name = get_settings().log_origin
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]
    encoded = base64.b64encode(b"\x01" + raw).decode()
    return f"{name}+{key_id.hex()}+{encoded}"


@pytest.fixture
def three_versions(home, silo_2k, tmp_path):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    runs = [stages.run_all(SOURCE, "r1", TODAY)]
    cat = _catalog()
    picks = single_row_records(cat, silo)
    with sqlite3.connect(silo) as db:
        revoked, withdrawn, amended, untouched = picks[:4]
        old = {"revoked": cat.bundle(revoked[0]), "untouched": cat.bundle(untouched[0])}
        db.execute("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (revoked[1],))
        db.execute("delete from yyzz_djxx where ZCH = ?", (withdrawn[1],))
        db.execute("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (amended[1],))
    time.sleep(1.05)                  # issued_at has second resolution
    runs.append(stages.run_all(SOURCE, "r2", TODAY))
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附2号' where ZCH = ?", (amended[1],))
    time.sleep(1.05)
    runs.append(stages.run_all(SOURCE, "r3", TODAY))
    return {"cat": cat, "runs": runs, "old": old,
            "ids": {"revoked": revoked[0], "withdrawn": withdrawn[0], "amended": amended[0],
                    "untouched": untouched[0]}}


def test_a_version_stores_and_indexes_only_what_changed(three_versions):
    cat, runs = three_versions["cat"], three_versions["runs"]
    assert [r["version"] for r in runs] == [1, 2, 3]
    n1 = runs[0]["tree_size"]
    assert runs[1]["tree_size"] == n1 + 3 and runs[2]["tree_size"] == n1 + 4    # the log's size
    assert runs[1]["changes"] == {"new": 0, "changed": 2, "unchanged": n1 - 3, "withdrawn": 1,
                                  "still_withdrawn": 0, "held": runs[1]["changes"]["held"]}
    store = get_settings().store
    for version, appended in ((2, 3), (3, 1)):
        key = f"store/{DATASET}/v{version:06d}"
        assert pq.ParquetFile(store.open_input(f"{key}/records.parquet")).metadata.num_rows == appended
        assert not store.exists(f"{key}/tree.bin")           # no full tree: the log's tiles
    with cat.engine.connect() as c:
        per_version = dict(c.execute(sa.text("select version, count(*) from records group by version")).all())
        current = c.scalar(sa.text("select count(*) from records where superseded_in is null"))
    assert per_version == {1: n1, 2: 3, 3: 1} and current == n1
    assert [d["records"] for d in cat.datasets()] == [n1]     # records, not log leaves
    st = cat.record_status(three_versions["ids"]["withdrawn"])
    assert st["status"] == "withdrawn"
    assert cat.record_status(three_versions["ids"]["revoked"])["status"] == "revoked"
    assert cat.record_status(three_versions["ids"]["untouched"])["current_version"] == 3


def test_consistency_proofs_verify_with_a_second_implementation(three_versions, capsys):
    cat = three_versions["cat"]
    for a, b in ((1, 2), (2, 3), (1, 3), (3, 3)):
        p = cat.consistency(DATASET, a, b)
        heads = [_payload(p[k]["signed_tree_head"]) for k in ("first_checkpoint", "second_checkpoint")]
        assert (p["first_size"], p["first_root"]) == (heads[0]["tree_size"], heads[0]["root_hash"])
        assert (p["second_size"], p["second_root"]) == (heads[1]["tree_size"], heads[1]["root_hash"])
        for k, head in zip(("first_checkpoint", "second_checkpoint"), heads):      # the C2SP note
            note = p[k]["checkpoint"]
            body = tlog.open_note(note, _vkey(_jwks()["keys"][0]["kid"]))
            origin, size, root, ext = tlog.read_checkpoint(body)
            assert (origin, size, root.hex()) == (f"{get_settings().log_origin}/{DATASET}", head["tree_size"],
                                                  head["root_hash"])
            assert f"version {head['version']}" in ext
        proof = [bytes.fromhex(h) for h in p["proof"]]
        assert tlog.verify_consistency(p["first_size"], p["second_size"], bytes.fromhex(p["first_root"]),
                                       bytes.fromhex(p["second_root"]), proof)
        if proof:       # a changed hash, or the proof against another root, fails
            bad = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
            assert not tlog.verify_consistency(p["first_size"], p["second_size"], bytes.fromhex(p["first_root"]),
                                               bytes.fromhex(p["second_root"]), bad)
    # the log's leaves are exactly what a second implementation computes over the three versions
    size = three_versions["runs"][2]["tree_size"]
    leaves = list(map(bytes, TileLog(get_settings().store, log_prefix(DATASET)).leaves(0, size, size)))
    assert tlog.mth(leaves).hex() == three_versions["runs"][2]["root_hash"]
    assert tlog.consistency_proof(three_versions["runs"][0]["tree_size"], leaves) == \
        [bytes.fromhex(h) for h in cat.consistency(DATASET, 1, 3)["proof"]]

    assert cli(["consistency", DATASET, "--from", "1", "--to", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"first_size", "second_size", "first_root", "second_root", "proof"} <= set(out)
    assert out == cat.consistency(DATASET, 1, 3)
    assert cli(["consistency", DATASET, "--from", "3", "--to", "1"]) == 4
    assert cli(["consistency", DATASET, "--from", "1", "--to", "9"]) != 0


def test_the_logs_are_public_over_the_api(three_versions):
    from fastapi.testclient import TestClient

    from api.app import create_app

    client = TestClient(create_app())
    r = client.get(f"/v1/logs/{DATASET}/consistency", params={"from": 1, "to": 3})
    assert r.status_code == 200 and r.json() == three_versions["cat"].consistency(DATASET, 1, 3)
    note = client.get(f"/v1/logs/{DATASET}/checkpoint")
    assert note.status_code == 200 and note.text.splitlines()[1] == str(three_versions["runs"][2]["tree_size"])
    tile = client.get(f"/v1/logs/{DATASET}/tile/0/000")
    assert tile.status_code == 200 and len(tile.content) == 256 * 32
    assert client.get(f"/v1/logs/{DATASET}/tile/../../catalog.db").status_code == 404
    assert client.get("/v1/logs/no.such/consistency", params={"from": 1, "to": 2}).status_code == 404


def test_a_bundle_proves_the_latest_state(three_versions):
    cat, ids, old = three_versions["cat"], three_versions["ids"], three_versions["old"]
    jwks = _jwks()
    for name in ("untouched", "amended", "revoked", "withdrawn"):
        b = cat.bundle(ids[name])
        assert b["format"] == "exchange-record-bundle/2" and b["version"] == 3
        assert verify_bundle(b, jwks).steps == (1, 2, 3, 4, 5, 6, 7), name
        head = _payload(b["signed_tree_head"])
        found = tlog.map_lookup(b["map_proof"], bytes.fromhex(head["map_root"]), ids[name])
        assert found == ("found", b["leaf_index"], bytes.fromhex(b["leaf_hash"])), name
        assert tlog.verify_inclusion(b["leaf_index"], b["tree_size"], bytes.fromhex(b["leaf_hash"]),
                                     [bytes.fromhex(h) for h in b["audit_path"]], bytes.fromhex(head["root_hash"]))
    assert cat.bundle(ids["revoked"])["record"]["status"] != "valid"
    assert cat.bundle(ids["withdrawn"])["record"]["status"] == "withdrawn"
    # version 1's bundle of the revoked record still verifies under version 1 ...
    stale = old["revoked"]
    assert verify_bundle(stale, jwks).steps == (1, 2, 3, 4, 5, 6, 7)
    # ... but its valid state, though in the log, is not the record's state under version 3
    now = cat.bundle(ids["revoked"])
    log = TileLog(get_settings().store, log_prefix(DATASET))
    relabelled = {**stale, "version": 3, "tree_size": now["tree_size"], "signed_tree_head": now["signed_tree_head"],
                  "map_proof": now["map_proof"],
                  "audit_path": [h.hex() for h in log.inclusion_proof(stale["leaf_index"], now["tree_size"])]}
    with pytest.raises(VerificationError, match="superseded") as exc:
        verify_bundle(relabelled, jwks)
    assert exc.value.step == 7
    head = _payload(now["signed_tree_head"])
    assert tlog.map_lookup(now["map_proof"], bytes.fromhex(head["map_root"]), ids["revoked"])[1] != stale["leaf_index"]
    # and a bundle without its map proof is refused under a head that commits to a map
    bare = {k: v for k, v in now.items() if k != "map_proof"} | {"format": "exchange-record-bundle/1"}
    with pytest.raises(VerificationError) as exc:
        verify_bundle(bare, jwks)
    assert exc.value.step == 7


def test_audit_chain_walks_the_log_and_catches_a_tampered_tile(three_versions, capsys):
    assert cli(["audit-chain", DATASET, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["versions_checked"] == 3
    store = get_settings().store
    tile = f"{log_prefix(DATASET)}/tile/0/000"
    data = bytearray(store.read_bytes(tile))
    data[5] ^= 1
    store.write_bytes(tile, bytes(data))
    assert cli(["audit-chain", DATASET]) == 8
    err = capsys.readouterr().err
    assert "version 1" in err and "log" in err
