"""A mirror holds a peer's dataset as the peer signed it (catalog/federation/mirror.py): two
catalogues in one process (the origin's home, and a second SQLite file and store), three
origin versions (a revoked, a withdrawn and an amended record) mirrored from the origin's
stored files. The mirror's heads are the origin's, its bundles verify against the origin's
keys; a tampered record, a broken chain and a rewritten version are refused, nothing kept."""
from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base import clock
from base.settings import get_settings
from base.storage import Store
from catalog.db.models import Dataset, DatasetVersion, Run
from catalog.federation import mirror
from catalog.federation.mirror import MirrorRefused
from catalog.federation.peers import Peers
from catalog.service import Catalog
from catalog.signing.keys import keystore_for
from exchange import stages
from tests.conftest import TODAY, register_demo_source
from tests.integration.catalog.test_append_only_log import single_row_records
from trust.verify import verify_bundle

pytestmark = [pytest.mark.integration, pytest.mark.federation]
SOURCE, DATASET, PEER = "smr_business_licence", "business_licence.market_regulation", "district"


def _origin() -> Catalog:
    s = get_settings()
    return Catalog(s.catalog_url, s.store)


def _info(cat: Catalog, version: int) -> dict:
    with cat.session() as s:
        v = s.get(DatasetVersion, (DATASET, version))
    return {"dataset": DATASET, "version": v.version, "first_leaf": v.first_leaf, "tree_size": v.tree_size,
            "record_count": v.record_count, "signed_tree_head": v.signed_tree_head, "checkpoint": v.checkpoint,
            "head_hash": v.head_hash, "previous_head_hash": v.previous_head_hash}


def _files(cat: Catalog, version: int) -> tuple[Path, Path]:
    with cat.session() as s:
        key = s.get(DatasetVersion, (DATASET, version)).path
    folder = cat.store.local_path(key)
    return folder / "records.parquet", folder / "index.parquet"


def _payload(jws: str) -> dict:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _store_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def federation(home, silo_2k, tmp_path):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    origin = _origin()
    revoked, withdrawn, amended = single_row_records(origin, silo)[:3]
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (revoked[1],))
        db.execute("delete from yyzz_djxx where ZCH = ?", (withdrawn[1],))
        db.execute("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (amended[1],))
    time.sleep(1.05)                  # issued_at has second resolution
    stages.run_all(SOURCE, "r2", TODAY)
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附2号' where ZCH = ?", (amended[1],))
    time.sleep(1.05)
    stages.run_all(SOURCE, "r3", TODAY)

    store_root = tmp_path / "mirror-store"
    here = Catalog(f"sqlite:///{tmp_path / 'mirror.db'}", Store.local(store_root))
    now = clock.now()
    Peers(here.engine).add(PEER, "http://127.0.0.1:1", "kid", [], None, None, "test", now)
    meta = {**origin.dataset(DATASET), "dataset": DATASET}
    assert mirror.ensure_mirror(here, PEER, meta, now) == DATASET
    return {"origin": origin, "here": here, "store_root": store_root, "tmp": tmp_path,
            "ids": {"revoked": revoked[0], "withdrawn": withdrawn[0], "amended": amended[0]}}


def _mirror(f, version: int, info: dict | None = None, records: Path | None = None):
    origin, here = f["origin"], f["here"]
    rec, holders = _files(origin, version)
    return mirror.mirror_version(here, PEER, DATASET, info or _info(origin, version), records or rec, holders,
                                 f["tmp"] / f"scratch{version}", clock.now())


def _jwks() -> dict:
    return json.loads(get_settings().jwks_path.read_text())


def test_a_mirror_holds_the_origins_versions_as_signed(federation):
    f = federation
    origin, here = f["origin"], f["here"]
    for version in (1, 2, 3):
        result = _mirror(f, version)
        ours, theirs = _info(here, version), _info(origin, version)
        assert result.version == version and ours == theirs        # heads, notes, sizes: the origin's
        mirror.check_known(here, DATASET, theirs)
    with origin.session() as s, here.session() as t:
        o, m = s.get(DatasetVersion, (DATASET, 3)), t.get(DatasetVersion, (DATASET, 3))
        assert (m.kid, m.published_at.replace(tzinfo=None), m.record_count, m.map_root) == \
            (o.kid, o.published_at.replace(tzinfo=None, microsecond=0), o.record_count, o.map_root)
        assert t.get(Dataset, DATASET).current_version == 3
    state = Peers(here.engine).mirror(DATASET)
    assert (state["version"], state["state"], state["head_hash"]) == (3, "ok", _info(origin, 3)["head_hash"])

    jwks = _jwks()
    for rid in f["ids"].values():
        bundle = here.bundle(rid)
        assert bundle["signed_tree_head"] == _info(origin, 3)["signed_tree_head"]
        verified = verify_bundle(bundle, jwks)
        assert verified is not None
        assert here.record_status(rid)["status"] == origin.record_status(rid)["status"]
    assert here.record_status(f["ids"]["revoked"])["status"] == "revoked"
    assert here.record_status(f["ids"]["withdrawn"])["status"] == "withdrawn"
    with here.engine.connect() as c:         # the holder key is kept in the index (not a record field)
        holder = c.scalar(sa.text("select holder_key from records where record_id = :r"),
                          {"r": f["ids"]["amended"]})
    assert any(r.get("record_id") == f["ids"]["amended"] for r in here.lookup(holder))
    assert here.consistency(DATASET, 1, 3) == origin.consistency(DATASET, 1, 3)


def test_a_tampered_record_is_refused_and_nothing_is_kept(federation):
    f = federation
    _mirror(f, 1)
    before = _store_files(f["store_root"])
    rec, _ = _files(f["origin"], 2)
    table = pq.read_table(rec)
    names = table.column("holder_name").to_pylist()
    names[0] = names[0] + "X"
    tampered = f["tmp"] / "tampered.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("holder_name"), "holder_name",
                                    pa.array(names, table.schema.field("holder_name").type)), tampered)
    with pytest.raises(MirrorRefused) as exc:
        _mirror(f, 2, records=tampered)
    assert exc.value.kind == "inconsistent" and exc.value.exit_code == 8
    assert _store_files(f["store_root"]) == before
    with f["here"].session() as s:
        assert s.get(Dataset, DATASET).current_version == 1
        assert s.get(DatasetVersion, (DATASET, 2)) is None
        assert s.scalar(sa.select(Run.state).where(Run.run_key == "v2")) == "failed"

    # a record moved to another holder: its id no longer matches
    ids = table.column("record_id").to_pylist()
    ids[0] = ids[1]
    moved = f["tmp"] / "moved.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("record_id"), "record_id",
                                    pa.array(ids, pa.string())), moved)
    with pytest.raises(MirrorRefused) as exc:
        _mirror(f, 2, records=moved)
    assert exc.value.kind == "bad_records"
    assert _store_files(f["store_root"]) == before
    _mirror(f, 2)                                   # the true version is still taken
    assert _info(f["here"], 2) == _info(f["origin"], 2)


def _resigned(info: dict, **changes) -> dict:
    """The version re-signed by the origin's key with `changes` in its head."""
    keys = keystore_for(get_settings())
    payload = {**_payload(info["signed_tree_head"]), **changes}
    jws = keys.sign_tree_head(payload)
    from trust.heads import head_hash
    return {**info, "signed_tree_head": jws, "head_hash": head_hash(jws),
            "previous_head_hash": payload["previous_head_hash"]}


def test_a_broken_chain_and_a_rewritten_version_are_refused(federation):
    f = federation
    _mirror(f, 1)
    before = _store_files(f["store_root"])
    bad = _resigned(_info(f["origin"], 2), previous_head_hash="ab" * 32)
    with pytest.raises(MirrorRefused) as exc:
        _mirror(f, 2, info=bad)
    assert exc.value.kind == "rewrite"
    assert _store_files(f["store_root"]) == before

    # version 1 signed again (another time): a rewrite of a version this mirror holds
    rewritten = _resigned(_info(f["origin"], 1), issued_at="2030-01-01T00:00:00Z")
    with pytest.raises(MirrorRefused) as exc:
        mirror.check_known(f["here"], DATASET, rewritten)
    assert exc.value.kind == "rewrite"
    other = _resigned(_info(f["origin"], 1), previous_head_hash="cd" * 32)
    with pytest.raises(MirrorRefused) as exc:
        mirror.check_known(f["here"], DATASET, other)
    assert exc.value.kind == "split_view"

    # a version skipped, and a head that names other records than the files
    with pytest.raises(MirrorRefused) as exc:
        _mirror(f, 3)
    assert exc.value.kind == "inconsistent"
    wrong_root = _resigned(_info(f["origin"], 2), root_hash="00" * 32)
    with pytest.raises(MirrorRefused) as exc:
        _mirror(f, 2, info=wrong_root)
    assert exc.value.kind == "inconsistent" and "root_hash" in str(exc.value)
    assert _store_files(f["store_root"]) == before


def test_a_local_dataset_cannot_be_mirrored_over(federation):
    from base.errors import ConfigError

    f = federation
    origin = f["origin"]
    Peers(origin.engine).add("city", "http://127.0.0.1:2", "kid", [], None, None, "test", clock.now())
    with pytest.raises(ConfigError):
        mirror.ensure_mirror(origin, "city", {**origin.dataset(DATASET), "dataset": DATASET}, clock.now())
    Peers(f["here"].engine).add("city", "http://127.0.0.1:2", "kid", [], None, None, "test", clock.now())
    with pytest.raises(ConfigError):
        mirror.ensure_mirror(f["here"], "city", {**origin.dataset(DATASET), "dataset": DATASET}, clock.now())
    listed = Peers(f["here"].engine).list()
    assert [p["name"] for p in listed] == ["city", PEER] and listed[1]["mirrors"][0]["dataset"] == DATASET


def test_a_removed_peers_datasets_stay_read_only_and_are_never_served_on(federation):
    from catalog.federation import access_reports
    from catalog.federation.origin import Origin

    here = federation["here"]
    _mirror(federation, 1)
    assert Peers(here.engine).remove(PEER, "test") == [DATASET]
    assert Peers(here.engine).mirror(DATASET)["state"] == "removed" and Peers(here.engine).list() == []
    assert here.dataset(DATASET)["current_version"] == 1
    assert here.bundle(federation["ids"]["amended"])["dataset"] == DATASET
    assert Origin(here).may_mirror("anyone-ex", [DATASET]) == set()      # still another exchange's
    assert access_reports.mirrored(here.engine) == {}                    # nobody left to report to
