"""Two sources feed one dataset and publish at the same moment (two threads, each past reading
the current version before either commits): the later version is built on the earlier one, so
no record of it vanishes unwithdrawn. SQLite and PostgreSQL."""
from __future__ import annotations

import shutil
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from demo.synth import make_business_licence_silo

DATASET = "business_licence.market_regulation"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, home, monkeypatch):
    from base.settings import reset_settings

    if request.param == "sqlite":
        yield
        return
    from tests.integration.conftest import fresh_pg_database

    with fresh_pg_database("t_race") as url:
        monkeypatch.setenv("EXCHANGE_CATALOG_URL", url)
        reset_settings()
        yield


def _ids(engine, version: int) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(sa.text(    # the record states version v holds (the log: appended at or before it)
            "select record_id from records where dataset_id = :d and version <= :v "
            "and (superseded_in is null or superseded_in > :v)"), {"d": DATASET, "v": version}).scalars())


def test_two_sources_publishing_at_once_lose_no_record(backend, home, silo_2k, tmp_path, monkeypatch):
    from catalog.publish import log_version
    from exchange import stages
    from tests.conftest import catalog, register_demo_source, stored

    full, first = tmp_path / "a_full.db", tmp_path / "a_first.db"
    shutil.copy(silo_2k[0], full)
    with sqlite3.connect(full) as c:    # no planted duplicates: a licence quarantined as one would
        c.execute("DELETE FROM yyzz_djxx WHERE ZCH IN "   # leave a version unwithdrawn by design
                  "(SELECT ZCH FROM yyzz_djxx GROUP BY ZCH HAVING count(*) > 1)")
    shutil.copy(full, first)
    with sqlite3.connect(first) as c:                  # source A's first pull lacks 500 licences
        c.execute("DELETE FROM yyzz_djxx WHERE rowid > 1500")
    silo_a = tmp_path / "a.db"
    shutil.copy(first, silo_a)
    make_business_licence_silo(tmp_path / "b.db", 300, seed=99)
    for source, silo in (("smr_a", silo_a), ("smr_b", tmp_path / "b.db")):   # one department: one dataset
        reg = register_demo_source(home, silo, source)
        with open(reg.path, "a", encoding="utf-8") as f:
            f.write("\n[gates]\nsize_change = 100\n")       # the size gate is not what is tested
        stored(reg.path)                                   # into the catalogue, where stages read it

    assert stages.run_all("smr_a", "a1")["version"] == 1
    shutil.copy(full, silo_a)                          # A's next pull adds those 500
    for source, key in (("smr_a", "a2"), ("smr_b", "b1")):
        stages.extract(source, key)
        stages.conform(source, key)
        stages.validate(source, key)

    both_read = threading.Barrier(2, timeout=60)
    waited = set()
    original = log_version.stage_log_version

    def publishable(*args):
        out = original(*args)                          # the current state has been read
        me = threading.get_ident()
        if me not in waited:
            waited.add(me)
            both_read.wait()                           # ...by both, before either publishes
        return out

    monkeypatch.setattr(log_version, "stage_log_version", publishable)
    results, errors = {}, []

    def publish(source, key):
        try:
            results[source] = stages.publish(source, key)
        except Exception as exc:      # noqa: BLE001 — reported below
            errors.append(f"{source}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=publish, args=a) for a in (("smr_a", "a2"), ("smr_b", "b1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(r["version"] for r in results.values()) == [2, 3]
    assert {r["state"] for r in results.values()} == {"published"}

    engine = catalog().engine
    v1, v2, v3 = (_ids(engine, v) for v in (1, 2, 3))
    assert v1 <= v2, f"{len(v1 - v2)} records of version 1 vanished from version 2"
    assert v2 <= v3, f"{len(v2 - v3)} records of version 2 vanished from version 3: it was built on version 1"
    assert len(v3) == len(v2 | v3) and len(v1) < len(v3)
