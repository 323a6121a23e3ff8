"""Record status across versions and the chain audit, on a real SQLite silo that changes
between runs: a revocation, a withdrawal and an amendment reach the catalogue in the next run;
a rotated key, a compromised key, a broken, reordered or altered chain, a moved record are caught."""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import shutil
import sqlite3
import time

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base import clock
from base.errors import UnknownCopy, VerificationError
from base.settings import get_settings
from catalog.publish.chain import audit_chain, catalogue_entries
from cli import main as cli
from exchange import stages
from tests.conftest import TODAY, register_demo_source
from trust.verify import KEY_STATUS_FILE, read_key_status, verify_bundle

SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"


def _catalog():
    from catalog.service import Catalog
    s = get_settings()
    return Catalog(s.catalog_url, s.store)


def _jwks():
    return json.loads(get_settings().jwks_path.read_text())


def _key_status():
    return read_key_status(get_settings().jwks_path.with_name(KEY_STATUS_FILE))


def _valid_records(cat, n):
    """n records valid today whose silo row spells the licence number as the catalogue does."""
    with cat.engine.connect() as c:
        return c.execute(sa.text(
            "select record_id, licence_number from records where version = 1 and status = 'valid' "
            "and (valid_to is null or valid_to > :d) order by leaf_index limit :n"),
            {"d": TODAY + dt.timedelta(days=30), "n": n}).all()


@pytest.fixture
def two_versions(home, silo_2k, tmp_path):
    """Version 1 from the silo; then a revocation, a withdrawal and an amendment; version 2."""
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    assert stages.run_all(SOURCE, "r1")["version"] == 1
    cat = _catalog()
    picks = []
    with sqlite3.connect(silo) as db:
        for rid, number in _valid_records(cat, 50):
            if db.execute("select count(*) from yyzz_djxx where ZCH = ?", (number,)).fetchone()[0] == 1:
                picks.append((rid, number))
        revoked, withdrawn, amended = picks[:3]
        old = {name: cat.bundle(rid) for name, (rid, _) in zip(("revoked", "withdrawn", "amended"), picks)}
        db.execute("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (revoked[1],))
        db.execute("delete from yyzz_djxx where ZCH = ?", (withdrawn[1],))
        db.execute("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (amended[1],))
    time.sleep(1.05)  # issued_at has second resolution: keep the versions' times apart
    assert stages.run_all(SOURCE, "r2")["version"] == 2
    return {"cat": cat, "silo": silo, "old": old, "ids": {"revoked": revoked[0], "withdrawn": withdrawn[0],
                                                        "amended": amended[0], "untouched": picks[3][0]}}


def test_a_silo_change_reaches_the_catalogue_in_the_next_run(two_versions):
    cat, ids, old = two_versions["cat"], two_versions["ids"], two_versions["old"]
    v2_at = cat.datasets()[0]["published_at"]

    st = cat.record_status(ids["revoked"])
    assert (st["status"], st["reason"], st["since"], st["current_version"]) == ("revoked", "revoked", v2_at, 2)
    assert [(h["version"], h["change"]) for h in st["history"]] == [(1, "added"), (2, "revoked")]
    b = cat.bundle(ids["revoked"])
    assert (b["version"], b["status"], b["status_since"], b["record"]["status"]) == (2, "revoked", v2_at, "revoked")

    st = cat.record_status(ids["withdrawn"])
    # the snapshot diff carries it into version 2, signed, with status "withdrawn"
    assert (st["status"], st["since"], st["current_version"]) == ("withdrawn", v2_at, 2)
    gone = cat.bundle(ids["withdrawn"])
    assert (gone["status"], gone["record"]["status"], gone["version"]) == ("withdrawn", "withdrawn", 2)

    amended = old["amended"]
    st = cat.record_status(ids["amended"], amended["version"], amended["leaf_hash"])
    assert (st["status"], st["since"]) == ("superseded", v2_at)
    assert cat.record_status(ids["amended"])["status"] == "valid"
    new = cat.bundle(ids["amended"])
    assert new["version"] == 2 and new["leaf_hash"] != amended["leaf_hash"] and new["status"] == "valid"

    st = cat.record_status(ids["untouched"])
    assert st["status"] == "valid" and st["history"] == [st["history"][0]] and st["history"][0]["version"] == 1
    changed = [i for i in ids.values() if len(cat.record_status(i)["history"]) > 1]
    assert sorted(changed) == sorted([ids["revoked"], ids["withdrawn"], ids["amended"]])
    with cat.engine.connect() as c:  # the changes are read from the records' states: none stored apart
        assert c.scalar(sa.text("select count(*) from record_events")) == 0


def test_status_of_a_copy_is_that_of_a_published_copy_or_unknown(two_versions):
    cat, ids, old = two_versions["cat"], two_versions["ids"], two_versions["old"]
    v2_at = cat.datasets()[0]["published_at"]
    amended, new = old["amended"], cat.bundle(ids["amended"])
    rid = ids["amended"]
    for version, leaf in ((1, amended["leaf_hash"]), (None, amended["leaf_hash"]), (1, None)):
        st = cat.record_status(rid, version, leaf)
        assert (st["status"], st["since"]) == ("superseded", v2_at), (version, leaf)
    for version, leaf in ((2, new["leaf_hash"]), (None, new["leaf_hash"]), (2, None)):
        assert cat.record_status(rid, version, leaf)["status"] == "valid", (version, leaf)
    for version, leaf in ((2, amended["leaf_hash"]), (1, new["leaf_hash"]), (3, None), (None, "ab" * 32),
                          (1, "ab" * 32)):
        with pytest.raises(UnknownCopy, match="unknown"):
            cat.record_status(rid, version, leaf)
    assert cli(["record", rid, "--version", "3"]) == 7


def test_verify_online_names_the_status_step(two_versions):
    cat, old = two_versions["cat"], two_versions["old"]
    status_of = lambda b: cat.record_status(b["record_id"], b["version"], b["leaf_hash"])  # noqa: E731
    expected = {"revoked": "revoked", "withdrawn": "withdrawn", "amended": "superseded"}
    for name, bundle in old.items():
        # still authentic, and the latest state at its version (1)
        assert verify_bundle(bundle, _jwks(), _key_status()).steps == (1, 2, 3, 4, 5, 6, 7)
        with pytest.raises(VerificationError, match=f"the record is {expected[name]} since") as exc:
            verify_bundle(bundle, _jwks(), _key_status(), status_of)
        assert exc.value.step == 8
    fresh = cat.bundle(two_versions["ids"]["amended"])
    assert verify_bundle(fresh, _jwks(), _key_status(), status_of).status["status"] == "valid"


def test_a_record_moved_to_another_version_fails(two_versions):
    cat, old = two_versions["cat"], two_versions["old"]
    moved = copy.deepcopy(old["amended"])  # version 1's record and path under version 2's head
    moved["signed_tree_head"] = cat.bundle(two_versions["ids"]["untouched"])["signed_tree_head"]
    with pytest.raises(VerificationError) as exc:
        verify_bundle(moved, _jwks())
    assert exc.value.step == 4
    moved["version"] = 2
    new = cat.bundle(two_versions["ids"]["amended"])
    for k in ("tree_size", "leaf_index", "audit_path"):
        moved[k] = new[k]
    with pytest.raises(VerificationError) as exc:
        verify_bundle(moved, _jwks())
    assert exc.value.step == 6


def _audit(entries=None):
    entries = entries if entries is not None else catalogue_entries(_catalog().engine, _catalog().store, DATASET)
    return audit_chain(DATASET, entries, _jwks(), _key_status())


def test_audit_chain_passes_then_finds_each_kind_of_break(two_versions, tmp_path):
    report = _audit()
    assert report.ok and report.versions_checked == 2 and report.records_checked > 3000
    assert cli(["audit-chain", DATASET]) == 0
    entries = catalogue_entries(_catalog().engine, _catalog().store, DATASET)

    reordered = _audit([entries[1], entries[0]]).first_break
    assert (reordered["version"], reordered["check"]) == (2, 1)
    swapped = [dataclasses.replace(entries[0], signed_tree_head=entries[1].signed_tree_head), entries[1]]
    assert _audit(swapped).first_break["name"] == "version numbering"
    gap = _audit([entries[0], dataclasses.replace(entries[1], version=3)]).first_break
    assert (gap["version"], gap["check"]) == (3, 1)
    assert _audit([entries[1]]).first_break["check"] == 1   # version 1 removed

    forged = [entries[0], dataclasses.replace(entries[1], root_hash="00" * 32)]
    assert _audit(forged).first_break["check"] == 3

    moved = [dataclasses.replace(entries[0], index_record_ids=lambda: list(reversed(entries[0].index_record_ids())))]
    assert _audit(moved + entries[1:]).first_break == {
        "version": 1, "check": 7, "name": "index matches the records",
        "message": _audit(moved).first_break["message"]}

    # Version 1's stored records altered on disk: one address changed.
    records = entries[0].path.local_path("records.parquet")
    table = pq.read_table(records)
    rows = table.to_pylist()
    rows[5]["address"] = (rows[5]["address"] or "") + "x"
    backup = tmp_path / "records.parquet"
    shutil.copy(records, backup)
    pq.write_table(table.from_pylist(rows, table.schema), records)
    broken = _audit().first_break
    assert (broken["version"], broken["check"]) == (1, 6) and "altered" in broken["message"]
    assert cli(["audit-chain", DATASET, "--json"]) == 8
    shutil.copy(backup, records)
    assert _audit().ok


def test_broken_chain_link_is_found(two_versions):
    """A version 2 head, validly signed, that does not point at version 1's head."""
    from catalog.signing.keys import KeyStore, tree_head_payload
    from trust.verify import head_payload_unverified

    s = get_settings()
    entries = catalogue_entries(_catalog().engine, _catalog().store, DATASET)
    head = head_payload_unverified(entries[1].signed_tree_head)
    resigned = KeyStore(s.keys_dir, s.key_passphrase()).sign_tree_head(tree_head_payload(
        DATASET, 2, head["tree_size"], bytes.fromhex(head["root_hash"]),
        clock.now(), "not.the.previous"))
    (entries[1].path.local_path("head.jws")).write_text(resigned, encoding="ascii")
    br = _audit([entries[0], dataclasses.replace(entries[1], signed_tree_head=resigned)]).first_break
    assert (br["version"], br["check"], br["name"]) == (2, 4, "chain link")


def test_rotation_and_compromise_through_the_cli(two_versions, capsys):
    cat, silo = two_versions["cat"], two_versions["silo"]
    v2_bundle = cat.bundle(two_versions["ids"]["untouched"])
    assert cli(["keys", "list", "--json"]) == 0
    [first] = json.loads(capsys.readouterr().out)
    assert first["status"] == "active" and first["heads_signed"] == 2
    assert cli(["keys", "rotate", "--json"]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["retired"] == first["kid"]
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '之一' where ID = (select min(ID) from yyzz_djxx)")
    assert stages.run_all(SOURCE, "r3")["version"] == 3
    v3 = catalogue_entries(cat.engine, cat.store, DATASET)[2].signed_tree_head
    assert json.loads(__import__("base64").urlsafe_b64decode(v3.split(".")[0] + "=="))["kid"] == rotated["active"]
    assert _audit().ok  # versions 1-2 under the retired key, 3 under the new one

    # The first key turns out to have been stolen between versions 1 and 2.
    from trust.verify import head_payload_unverified
    v1, v2 = (head_payload_unverified(e.signed_tree_head)["issued_at"]
              for e in catalogue_entries(cat.engine, cat.store, DATASET)[:2])
    assert v1 < v2
    assert cli(["keys", "compromise", "--at", v2, "--", first["kid"]]) == 0   # a kid may begin with "-"
    capsys.readouterr()
    old = two_versions["old"]["revoked"]  # a version 1 bundle: published before the compromise
    v = verify_bundle(old, _jwks(), _key_status())
    assert v.compromised_key is not None and v.kid == first["kid"]
    with pytest.raises(VerificationError, match="not one the exchange published with it before then") as exc:
        verify_bundle(v2_bundle, _jwks(), _key_status())
    assert exc.value.step == 2  # version 2 was signed after the compromise time
    assert verify_bundle(cat.bundle(two_versions["ids"]["untouched"]), _jwks(), _key_status()).kid \
        == rotated["active"]  # version 3, under the new key, is unaffected
    br = _audit().first_break
    assert (br["version"], br["check"]) == (2, 2) and "compromised" in br["message"]
