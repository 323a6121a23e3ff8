"""exchange/mirroring.py::sync_peer on the real parts: the origin (district) is a real catalogue
in this process, two datasets published by the real pipeline, served by its real FastAPI app
(uvicorn on 127.0.0.1, a free port); the mirror is a second real catalogue (the test's own
EXCHANGE_HOME, its own signing key for cosigning). A small HTTP proxy in front of the origin
plays the lying or failing peer: it rewrites answers (a consistency proof, a head signed by a
key nobody pinned, a re-signed history) or goes down in the middle of a file."""
from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from base import clock
from base.settings import Settings, get_settings, reset_settings
from catalog.db.models import DatasetVersion
from catalog.service import Catalog
from tests.conftest import TEST_PASSPHRASE, TODAY, home_env, make_signing_key, stored

pytestmark = [pytest.mark.integration, pytest.mark.federation]
A, B = "business_licence.district_a", "business_licence.district_b"
SOURCES = {A: "district_a", B: "district_b"}
TEMPLATE = Path(__file__).resolve().parents[3] / "demo" / "registrations" / "smr_business_licence.toml"
PURPOSE = "DJ-SCJG-0003"
PEER = "district"
NAMES = {"origin": "district.example.gov.cn", "mirror": "province.example.gov.cn"}     # EXCHANGE_LOG_ORIGIN


# --- the origin: a real catalogue, published by the pipeline, served by its real app ---------
def _register(home: Path, source_id: str, dataset: str, seed: int) -> Path:
    from demo.synth import business_licences, write_sqlite

    silo = home.parent / "silos" / f"{source_id}.db"
    silo.parent.mkdir(parents=True, exist_ok=True)
    table, _ = business_licences(40, seed=seed, defect_rate=0.05, cosmetic_rate=0.0)
    write_sqlite(table, silo)
    text = (TEMPLATE.read_text("utf-8").replace("{silo}", str(silo))
            .replace('id = "smr_business_licence"', f'id = "{source_id}"\ndataset = "{dataset}"'))
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{source_id}.toml").write_text(text, encoding="utf-8")
    stored(sources / f"{source_id}.toml")
    return silo


class Origin:
    def __init__(self, home: Path):
        self.home, self.silos, self.runs = home, {}, 0
        self.settings = Settings(home=home, catalog_url=f"sqlite:///{home / 'catalog.db'}",
                                 sources_dir=home / "sources", log_origin=NAMES["origin"])

    @contextmanager
    def env(self):
        """This process as the origin (its home, its log origin) for a block."""
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("EXCHANGE_LOG_ORIGIN", NAMES["origin"])
            with home_env(self.home):
                yield

    def publish(self, dataset: str) -> int:
        """A new version of `dataset`: three licences amended in its silo, the pipeline run."""
        from exchange import stages

        self.runs += 1
        with sqlite3.connect(self.silos[dataset]) as db:
            db.execute("update yyzz_djxx set ZS = ZS || ? where rowid <= 3", (f"附{self.runs}号",))
        time.sleep(1.05)                                  # issued_at has second resolution
        with self.env():
            stages.run_all(SOURCES[dataset], f"o{self.runs}", TODAY)
        return self.current(dataset)

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog_url, self.settings.store)

    def current(self, dataset: str) -> int:
        with self.catalog.engine.connect() as c:
            return c.scalar(sa.text("select current_version from datasets where id = :d"), {"d": dataset})

    def info(self, dataset: str, version: int) -> dict:
        with self.catalog.session() as s:
            v = s.get(DatasetVersion, (dataset, version))
            return {"signed_tree_head": v.signed_tree_head, "head_hash": v.head_hash, "checkpoint": v.checkpoint,
                    "tree_size": v.tree_size}


def _serve(app) -> tuple[object, threading.Thread, int]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "origin app did not start"
    return server, thread, sock.getsockname()[1]


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    from api.app import create_app
    from exchange import stages

    home = tmp_path_factory.mktemp("origin") / "home"
    o = Origin(home)
    with o.env():
        make_signing_key()
        for seed, (dataset, source) in enumerate(SOURCES.items(), 101):
            o.silos[dataset] = _register(home, source, dataset, seed)
            stages.run_all(source, "o0", TODAY)
    o.publish(A)                                          # A at version 2, B at version 1
    app = create_app(o.settings, rate=10_000, burst=10_000, cache_ttl=0)
    access = app.state.consumer.access
    access.add_department("province-ex", "省级平台", "exchange")
    o.key = access.issue_credential("province-ex")["key"]
    server, thread, port = _serve(app)
    o.url, o.engine = f"http://127.0.0.1:{port}", app.state.consumer.engine
    o.kid = requests.get(f"{o.url}/v1/keys/jwks.json", timeout=10).json()["keys"][0]["kid"]
    yield o
    server.should_exit = True
    thread.join(10)


# --- a peer in front of the origin that lies or fails -----------------------------------------
class Proxy:
    """HTTP on 127.0.0.1 forwarding to the origin; `rewrite[path-prefix] = fn(json) -> json`
    changes answers, `cut` (a path suffix) sends half of that file and then the peer is `down`
    (every connection closed unanswered)."""

    def __init__(self, target: str):
        self.target, self.rewrite, self.cut, self.down = target, {}, None, False
        self.rewrite: dict[str, Callable[[dict], dict]]
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                if proxy.down:
                    self.close_connection = True
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                r = requests.request(self.command, proxy.target + self.path, data=body, headers=headers, timeout=30)
                content = r.content
                for prefix, fn in proxy.rewrite.items():
                    if self.path.startswith(prefix) and r.status_code == 200:
                        content = json.dumps(fn(r.json())).encode()
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if proxy.cut and self.path.endswith(proxy.cut):
                    self.wfile.write(content[: len(content) // 2])
                    self.wfile.flush()
                    proxy.down = True                     # the peer goes down mid-file
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(content)

            do_GET = do_POST = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(origin):
    p = Proxy(origin.url)
    yield p
    p.close()


# --- the mirror: this test's home, a second real catalogue ------------------------------------
@pytest.fixture
def mirror(home, origin, proxy, monkeypatch):
    from exchange import peers

    monkeypatch.setenv("EXCHANGE_LOG_ORIGIN", NAMES["mirror"])
    reset_settings()
    make_signing_key()                                    # the mirror's own key: it cosigns
    monkeypatch.setenv("AIRFLOW_CONN_DISTRICT_KEY", json.dumps({"conn_type": "http", "password": origin.key}))
    peers.add(PEER, proxy.url, origin.kid, credential="district_key", by="test")
    s = get_settings()
    return Catalog(s.catalog_url, s.store)


def _sync():
    from exchange.mirroring import sync_peer
    return sync_peer(PEER)


def _alerts() -> list[dict]:
    from catalog.ledger.service import Ledger
    return list(reversed(Ledger(get_settings().catalog_url).alerts()))


def _version(cat: Catalog, dataset: str, version: int):
    with cat.session() as s:
        v = s.get(DatasetVersion, (dataset, version))
        return None if v is None else (v.signed_tree_head, v.checkpoint, v.head_hash)


def _mirrored(dataset: str) -> dict:
    from exchange.peers import peers_store
    return peers_store().mirror(dataset)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_first_sync_then_new_versions_verified_mirrored_cosigned(origin, mirror):
    from catalog.federation import cosignatures
    from catalog.signing.keys import keystore_for
    from trust.cosign import verify_cosignature

    a, b = origin.current(A), origin.current(B)
    out = _sync()
    assert out["outcome"] == "ok" and out["error"] is None, out
    got = {d["dataset"]: d for d in out["datasets"]}
    assert {k: got[A][k] for k in ("dataset", "from", "to", "state", "error")} == \
        {"dataset": A, "from": None, "to": a, "state": "ok", "error": None}
    assert got[A]["records"] > 0 and got[B]["to"] == b and got[B]["state"] == "ok"
    assert all(d["seconds"] > 0 and d["bytes"] > 0 for d in got.values())
    from catalog.serving import audit
    assert {"peer_add", "peer_keys"} & set(audit.actions(mirror.engine)) == {"peer_add"}   # keys unchanged
    assert audit.verify_chain(mirror.engine).ok
    for ds, last in ((A, a), (B, b)):
        for v in range(1, last + 1):                      # the origin's heads, as it signed them
            assert _version(mirror, ds, v) == _version(origin.catalog, ds, v)
        assert _mirrored(ds)["version"] == last and _mirrored(ds)["state"] == "ok"

    from connectors.peer import PeerClient

    with PeerClient(origin.url, origin.key, peer=PEER) as c:     # the origin names itself, not this process
        assert c.datasets()["exchange"] == NAMES["origin"]
    settings = get_settings()
    assert settings.log_origin == NAMES["mirror"]
    vkey = keystore_for(settings).cosigner_vkey(NAMES["mirror"])
    cosigned = cosignatures.listing(mirror.engine, A)
    assert sorted(c["version"] for c in cosigned) == list(range(1, a + 1))
    for c in cosigned:
        assert c["checkpoint"] == origin.info(A, c["version"])["checkpoint"] and c["peer"] == PEER
        assert verify_cosignature(c["checkpoint"], c["cosignature"], vkey) > 0

    new = origin.publish(A)
    out = _sync()
    assert out["outcome"] == "ok", out
    got = {d["dataset"]: d for d in out["datasets"]}
    assert (got[A]["from"], got[A]["to"], got[B]["from"], got[B]["to"]) == (a, new, b, b)
    assert _version(mirror, A, new) == _version(origin.catalog, A, new)
    assert mirror.consistency(A, 1, new) == origin.catalog.consistency(A, 1, new)
    [c] = [c for c in cosignatures.listing(mirror.engine, A) if c["version"] == new]
    assert verify_cosignature(c["checkpoint"], c["cosignature"], vkey) > 0
    assert _alerts() == []


def test_a_bad_consistency_proof_is_refused_and_other_datasets_go_on(origin, mirror, proxy):
    from exchange.mirroring import PeerRefused, raise_for_outcome

    def lie(body: dict) -> dict:
        return {**body, "proof": ["ab" * 32 for _ in body["proof"]] or ["ab" * 32]}

    proxy.rewrite[f"/v1/logs/{A}/consistency"] = lie
    out = _sync()
    assert out["outcome"] == "refused", out
    got = {d["dataset"]: d for d in out["datasets"]}
    assert got[A]["state"] == "refused" and got[A]["to"] == 1 and "inconsistent" in got[A]["error"]
    assert got[B]["state"] == "ok" and got[B]["to"] == origin.current(B)
    assert _mirrored(A)["version"] == 1 and _mirrored(A)["state"] == "refused"   # the last good version
    assert _version(mirror, A, 2) is None and _version(mirror, A, 1) == _version(origin.catalog, A, 1)
    [alert] = _alerts()
    assert (alert["kind"], alert["dataset_id"], alert["dag_id"]) == ("peer_refused", A, f"peer__{PEER}")
    with pytest.raises(PeerRefused, match=f"peer refused.*peer {PEER}.*{A}") as exc:
        raise_for_outcome(out)
    assert exc.value.exit_code == 8


def _signed_again(keys, body: dict, **changes) -> dict:
    """A version JSON whose head `keys` signed again (with `changes` in its payload)."""
    from trust.heads import head_hash

    part = body["signed_tree_head"].split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    jws = keys.sign_tree_head({**payload, **changes})
    return {**body, "signed_tree_head": jws, "head_hash": head_hash(jws)}


def test_unpinned_key_and_rewritten_history_are_refused(origin, mirror, proxy, tmp_path):
    from catalog.signing.keys import KeyStore, keystore_for

    rogue = KeyStore(tmp_path / "rogue-keys", TEST_PASSPHRASE.encode())       # a key nobody pinned
    rogue.create(exist_ok=True)
    proxy.rewrite[f"/v1/federation/datasets/{A}/versions/2"] = lambda body: _signed_again(rogue, body)
    out = _sync()
    a = {d["dataset"]: d for d in out["datasets"]}[A]
    assert out["outcome"] == "refused" and a["to"] == 1 and "unknown_key" in a["error"], out
    assert _mirrored(A)["version"] == 1 and _version(mirror, A, 2) is None

    def rewritten(body: dict) -> dict:             # version 1 signed again by the origin, another time
        return _signed_again(keystore_for(origin.settings), body, issued_at="2030-01-01T00:00:00Z")

    proxy.rewrite = {f"/v1/federation/datasets/{A}/versions/1": rewritten}
    out = _sync()
    a = {d["dataset"]: d for d in out["datasets"]}[A]
    assert out["outcome"] == "refused" and a["state"] == "refused" and "rewrite" in a["error"], out
    assert _mirrored(A)["version"] == 1 and _version(mirror, A, 1) == _version(origin.catalog, A, 1)
    assert [x["kind"] for x in _alerts()] == ["peer_refused", "peer_refused"]


def test_a_name_taken_here_fails_that_dataset_only(origin, mirror, home, tmp_path):
    from exchange import stages

    _register(home, "local_b", B, seed=303)             # this exchange publishes B itself
    stages.run_all("local_b", "l1", TODAY)
    out = _sync()
    got = {d["dataset"]: d for d in out["datasets"]}
    assert out["outcome"] == "failed", out
    assert got[B]["state"] == "failed" and B in got[B]["error"]
    assert got[A]["state"] == "ok" and got[A]["to"] == origin.current(A)
    assert [x["kind"] for x in _alerts()] == ["peer_failed"]


def test_an_unreachable_peer_fails_alerts_and_exits_3(mirror, proxy):
    from connectors.peer import SourceUnreachable
    from exchange.mirroring import raise_for_outcome
    from exchange.peers import peers_store

    proxy.close()
    out = _sync()
    assert out["outcome"] == "failed" and out["datasets"] == [] and out["reports"] == 0, out
    assert "peer unreachable" in out["error"]
    row = peers_store().get(PEER)
    assert row["last_outcome"] == "failed" and "peer unreachable" in row["last_error"]
    assert [x["kind"] for x in _alerts()] == ["peer_failed"]
    with pytest.raises(SourceUnreachable) as exc:
        raise_for_outcome(out)
    assert exc.value.exit_code == 3


def test_access_reports_reach_the_origins_audit(origin, mirror):
    from catalog.federation import access_reports
    from catalog.serving import audit

    with origin.catalog.engine.connect() as c:
        rid, holder = c.execute(sa.text("select record_id, holder_key from records where dataset_id = :d "
                                        "order by leaf_index limit 1"), {"d": A}).one()
    access_reports.enqueue(mirror.engine, [{"peer": PEER, "at": clock.now(), "department": "province-tax",
                                            "purpose": PURPOSE, "action": "lookup", "holder": holder,
                                            "datasets": [A], "records": [rid]}])
    out = _sync()
    assert out["outcome"] == "ok" and out["reports"] == 1, out
    assert access_reports.due(mirror.engine, PEER, now=clock.now()) == []
    rows, _ = audit.holder_report(origin.engine, holder)
    [peer] = [r for r in rows if r["action"] == "peer_lookup"]
    assert (peer["department"], peer["purpose"], peer["on_behalf_of"]) == ("province-ex", PURPOSE, "province-tax")
    assert _sync()["reports"] == 0                        # delivered once


def test_a_peer_down_mid_file_keeps_nothing_and_the_next_sync_completes(origin, mirror, proxy):
    settings = get_settings()
    store_root = settings.store.local_path("")
    proxy.cut = f"/datasets/{A}/versions/2/records.parquet"
    out = _sync()
    assert out["outcome"] == "failed" and "peer unreachable" in out["error"], out
    assert "records.parquet" in out["error"] and proxy.down
    assert out["error"].count("对端不可达") == 1                             # said once
    [a] = out["datasets"]                    # the dataset it was on is in the summary; B never asked
    assert (a["dataset"], a["from"], a["to"], a["state"]) == (A, None, 1, "failed") and "records.parquet" in a["error"]
    assert _mirrored(A)["version"] == 1 and _mirrored(A)["state"] == "failed"
    assert _version(mirror, A, 2) is None
    before = _files(Path(store_root))
    assert settings.scratch_dir.is_dir() and not any(p.is_file() for p in settings.scratch_dir.rglob("*"))
    assert not [f for f in before if A in f and "v000002" in f]                # nothing of version 2 kept
    [alert] = _alerts()
    assert alert["kind"] == "peer_failed" and alert["message"].count("对端不可达") == 1

    proxy.cut, proxy.down = None, False
    out = _sync()
    assert out["outcome"] == "ok", out
    assert _mirrored(A)["version"] == origin.current(A) and _mirrored(A)["state"] == "ok"
    assert _version(mirror, A, 2) == _version(origin.catalog, A, 2)
    assert _files(Path(store_root)) > before
