"""The demo's new silo kinds: every registration template parses, and the drop silos (GBK CSV
with traditional characters, XLSX) run the whole path."""
from __future__ import annotations

import pytest

from base.settings import get_settings
from demo import silos
from exchange import stages
from tests.conftest import TODAY, ledger, make_signing_key, stored

pytestmark = pytest.mark.integration


def test_demo_silos_make_five_departments_and_the_drops_publish(home, monkeypatch):
    import uuid

    from demo.sql_silos import drop_database

    prefix = f"t4_demo_{uuid.uuid4().hex[:6]}"
    made = silos.make(home, rows=300, db_prefix=prefix)
    request_cleanup = [(silos.PG, f"{prefix}_transport"), (silos.MARIADB, f"{prefix}_culture")]
    for k, v in made["environment"].items():
        monkeypatch.setenv(k, v)
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    make_signing_key()
    regs = []
    for t in silos.TEMPLATES:
        (sources / f"{t}.toml").write_text(silos.render(t, made["substitutions"]), encoding="utf-8")
        regs.append(stored(sources / f"{t}.toml"))
    assert len({r.department for r in regs}) == 5
    assert {r.connector["kind"] for r in regs} == {"sql", "http", "files"}
    csv = next((home / "drops" / "civil_affairs").glob("*.csv")).read_bytes()
    assert "臺".encode("gbk") in csv or "區".encode("gbk") in csv, "traditional characters, GBK bytes"
    today = TODAY
    for sid in ("civil_business_licence", "housing_business_licence"):
        result = stages.run_all(sid, "demo", today)
        assert result["state"] == "published" and result["tree_size"] > 250
        run = ledger().runs(sid)[0]
        assert run["extracted"] == 300 == run["accepted"] + run["quarantined"]
    for server, db in request_cleanup:
        try:
            drop_database(server, db)
        except Exception:
            pass
