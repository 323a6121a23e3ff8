"""A run that holds only its changed rows (log_version.Delta) is published in proportion to its
change (catalog/publish/log_delta.py): for each version of a real silo changing between runs,
the LogVersion built from the run's scope and the map's touched buckets equals, essential by
essential, stage_log_version's over the whole current state with the same Delta, on SQLite
and PostgreSQL; it reads a few rows, not the dataset, unless the map's bits change."""
from __future__ import annotations

import re
import shutil
import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from base import staging
from base.settings import get_settings, reset_settings
from catalog.publish import log_delta, log_version
from catalog.signing import vmap
from exchange import stages
from tests.conftest import TODAY, catalog, register_demo_source
from tests.integration.catalog.test_log_migration import upgraded  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration
SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"
TABLE = "yyzz_djxx"
ALL: list[str] = []


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, home, monkeypatch):
    """The catalogue on SQLite (the default) or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    from tests.integration.conftest import fresh_pg_database

    with fresh_pg_database("t_delta") as url:      # skips, saying why, when the server is absent
        monkeypatch.setenv("EXCHANGE_CATALOG_URL", url)
        reset_settings()
        yield request.param


def _essentials(lv: log_version.LogVersion) -> dict:
    return {"first_leaf": lv.first_leaf, "leaves": lv.leaves.tobytes(), "appended": lv.appended,
            "record_ids": lv.record_ids, "record_count": lv.record_count, "bits": lv.map.bits,
            "root": lv.map.root(), "buckets": lv.map.hashes.tobytes(), "changes": lv.changes,
            "held": lv.held, "withdrawn_now": lv.withdrawn_now}


class DeltaRuns:
    """stages._publish_version in place: the run's full accepted and conformed files are cut to
    the rows of `licences` (the held ones' accepted rows dropped too: quarantined), both builds
    are compared, and the cut run is published with its Delta, as change detection would."""

    def __init__(self, original):
        self.original = original
        self.licences: list[str] | None = None       # None: a full run; ALL: a Delta of every row
        self.held: list[str] = []
        self.log: list[dict] = []

    def __call__(self, catalog, reg, run, keys, accepted, conformed, scratch, delta=None, on=None,
                 carried_rows=None):
        assert delta is None, "the runs are full (EXCHANGE_CHANGE_DETECTION=0): this test cuts them itself"
        if self.licences is None:
            return self.original(catalog, reg, run, keys, accepted, conformed, scratch)
        acc, conf = staging.read_table(accepted), staging.read_table(conformed)
        numbers = (pc.unique(conf.column("licence_number").combine_chunks()) if self.licences is ALL
                   else pa.array(self.licences, pa.string()))
        in_acc = pc.is_in(acc.column("licence_number"), value_set=numbers)
        cut_acc = acc.filter(pc.and_(in_acc, pc.invert(pc.is_in(acc.column("licence_number"),
                                                                value_set=pa.array(self.held, pa.string())))))
        cut_conf = conf.filter(pc.is_in(conf.column("licence_number"), value_set=numbers))
        carried = acc.filter(pc.and_(pc.invert(in_acc), pc.not_equal(acc.column("status"), "withdrawn"))).num_rows
        delta = log_version.Delta(numbers, carried)
        carried_rows = acc.num_rows - int(pc.sum(pc.cast(in_acc, pa.int64())).as_py() or 0)
        paths = []
        for name, table in (("cut_accepted", cut_acc), ("cut_conformed", cut_conf)):
            path = staging.transient(scratch, name)
            with staging.transient_writer(path, table.schema) as w:
                w.write_table(table)
            paths.append(path)

        _, state, versions, size = catalog.current_state(reg.dataset)
        full = log_version.stage_log_version(*paths, state, versions, catalog.store, reg.dataset, reg.ctype, size,
                                             scratch / "full", delta)
        calls = []
        real = log_version.current_state

        def counted(*args):
            calls.append(args)
            return real(*args)

        statements = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            statements.append((statement, parameters))

        log_version.current_state = counted
        sa.event.listen(catalog.engine, "before_cursor_execute", seen)
        try:
            _, versions2, size2, base = catalog.delta_base(reg.dataset)
            part = log_delta.stage_delta_version(*paths, base, versions2, catalog.store, reg.dataset, reg.ctype,
                                                 size2, scratch / "part", delta, carried_rows)
        finally:
            log_version.current_state = real
            sa.event.remove(catalog.engine, "before_cursor_execute", seen)
        if catalog.engine.dialect.name == "sqlite" and not calls:      # every read of records by an index
            with catalog.engine.connect() as c:
                plans = [(q, c.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}", p).all())
                         for q, p in statements if "FROM records" in q]
            assert len(plans) >= 3
            for q, plan in plans:       # a range of one index, never all the current rows
                on = [row[-1] for row in plan if " records " in row[-1]]
                assert on and all(re.search(_BY_INDEX, d) for d in on), (q, plan)
        assert (versions2, size2) == (versions, size)
        assert _essentials(part) == _essentials(full)
        self.log.append({"state": state.num_rows, "rows_read": base.reader.rows_read, "whole": len(calls),
                         "bits": (base.map.bits if base.map else None, part.map.bits), "lv": full,
                         "record_ids": full.record_ids})      # read from its scratch, gone after the run
        return self.original(catalog, reg, run, keys, *paths, scratch, delta, catalog.current_version(reg.dataset)[0],
                             carried_rows)


# a read of records: by the primary key, or by a partial index of the current records (migration 0020)
_BY_INDEX = (r"^SEARCH records USING (PRIMARY KEY \(record_id[=>]|(COVERING )?INDEX ix_records_dataset_"
             r"(current|licence|withdrawn) "
             r"\(dataset_id=\? AND (record_id|licence_number|status)[=<>])")


def _rows(db, number: str) -> list[dict]:
    db.row_factory = sqlite3.Row
    return [dict(r) for r in db.execute(f"select * from {TABLE} where ZCH = ?", (number,))]


def _insert(db, row: dict) -> None:
    cols = ", ".join(f'"{c}"' for c in row)
    db.execute(f"insert into {TABLE} ({cols}) values ({', '.join('?' * len(row))})", list(row.values()))


def _new_number(i: int) -> str:
    return f"99{i:013d}"


def _new_row(db, like: str, number: str, holder_of: str) -> dict:
    """A new silo row: `like`'s row with licence number `number` and the holder of `holder_of`."""
    row = dict(_rows(db, like)[0], ZCH=number)
    holder = _rows(db, holder_of)[0]
    row.update(TYSHXYDM=holder["TYSHXYDM"], QYMC=holder["QYMC"])
    row.pop("ID", None)
    return row


def _proportional(entry: dict, scope: int) -> None:
    """No whole state read; rows fetched: the scope's and the touched buckets' (about 64 each)."""
    lv = entry["lv"]
    touched = len({vmap.bucket_of(r, lv.map.bits) for r in entry["record_ids"]})
    assert entry["whole"] == 0 and entry["bits"][0] == entry["bits"][1], entry
    assert entry["rows_read"] <= scope + 2 * vmap.PER_BUCKET * touched < entry["state"], entry


def _run(runs: DeltaRuns, key: str, licences: list[str] | None, held: list[str] = ()) -> dict:
    runs.licences, runs.held = licences, list(held)
    return stages.run_all(SOURCE, key, TODAY)


def test_delta_versions_equal_the_whole_states(backend, home, silo_2k, tmp_path, monkeypatch):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    runs = DeltaRuns(stages._publish_version)
    monkeypatch.setenv("EXCHANGE_CHANGE_DETECTION", "0")
    monkeypatch.setattr(stages, "_publish_version", runs)
    monkeypatch.setattr(log_delta, "RANGE_BUCKETS", 3)     # adjacent touched buckets: ranges of 3 at most
    first = _run(runs, "r1", ALL)            # the first version, from a Delta: no map yet, built whole
    n1 = first["records"]
    assert (runs.log[0]["whole"], runs.log[0]["bits"], runs.log[0]["lv"].changes.new) == (1, (None, 5), n1)
    runs.log.clear()
    cat = catalog()
    with cat.engine.connect() as c:
        numbers = c.execute(sa.text(
            "select licence_number from records where superseded_in is null and status = 'valid' "
            "and valid_to is null order by leaf_index")).scalars().all()
    with sqlite3.connect(silo) as db:
        single = [n for n in numbers if len(_rows(db, n)) == 1]
        amended, revoked, withdrawn, moved, held, untouched, twin = single[:7]
        db.execute(f"update {TABLE} set ZS = ZS || '附1号' where ZCH = ?", (amended,))
        db.execute(f"update {TABLE} set DJZT = '吊销' where ZCH = ?", (revoked,))
        db.execute(f"delete from {TABLE} where ZCH = ?", (withdrawn,))
        # a new holder: a new record id, the old one withdrawn
        db.execute(f"update {TABLE} set TYSHXYDM = ? where ZCH = ?",
                   (_rows(db, twin)[0]["TYSHXYDM"], moved))
        _insert(db, _new_row(db, untouched, _new_number(0), single[7]))
    v2 = _run(runs, "r2", [amended, revoked, withdrawn, moved, held, untouched, _new_number(0)], held=[held])
    lv = runs.log[-1]["lv"]
    assert v2["version"] == 2 and lv.changes.new == 2 and lv.changes.withdrawn == 2     # moved's old id too
    assert (lv.held, lv.withdrawn_now, lv.changes.changed) == (1, 2, 2)
    with cat.engine.connect() as c:        # the changes, read from the states version 2 appended
        appended = c.execute(sa.text("select record_id from records where version = 2")).scalars().all()
    assert {h["change"] for rid in appended for h in cat.record_status(rid)["history"] if h["version"] == 2} \
        == {"added", "amended", "revoked", "withdrawn"}

    with sqlite3.connect(silo) as db:          # amended again; the withdrawn stays gone, in scope
        db.execute(f"update {TABLE} set ZS = ZS || '附2号' where ZCH = ?", (amended,))
    _run(runs, "r3", [amended, withdrawn, held])
    lv = runs.log[-1]["lv"]
    assert lv.changes.still_withdrawn == 2 and lv.changes.changed == 1 and lv.held == 0

    for entry in runs.log:               # in proportion: the scope and the touched buckets, not the state
        _proportional(entry, scope=7)

    # enough new records to cross a bits_for boundary: the map is built whole, still equal
    count = runs.log[-1]["lv"].record_count
    bits = vmap.bits_for(count)
    more = (vmap.PER_BUCKET << bits) - count + 1
    with sqlite3.connect(silo) as db:
        new = [_new_number(i) for i in range(1, 1 + more)]
        for i, n in enumerate(new):
            _insert(db, _new_row(db, untouched, n, single[8 + i]))
    _run(runs, "r4", new)
    crossed = runs.log[-1]
    assert crossed["bits"] == (bits, bits + 1) and crossed["whole"] == 1
    assert crossed["lv"].record_count == count + more and crossed["lv"].changes.new == more

    with sqlite3.connect(silo) as db:          # on the new bits: in proportion again
        db.execute(f"update {TABLE} set ZS = ZS || '附3号' where ZCH = ?", (amended,))
    _run(runs, "r5", [amended])
    last = runs.log[-1]
    assert last["bits"] == (bits + 1, bits + 1)
    _proportional(last, scope=1)
    assert n1 < count
    with cat.engine.connect() as c:      # the published map is the whole current state's
        state = log_version.current_state(c, get_settings().store, DATASET)
        head = c.execute(sa.text("select map_root, record_count from dataset_versions "
                                 "order by version desc limit 1")).one()
    assert (log_version.state_map(state).root().hex(), state.num_rows) == tuple(head)
    live = pc.sum(pc.cast(pc.not_equal(state.column("status"), "withdrawn"), pa.int64())).as_py()
    assert cat.current_size(DATASET) == live == state.num_rows - 2       # record count less the withdrawn
    assert cat.current_records_by_licence(DATASET, [amended, withdrawn, "none"]) == {
        n: rid for n, rid in zip(state.column("licence_number").to_pylist(), state.column("record_id").to_pylist())
        if n in (amended, withdrawn)}
    assert np.array_equal(log_version.state_map(state).hashes, last["lv"].map.hashes)


def test_a_catalogue_from_before_the_log_takes_delta_runs(upgraded, home, monkeypatch):  # noqa: F811
    """The prelog catalogue (test_log_migration.py): the first Delta run after the upgrade has
    no map to start from and builds it whole (the version adopts the old tree); the next one
    rehashes its buckets, whose older records' leaf hashes come from the adopted tree.bin."""
    from tests.integration.catalog.test_log_migration import DATASET as OLD
    from tests.integration.catalog.test_log_migration import SOURCE as OLD_SOURCE
    from tests.integration.catalog.test_log_migration import _fifth_record

    cat = catalog()
    register_demo_source(home, upgraded)
    runs = DeltaRuns(stages._publish_version)
    monkeypatch.setenv("EXCHANGE_CHANGE_DETECTION", "0")
    monkeypatch.setattr(stages, "_publish_version", runs)
    numbers = []
    for key in ("r3", "r4"):
        numbers.append(_fifth_record(cat, upgraded))
        with sqlite3.connect(upgraded) as db:
            db.execute(f"update {TABLE} set ZS = ZS || '附{key}' where ZCH = ?", (numbers[-1],))
        runs.licences, runs.held = list(numbers), []
        assert stages.run_all(OLD_SOURCE, key, TODAY)["version"] == int(key[1])
    adopted, after = runs.log
    assert (adopted["whole"], adopted["bits"], adopted["lv"].first_leaf) == (1, (None, 2), 200)
    assert adopted["lv"].changes.changed == 1 and after["lv"].changes.changed == 1
    _proportional(after, scope=2)
    with cat.engine.connect() as c:
        pre_log = c.execute(sa.text("select count(*) from records where superseded_in is null "
                                    "and leaf_hash is null")).scalar()
        state = log_version.current_state(c, get_settings().store, OLD)
    assert pre_log == 198 and after["rows_read"] > 2        # read leaf by leaf from tree.bin
    assert log_version.state_map(state).root() == after["lv"].map.root()
