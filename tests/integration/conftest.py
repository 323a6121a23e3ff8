"""Integration fixtures: real database servers on 127.0.0.1 (PostgreSQL and MariaDB; each test
module gets its own database, dropped afterwards; where a server is absent its tests skip
saying so), and a small published catalogue shared by the API tests."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from tests.alertsinks import WebhookReceiver

SERVERS = {
    "postgresql": os.environ.get("EXCHANGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("EXCHANGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql"),
}


def server_url(kind: str) -> str:
    url = SERVERS[kind]
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as c:
            c.exec_driver_sql("SELECT 1")
    except Exception as exc:
        pytest.skip(f"{kind} is not reachable at {sa.make_url(url).render_as_string()} "
                    f"({type(exc).__name__}); set EXCHANGE_TEST_{'PG' if kind == 'postgresql' else 'MARIADB'}")
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="module")
def silo_rows():
    from demo.synth import business_licences
    from tests.conftest import TODAY

    return business_licences(6_000, seed=5, today=TODAY)


def _seeded(kind: str, silo_rows):
    from demo.sql_silos import create_database, seed

    server = server_url(kind)
    name = f"t4_{kind[:2]}_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    seed(url, silo_rows[0])
    return server, name, url


@pytest.fixture(scope="module")
def pg_silo(silo_rows):
    from demo.sql_silos import drop_database

    server, name, url = _seeded("postgresql", silo_rows)
    yield url
    drop_database(server, name)


@pytest.fixture(scope="module")
def maria_silo(silo_rows):
    from demo.sql_silos import drop_database

    server, name, url = _seeded("mariadb", silo_rows)
    yield url
    drop_database(server, name)


@pytest.fixture(scope="session")
def published(tmp_path_factory, silo_2k):
    """Settings of a home with one published business-licence dataset."""
    from base.settings import Settings
    from exchange import stages
    from tests.conftest import home_env, register_demo_source

    home = tmp_path_factory.mktemp("api") / "home"
    with home_env(home):
        register_demo_source(home, silo_2k[0])
        stages.run_all("smr_business_licence", "api-r1")
    return Settings(home=home, catalog_url=f"sqlite:///{home / 'catalog.db'}", sources_dir=home / "sources")


@pytest.fixture(scope="session")
def published_pg(tmp_path_factory, silo_2k):
    """`published` with its catalogue on PostgreSQL (a database of its own, dropped afterwards)."""
    from base.settings import Settings, reset_settings
    from catalog.db.engine import engine_for
    from exchange import stages
    from tests.conftest import home_env, register_demo_source

    server = sa.make_url(server_url("postgresql"))
    name = f"exchange_api_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'create database "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    home = tmp_path_factory.mktemp("api-pg") / "home"
    with home_env(home), pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXCHANGE_CATALOG_URL", url)
        reset_settings()
        register_demo_source(home, silo_2k[0])
        stages.run_all("smr_business_licence", "api-r1")
    reset_settings()
    yield Settings(home=home, catalog_url=url, sources_dir=home / "sources")
    engine_for.cache_clear()
    with admin.connect() as c:
        c.exec_driver_sql(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api_settings(request):
    """The published catalogue on each backend the API serves from."""
    return request.getfixturevalue("published" if request.param == "sqlite" else "published_pg")


@pytest.fixture
def hook():
    """A real webhook receiver on 127.0.0.1 (tests/alertsinks.py)."""
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_catalogue(request, tmp_path):
    """A catalogue URL two "machines" (homes) share: an SQLite file, and a PostgreSQL database
    of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared-catalog.db'}"
        return
    with fresh_pg_database("t_shared") as url:
        yield url


@contextmanager
def fresh_pg_database(prefix: str):
    """A PostgreSQL database of its own (its URL), dropped afterwards with the catalogue's
    cached engines forgotten."""
    from catalog.db.engine import engine_for, reader_for

    server = sa.make_url(server_url("postgresql"))
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'create database "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        engine_for.cache_clear()
        reader_for.cache_clear()
        with admin.connect() as c:
            c.exec_driver_sql(f'drop database if exists "{name}" with (force)')
        admin.dispose()
