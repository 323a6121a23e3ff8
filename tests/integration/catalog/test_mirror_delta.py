"""A mirror stages a changed version as the origin's Delta run does (catalog/federation/mirror.py
_on_map): the current map with only the buckets the version's records touch read from the
index. Four origin versions (records added, amended, revoked, withdrawn and back); after the
first, the mirror never reads the whole state, and every head is the origin's."""
from __future__ import annotations

import shutil
import sqlite3
import time

import pytest

from base import clock
from base.storage import Store
from catalog.db.models import DatasetVersion
from catalog.federation import mirror
from catalog.federation.peers import Peers
from catalog.publish import log_delta
from catalog.service import Catalog
from exchange import stages
from tests.conftest import TODAY, register_demo_source
from tests.integration.catalog.test_append_only_log import single_row_records
from tests.integration.catalog.test_mirror_publish import DATASET, PEER, SOURCE, _files, _info, _origin

pytestmark = [pytest.mark.integration, pytest.mark.federation]


def _run(silo, key: str, *statements: tuple[str, tuple]) -> None:
    with sqlite3.connect(silo) as db:
        for sql, args in statements:
            db.execute(sql, args)
    time.sleep(1.05)                  # issued_at has second resolution
    stages.run_all(SOURCE, key, TODAY)


def _heads(cat: Catalog, version: int) -> tuple:
    with cat.session() as s:
        v = s.get(DatasetVersion, (DATASET, version))
        return v.map_root, v.record_count, v.tree_size, v.head_hash


def test_changed_versions_are_mirrored_on_the_map_without_the_whole_state(home, silo_2k, tmp_path, monkeypatch):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    with sqlite3.connect(silo) as db:      # rows kept out of the first version: records added later
        aside = [r[0] for r in db.execute("select ZCH from yyzz_djxx group by ZCH having count(*) = 1 "
                                          "order by ZCH desc limit 6")]
        db.execute(f"create table aside as select * from yyzz_djxx where ZCH in ({','.join('?' * 6)})", aside)
        db.execute(f"delete from yyzz_djxx where ZCH in ({','.join('?' * 6)})", aside)
    stages.run_all(SOURCE, "r1", TODAY)
    origin = _origin()
    revoked, withdrawn, amended = single_row_records(origin, silo)[:3]
    _run(silo, "r2", ("insert into yyzz_djxx select * from aside where ZCH in (?, ?, ?)", tuple(aside[:3])),
         ("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (revoked[1],)),
         ("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (amended[1],)))
    _run(silo, "r3", ("create table gone as select * from yyzz_djxx where ZCH = ?", (withdrawn[1],)),
         ("delete from yyzz_djxx where ZCH = ?", (withdrawn[1],)),
         ("insert into yyzz_djxx select * from aside where ZCH in (?, ?, ?)", tuple(aside[3:])),
         ("update yyzz_djxx set ZS = ZS || '附2号' where ZCH = ?", (amended[1],)))
    _run(silo, "r4", ("insert into yyzz_djxx select * from gone", ()))      # withdrawn, then back
    counts = [_heads(origin, v)[1] for v in (1, 2, 3, 4)]
    assert counts[1] > counts[0] and counts[2] > counts[1]       # records new to the dataset

    here = Catalog(f"sqlite:///{tmp_path / 'mirror.db'}", Store.local(tmp_path / "mirror-store"))
    now = clock.now()
    Peers(here.engine).add(PEER, "http://127.0.0.1:1", "kid", [], None, None, "test", now)
    mirror.ensure_mirror(here, PEER, {**origin.dataset(DATASET), "dataset": DATASET}, now)

    def sync(version: int):
        rec, holders = _files(origin, version)
        return mirror.mirror_version(here, PEER, DATASET, _info(origin, version), rec, holders,
                                     tmp_path / f"scratch{version}", clock.now())

    sync(1)
    assert _heads(here, 1) == _heads(origin, 1)

    def whole(*_a, **_k):
        raise AssertionError("the whole current state read for a changed version")
    monkeypatch.setattr(Catalog, "current_state", whole)
    monkeypatch.setattr(log_delta.IndexReader, "whole", whole)
    read: list[int] = []
    buckets = log_delta.IndexReader.buckets

    def counted(self, *a, **k):
        entries = buckets(self, *a, **k)
        read.append(len(entries.ids))
        return entries
    monkeypatch.setattr(log_delta.IndexReader, "buckets", counted)
    for version in (2, 3, 4):
        read.clear()
        result = sync(version)
        assert result.version == version
        assert _heads(here, version) == _heads(origin, version)          # map root, count, size, head
        assert _info(here, version) == _info(origin, version)
        assert 0 < sum(read) < counts[0] // 4                          # only the touched buckets' entries
        if version == 3:
            assert here.record_status(withdrawn[0])["status"] == "withdrawn"
    assert here.record_status(revoked[0])["status"] == "revoked"
    assert here.record_status(amended[0])["status"] == origin.record_status(amended[0])["status"]
    assert here.record_status(withdrawn[0])["status"] == origin.record_status(withdrawn[0])["status"] != "withdrawn"
    assert here.consistency(DATASET, 1, 4) == origin.consistency(DATASET, 1, 4)
