"""Test tiers: tests/unit (fast), tests/integration (real databases, servers, files),
tests/e2e (DAGs under real Airflow). Each test gets its own EXCHANGE_HOME."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Airflow reads its configuration on import: point it at a throwaway home first.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="exchange-airflow-"))
os.environ.update({
    "EXCHANGE_ROOT": str(ROOT),
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
    "GX_ANALYTICS_ENABLED": "false",
    "SCARF_ANALYTICS": "false",
    "DO_NOT_TRACK": "1",
})
TEST_PASSPHRASE = "correct horse battery staple"

from base import clock  # noqa: E402  (light: no Airflow, no database)

# One notion of "today" for the whole session, read once: every fixture that makes data "as of
# today" and every stage that checks "as of" a date (here, in subprocesses and in Airflow tasks)
# shares it, even across midnight. CI also runs the suite under a clock moved forward.
TODAY = clock.today()
os.environ[clock.TODAY_ENV] = TODAY.isoformat()


@pytest.fixture(scope="session", autouse=True)
def silo_roots(tmp_path_factory):
    """File silos (drops, SQLite) of the tests live under pytest's temporary folder: the one
    root they may be read from (EXCHANGE_SILO_ROOTS), as a deployment lists its own."""
    root = tmp_path_factory.getbasetemp().resolve()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXCHANGE_SILO_ROOTS", str(root))
        yield root


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    from base.settings import reset_settings

    h = tmp_path / "home"
    monkeypatch.setenv("EXCHANGE_HOME", str(h))
    monkeypatch.delenv("EXCHANGE_CATALOG_URL", raising=False)
    monkeypatch.delenv("EXCHANGE_SOURCES_DIR", raising=False)
    monkeypatch.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
    reset_settings()
    yield h
    reset_settings()


def make_signing_key() -> str | None:
    """The home's first signing key, made as `exchange keys create` makes it (signing never
    makes one). The helpers that register a source to publish call it; a test that publishes
    otherwise calls it itself."""
    from base.settings import get_settings
    from catalog.signing.keys import KeyStore

    s = get_settings()
    return KeyStore(s.keys_dir, s.key_passphrase()).create(exist_ok=True)


@contextmanager
def home_env(home: Path):
    """EXCHANGE_HOME = home for a block (module-scoped fixtures cannot use `monkeypatch`)."""
    from base.settings import reset_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXCHANGE_HOME", str(home))
        mp.delenv("EXCHANGE_CATALOG_URL", raising=False)
        mp.delenv("EXCHANGE_SOURCES_DIR", raising=False)
        mp.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
        reset_settings()
        yield
    reset_settings()


@pytest.fixture(scope="session")
def silo_2k(tmp_path_factory):
    """A small market-regulation silo with planted defects, and its manifest."""
    from demo.synth import make_business_licence_silo

    path = tmp_path_factory.mktemp("silo") / "market_regulation.db"
    manifest = make_business_licence_silo(path, 2_000, seed=11)
    return path, manifest


def register_demo_source(home: Path, silo: Path, source_id: str = "smr_business_licence"):
    from base.settings import get_settings

    make_signing_key()
    template = (ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")
    text = template.replace("{silo}", str(silo)).replace('id = "smr_business_licence"', f'id = "{source_id}"')
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{source_id}.toml").write_text(text, encoding="utf-8")
    return stored(sources / f"{source_id}.toml")


def register_sample(home: Path, type_name: str, silo: Path):
    """Register the sample registration of `type_name` against a silo file."""
    from base.settings import get_settings
    from demo.synth_types import sample_registration

    make_signing_key()
    reg = sample_registration(type_name)
    text = reg.path.read_text("utf-8").replace("{silo}", str(silo))
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{reg.id}.toml").write_text(text, encoding="utf-8")
    return stored(sources / f"{reg.id}.toml")


def store_unchecked(source_id: str, text: str, origin: str | None = None) -> None:
    """A registration's text put in the catalogue as it is, unchecked: as an older exchange
    stored one that this one no longer parses (or as a hand edit of the table would)."""
    import hashlib

    import sqlalchemy as sa

    from base import clock
    from catalog.db.models import StoredRegistration

    t, now = StoredRegistration.__table__, clock.now()
    with catalog().engine.begin() as c:
        c.execute(sa.delete(t).where(t.c.source_id == source_id))
        c.execute(sa.insert(t).values(source_id=source_id, toml=text, origin=origin, registered_at=now,
                                      updated_at=now, sha256=hashlib.sha256(text.encode()).hexdigest()))


def toml_value(v) -> str:
    import json
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(v, ensure_ascii=False)


def register_source(home: Path, source_id: str, connector: dict, status_map: dict | None = None,
                    department: str | None = None):
    """The demo registration with another connector section (and id)."""
    from base.settings import get_settings

    make_signing_key()
    text = (ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")
    head, rest = text.split("[connector]", 1)
    rest = rest[rest.index("[mapping]"):]
    head = head.replace('id = "smr_business_licence"', f'id = "{source_id}"')
    if department:
        head = head.replace('department = "market_regulation"', f'department = "{department}"')
    conn = "\n".join(f"{k} = {toml_value(v)}" for k, v in connector.items())
    if status_map:
        rest = rest[:rest.index("[status_map]")] + "[status_map]\n" + "\n".join(
            f"{toml_value(k)} = {toml_value(v)}" for k, v in status_map.items()) + "\n"
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    path = sources / f"{source_id}.toml"
    path.write_text(f"{head}[connector]\n{conn}\n\n{rest}", encoding="utf-8")
    return stored(path)


def stored(path: Path):
    """A registration file in the catalogue, as `exchange sources sync` puts it there (what
    every DAG parse and stage reads); its registration."""
    import registration
    from exchange.sources import store_file

    store_file(path)
    return registration.load(path)


def catalog():
    from base.settings import get_settings
    from catalog.service import Catalog

    s = get_settings()
    return Catalog(s.catalog_url, s.store)


def ledger():
    from base.settings import get_settings
    from catalog.ledger.service import Ledger

    return Ledger(get_settings().catalog_url)


def dashboard_login(client, key: str, next_page: str = "/dashboard/"):
    """Log a FastAPI TestClient in to the dashboard as a browser does: the login form's CSRF
    token, posted from the dashboard's own origin."""
    import re

    form = client.get("/dashboard/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    return client.post("/dashboard/login", data={"key": key, "next": next_page, "csrf": token},
                       headers={"Origin": str(client.base_url).rstrip("/")}, follow_redirects=False)


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(url: str) -> bool:
    """Whether a database server answers at this SQLAlchemy URL."""
    import sqlalchemy as sa

    try:
        sa.create_engine(url, poolclass=sa.pool.NullPool).connect().close()
        return True
    except Exception:
        return False


def wait_until_serving(server, port: int, seconds: float = 60) -> None:
    """Until `exchange serve` (the process `server`) answers /health on 127.0.0.1:port."""
    import http.client
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.2)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto's) on 127.0.0.1 for the session; yields its endpoint URL.
    Credentials are any (moto checks none); s3_store sets them."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_server, monkeypatch):
    """A fresh bucket on s3_server as a Store (s3://<bucket>/exchange), with the environment a
    worker would have: AWS_* credentials, EXCHANGE_S3_ENDPOINT_URL and EXCHANGE_S3_REGION
    (EXCHANGE_STORE_URL is left to the test: `monkeypatch.setenv("EXCHANGE_STORE_URL", s3_store.url())`)."""
    import uuid

    import pyarrow.fs as pafs

    from base.settings import reset_settings
    from base.storage import Store

    for name, value in {"AWS_ACCESS_KEY_ID": "exchange-test", "AWS_SECRET_ACCESS_KEY": "exchange-test-secret",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                        "EXCHANGE_S3_ENDPOINT_URL": s3_server, "EXCHANGE_S3_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    bucket = f"exchange-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(endpoint_override=s3_server.split("://")[1], scheme="http", region="us-east-1",
                      allow_bucket_creation=True).create_dir(bucket)
    reset_settings()
    yield Store.from_url(f"s3://{bucket}/exchange", endpoint_url=s3_server, region="us-east-1")
    reset_settings()
