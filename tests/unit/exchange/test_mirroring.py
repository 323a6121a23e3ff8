"""exchange/mirroring.py::sync_peer against a real HTTP peer on 127.0.0.1 serving canned
federation answers (heads, real RFC 9162 consistency proofs, parquet files with their SHA-256).
The modules other helpers write at the same time (trust.peer_keys, catalog.federation.*) are
minimal stand-ins defined HERE, in sys.modules for the test only; the end-to-end tests
(tests/federation/) run the real ones."""
from __future__ import annotations

import hashlib
import io
import json
import sys
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from base.errors import ConfigError, NotFound, VerificationError
from tests.unit.connectors.test_peer_client import Peer
from trust.merkle import leaf_hash, node_hash

pytestmark = pytest.mark.federation


# RFC 9162 §2.1.1 / §2.1.4.1: the origin's tree and its consistency proofs
def mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if whole else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, d[:k], whole) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


# stand-ins for the modules other helpers write (same names as the spec)
class MirrorRefused(VerificationError):
    def __init__(self, kind: str, message: str):
        Exception.__init__(self, f"镜像被拒绝 (mirror refused, {kind}): {message}")
        self.kind, self.step, self.step_name, self.detail = kind, 0, kind, message


class PeerKeyError(VerificationError):
    def __init__(self, message: str):
        Exception.__init__(self, message)
        self.step, self.step_name, self.detail = 0, "peer key", message


class World:
    """The stand-ins' shared state: the peer row, mirrors, what was mirrored and cosigned."""

    def __init__(self, url: str):
        self.peer = {"name": "district", "url": url, "credential": None, "keys": [{"kid": "k1", "status": "active"}],
                     "key_status": None}
        self.mirrors: dict[str, dict] = {}
        self.synced, self.cosigned, self.failed_marks, self.delivered = [], [], [], []
        self.reports = [{"id": 7, "at": "2026-12-07T10:00:00+08:00", "department": "tax", "purpose": "DJ-1",
                         "action": "lookup", "holder": "h", "datasets": ["bl.smr"], "records": ["r1"]}]
        self.ours: dict[tuple[str, int], dict] = {}       # our stored (size, root) of a mirrored version


def stand_ins(world: World) -> dict[str, types.ModuleType]:
    peers = types.ModuleType("catalog.federation.peers")

    class Peers:
        def __init__(self, engine):
            self.engine = engine

        def get(self, name):
            assert name == "district"
            return world.peer

        def set_keys(self, name, keys, key_status):
            world.peer |= {"keys": keys, "key_status": key_status}

        def mirror(self, dataset):
            return world.mirrors[dataset]

        def mirror_failed(self, dataset, state, error, now):
            if dataset not in world.mirrors:
                raise NotFound(f"no mirror {dataset}")
            world.failed_marks.append((dataset, state, error))
            world.mirrors[dataset] |= {"state": state, "last_error": error}

        def record_sync(self, name, outcome, error, now):
            world.synced.append((outcome, error))

        def list(self):
            return [world.peer | {"mirrors": list(world.mirrors.values())}]

    peers.Peers = Peers

    mirror = types.ModuleType("catalog.federation.mirror")
    mirror.MirrorRefused = MirrorRefused

    def ensure_mirror(catalog, peer, meta, now):
        if meta["dataset"] == "local.taken":
            raise ConfigError("数据集已存在 (dataset taken): local.taken is this exchange's own")
        world.mirrors.setdefault(meta["dataset"], {"dataset": meta["dataset"], "version": None,
                                                   "head_hash": None, "state": "ok"})
        return meta["dataset"]

    def check_known(catalog, dataset, info):
        if info["head_hash"] != world.mirrors[dataset]["head_hash"]:
            raise MirrorRefused("rewrite", f"{dataset} version {info['version']} differs")

    def mirror_version(catalog, peer, dataset, info, records, holders, scratch, now):
        assert records.exists() and holders.exists() and records.parent == scratch
        head = json.loads(info["signed_tree_head"])
        world.mirrors[dataset] |= {"version": info["version"], "head_hash": info["head_hash"], "state": "ok"}
        world.ours[(dataset, info["version"])] = {"first_size": head["tree_size"], "first_root": head["root_hash"]}
        return {"version": info["version"]}

    mirror.ensure_mirror, mirror.check_known, mirror.mirror_version = ensure_mirror, check_known, mirror_version

    cosigs = types.ModuleType("catalog.federation.cosignatures")
    cosigs.add = lambda engine, ds, v, peer, note, line, kid, now: world.cosigned.append((ds, v, peer, note, line, kid))

    reports = types.ModuleType("catalog.federation.access_reports")
    reports.due = lambda engine, peer, limit, now: [r for r in world.reports if r["id"] not in world.delivered]
    reports.delivered = lambda engine, ids, now: world.delivered.extend(ids)
    reports.failed = lambda engine, ids, error, now: None

    keys = types.ModuleType("trust.peer_keys")
    keys.PeerKeyError = PeerKeyError

    def follow(pinned, jwks, key_status):
        return [{"kid": k["kid"], "status": "active"} for k in jwks["keys"]
                if k["kid"] in {p["kid"] for p in pinned} or k.get("endorsed")]

    def verify_peer_head(signed_head, pinned):
        payload = json.loads(signed_head)            # the stand-in's "JWS": the payload itself
        if payload["kid"] not in {k["kid"] for k in pinned}:
            raise PeerKeyError(f"未固定的密钥 (unpinned key) {payload['kid']}")
        return payload

    keys.follow, keys.verify_peer_head = follow, verify_peer_head
    return {m.__name__: m for m in (peers, mirror, cosigs, reports, keys)}


def parquet(n: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"record_id": [f"r{i}" for i in range(n)]}), out)
    return out.getvalue()


def serve_dataset(peer: Peer, ds: str, sizes: list[int], kid: str = "k1", log_from: int = 1,
                  bad_proof_at: int | None = None, kids: dict | None = None) -> None:
    """Versions 1..len(sizes) of `ds` at the peer, version v's tree having sizes[v-1] leaves."""
    leaves = [f"{ds}-{i}".encode() for i in range(max(sizes))]
    base = f"/v1/federation/datasets/{ds}/versions"
    for v, size in enumerate(sizes, 1):
        root = mth(leaves[:size]).hex()
        files = {"records": parquet(size - (sizes[v - 2] if v > 1 else 0)), "holders": parquet(3)}
        head = {"dataset": ds, "version": v, "tree_size": size, "root_hash": root, "kid": (kids or {}).get(v, kid)}
        peer.routes[f"{base}/{v}"] = [(200, {
            "dataset": ds, "version": v, "first_leaf": sizes[v - 2] if v > 1 else 0, "tree_size": size,
            "record_count": size, "signed_tree_head": json.dumps(head), "checkpoint": f"{ds}\n{size}\n{root}\n",
            "head_hash": f"h{v}", "previous_head_hash": f"h{v - 1}" if v > 1 else None,
            **{f"{n}_sha256": hashlib.sha256(b).hexdigest() for n, b in files.items()}})]
        for n, b in files.items():
            peer.routes[f"{base}/{v}/{n}.parquet"] = [(200, b)]
        for m in range(1, v):
            proof = [p.hex() for p in subproof(sizes[m - 1], leaves[:size], True)]
            if v == bad_proof_at:
                proof = ["ab" * 32 for _ in proof]
            peer.routes[f"/v1/logs/{ds}/consistency?from={m}&to={v}"] = [(200, {"proof": proof})]


@pytest.fixture
def world(home, monkeypatch):
    peer = Peer()
    w = World(peer.url)
    w.http = peer
    for name, module in stand_ins(w).items():
        monkeypatch.setitem(sys.modules, name, module)
        parent, _, leaf = name.rpartition(".")
        if parent in sys.modules:          # `from package import module` reads the attribute
            monkeypatch.setattr(sys.modules[parent], leaf, module, raising=False)
    import catalog.signing.keys
    import exchange.mirroring as mirroring

    class Catalog:
        engine = object()

        def consistency(self, ds, a, b):
            assert a == b
            return w.ours[(ds, a)]

    class Keys:
        def cosign(self, note, name, now):
            return f"— {name} witness-sig-of-{hashlib.sha256(note.encode()).hexdigest()[:8]}", "kid-w"

    monkeypatch.setattr(mirroring, "open_catalog", lambda settings=None: Catalog())
    monkeypatch.setattr(catalog.signing.keys, "keystore_for", lambda settings: Keys())
    w.alerts = []
    monkeypatch.setattr("exchange.alerts.send", lambda alert, *a, **k: w.alerts.append(alert) or [])
    peer.routes["/v1/keys/jwks.json"] = [(200, {"keys": [{"kid": "k1"}]})]
    peer.routes["/v1/federation/access"] = [(200, {"accepted": 1})]
    yield w
    peer.close()


def served_bytes(peer: Peer, ds: str) -> int:
    """Bytes of every answer the peer gave about `ds` (version JSONs, files, proofs)."""
    def size(payload) -> int:
        return len(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    return sum(size(peer.routes[path][-1][1]) for _, path, _, _ in peer.seen if f"/{ds}/" in path)


def listing(peer: Peer, *metas: dict) -> None:
    peer.routes["/v1/federation/datasets"] = [(200, {"exchange": "district.example", "datasets": list(metas)})]


def test_first_sync_then_new_versions_verified_mirrored_cosigned(world):
    from exchange.mirroring import sync_peer

    serve_dataset(world.http, "bl.smr", [4, 6, 11])
    listing(world.http, {"dataset": "bl.smr", "version": 2, "log_from": 1})
    out = sync_peer("district")
    assert out["outcome"] == "ok", out
    assert out["reports"] == 1 and world.delivered == [7]
    [entry] = out["datasets"]
    assert entry.pop("seconds") > 0
    # the bytes downloaded for it: each version's JSON and two files, the consistency proof
    assert entry.pop("bytes") == served_bytes(world.http, "bl.smr") > 2 * len(parquet(6))
    assert entry == {"dataset": "bl.smr", "from": None, "to": 2, "records": 6, "state": "ok", "error": None}
    assert [(c[0], c[1], c[5]) for c in world.cosigned] == [("bl.smr", 1, "kid-w"), ("bl.smr", 2, "kid-w")]
    assert world.cosigned[0][4].startswith("— exchange.local witness-sig-of-")
    listing(world.http, {"dataset": "bl.smr", "version": 3, "log_from": 1})
    out = sync_peer("district")
    entry = out["datasets"][0]
    assert entry.pop("seconds") > 0 and entry.pop("bytes") > 0
    assert entry | {"records": None} == {"dataset": "bl.smr", "from": 2, "to": 3, "records": None,
                                         "state": "ok", "error": None}
    assert world.mirrors["bl.smr"]["version"] == 3 and world.synced[-1] == ("ok", None)
    assert world.alerts == []


def test_a_bad_consistency_proof_is_refused_and_other_datasets_go_on(world):
    from exchange.mirroring import PeerRefused, raise_for_outcome, sync_peer

    serve_dataset(world.http, "bl.smr", [4, 6], bad_proof_at=2)
    serve_dataset(world.http, "fl.food", [2])
    listing(world.http, {"dataset": "bl.smr", "version": 2}, {"dataset": "fl.food", "version": 1})
    out = sync_peer("district")
    assert out["outcome"] == "refused"
    bl, fl = out["datasets"]
    assert bl["state"] == "refused" and bl["to"] == 1 and "inconsistent" in bl["error"]
    assert fl.pop("seconds") >= 0 and fl.pop("bytes") > 0
    assert fl == {"dataset": "fl.food", "from": None, "to": 1, "records": 2, "state": "ok", "error": None}
    assert world.mirrors["bl.smr"]["version"] == 1                      # the last good state kept
    assert world.failed_marks[0][:2] == ("bl.smr", "refused")
    [alert] = world.alerts
    assert alert.kind == "peer_refused" and alert.dataset == "bl.smr" and alert.dag_id == "peer__district"
    assert world.synced[-1][0] == "refused" and "bl.smr" in world.synced[-1][1]
    with pytest.raises(PeerRefused, match="peer refused.*peer district.*bl.smr") as exc:
        raise_for_outcome(out)
    assert exc.value.exit_code == 8


def test_unpinned_key_and_rewritten_history_are_refused(world):
    from exchange.mirroring import sync_peer

    serve_dataset(world.http, "bl.smr", [4, 6], kids={2: "k-rogue"})
    listing(world.http, {"dataset": "bl.smr", "version": 2})
    out = sync_peer("district")
    assert out["datasets"][0]["to"] == 1 and "unknown_key" in out["datasets"][0]["error"]
    assert "k-rogue" in out["datasets"][0]["error"]
    world.mirrors["bl.smr"]["head_hash"] = "something-else"            # the peer now shows another v1
    out = sync_peer("district")
    assert out["outcome"] == "refused" and "rewrite" in out["datasets"][0]["error"]
    assert [a.kind for a in world.alerts] == ["peer_refused", "peer_refused"]


def test_a_name_taken_here_fails_that_dataset_only(world):
    from exchange.mirroring import sync_peer

    serve_dataset(world.http, "fl.food", [2])
    listing(world.http, {"dataset": "local.taken", "version": 1}, {"dataset": "fl.food", "version": 1})
    out = sync_peer("district")
    assert out["outcome"] == "failed" and out["datasets"][1]["state"] == "ok"
    assert out["datasets"][0]["state"] == "failed" and "dataset taken" in out["datasets"][0]["error"]
    assert [a.kind for a in world.alerts] == ["peer_failed"]


def test_an_unreachable_peer_fails_alerts_and_exits_3(world):
    from connectors.peer import SourceUnreachable
    from exchange.mirroring import raise_for_outcome, sync_peer

    world.http.close()
    out = sync_peer("district")
    assert out["outcome"] == "failed" and out["datasets"] == [] and out["reports"] == 0
    assert world.synced[-1][0] == "failed" and "peer unreachable" in world.synced[-1][1]
    assert [a.kind for a in world.alerts] == ["peer_failed"]
    with pytest.raises(SourceUnreachable) as exc:
        raise_for_outcome(out)
    assert exc.value.exit_code == 3
