"""OpenLineage names of silos (https://openlineage.io/docs/spec/naming): host, port, database and
table or path, never a user, password or query; and the published datasets' namespace setting."""
from __future__ import annotations

import pytest

from registration import Registration

SECRET = "s3cret-pw"


@pytest.fixture
def lineage(capsys):
    with capsys.disabled():          # Airflow sets up its logging as it loads (the session's streams)
        from exchange import lineage
    return lineage


def _reg(connector: dict) -> Registration:
    return Registration(id="src", department="market_regulation", certificate_type="business_licence",
                        connector=connector, mapping={"licence_number": "zch", "holder_name": "qymc"})


@pytest.mark.parametrize(("connector", "expected"), [
    ({"kind": "sql", "url": f"postgresql+psycopg://etl:{SECRET}@db.example.gov.cn:6543/licences", "table": "zz.yyzz"},
     ("postgres://db.example.gov.cn:6543", "licences.zz.yyzz")),
    ({"kind": "sql", "url": f"postgresql+psycopg://etl:{SECRET}@db.example.gov.cn/licences", "table": "yyzz"},
     ("postgres://db.example.gov.cn:5432", "licences.public.yyzz")),
    ({"kind": "sql", "url": f"mysql+pymysql://root:{SECRET}@10.0.0.7/culture", "table": "travel"},
     ("mysql://10.0.0.7:3306", "culture.travel")),
    ({"kind": "http", "url": f"https://api:{SECRET}@api.hrss.example:8443/v1/?token={SECRET}",
      "path": "records", "fields": ["zch"]},
     ("https://api.hrss.example:8443", "/v1/records")),
])
def test_a_silo_is_named_without_its_credentials(lineage, connector, expected):
    assert lineage.silo_dataset(_reg(connector)) == expected


def test_a_silo_behind_an_airflow_connection_is_named_without_its_password(lineage, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SILO_PG", f"postgres://etl:{SECRET}@pg.example.gov.cn:5433/transport")
    namespace, name = lineage.silo_dataset(_reg({"kind": "sql", "conn_id": "silo_pg", "table": "permits"}))
    assert (namespace, name) == ("postgres://pg.example.gov.cn:5433", "transport.public.permits")


def test_file_silos_are_named_by_their_path(lineage, home, tmp_path):   # home: settings read afresh
    db = tmp_path / "silo.db"
    assert lineage.silo_dataset(_reg({"kind": "sql", "url": f"sqlite:///{db}", "table": "t"})) == (
        f"sqlite://{db}", "main.t")
    drops = tmp_path / "drops"
    assert lineage.silo_dataset(_reg({"kind": "files", "path": str(drops)})) == ("file", str(drops))


def test_the_published_namespace_follows_the_setting_or_the_dashboard(monkeypatch, home):
    from base.errors import ConfigError
    from base.settings import get_settings, reset_settings

    monkeypatch.setenv("EXCHANGE_DASHBOARD_URL", "https://exchange.example.gov.cn/")
    reset_settings()
    assert get_settings().lineage_namespace == "exchange://exchange.example.gov.cn"
    monkeypatch.setenv("EXCHANGE_LINEAGE_NAMESPACE", "exchange://city-exchange")
    reset_settings()
    assert get_settings().lineage_namespace == "exchange://city-exchange"
    monkeypatch.setenv("EXCHANGE_LINEAGE_NAMESPACE", f"exchange://admin:{SECRET}@host/path")
    reset_settings()
    with pytest.raises(ConfigError, match="EXCHANGE_LINEAGE_NAMESPACE"):
        get_settings()


def test_noting_does_nothing_while_openlineage_is_off_and_never_fails_a_task(lineage, monkeypatch, caplog):
    """Off (no transport): not even a lookup. On, outside a task (no context): a warning, the
    result still returned."""
    for name in ("AIRFLOW__OPENLINEAGE__TRANSPORT", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result, reg = {"rows": 3}, _reg({"kind": "files", "path": "drops"})
    _uncache(lineage)
    try:
        assert lineage.noted(reg, "extract", "k", result) is result
        assert not [r for r in caplog.records if "lineage" in r.getMessage()]
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", '{"type": "console"}')
        _uncache(lineage)
        assert lineage.noted(reg, "extract", "k", result) is result
        assert any("lineage: extract of source src not noted" in r.getMessage() for r in caplog.records)
        assert lineage._NOTED == {}
    finally:
        _uncache(lineage)


def _uncache(lineage) -> None:
    """The provider caches its settings, except under pytest (then there is nothing to clear)."""
    for f in (lineage.conf.is_disabled, lineage.conf.transport):
        getattr(f, "cache_clear", lambda: None)()
