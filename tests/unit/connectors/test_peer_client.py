"""connectors/peer.py against a real HTTP server on 127.0.0.1 serving canned federation answers:
the Bearer key on every call, retries on 5xx, files streamed with their SHA-256 checked, and
errors that name the peer and the URL, never the key."""
from __future__ import annotations

import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from base.errors import DataError
from connectors.peer import PeerClient, SourceUnreachable
from connectors.retry import RetryPolicy

pytestmark = pytest.mark.federation
KEY = "ex_secret_key_1234567890"


def _parquet(rows: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"record_id": [f"r{i}" for i in range(rows)]}), out)
    return out.getvalue()


class Peer:
    """Canned answers by path; a list of answers is served in turn (the last one repeats)."""

    def __init__(self):
        self.routes: dict[str, list] = {}
        self.seen: list[tuple[str, str, str | None, bytes]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
                answers = peer.routes.get(self.path) or [(404, {"detail": "no such route"})]
                status, payload = answers.pop(0) if len(answers) > 1 else answers[0]
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def client(url: str) -> PeerClient:
    return PeerClient(url, KEY, 5.0, peer="district", policy=RetryPolicy(attempts=3, backoff=0.0),
                      sleep=lambda s: None)


def test_calls_carry_the_bearer_key_and_decode_json(peer):
    peer.routes = {"/v1/keys/jwks.json": [(200, {"keys": [{"kid": "k1"}]})],
                   "/v1/keys/key-status.jws": [(200, b"eyJ.a.b\n")],
                   "/v1/federation/datasets": [(200, {"exchange": "district.example", "datasets": []})],
                   "/v1/federation/datasets/bl.smr/versions/3": [(200, {"dataset": "bl.smr", "version": 3})],
                   "/v1/logs/bl.smr/consistency?from=2&to=3": [(200, {"proof": ["00" * 32]})],
                   "/v1/federation/access": [(200, {"accepted": 1})]}
    with client(peer.url + "/") as c:
        assert c.jwks() == {"keys": [{"kid": "k1"}]}
        assert c.key_status() == "eyJ.a.b"
        assert c.datasets()["exchange"] == "district.example"
        assert c.version("bl.smr", 3)["version"] == 3
        assert c.consistency("bl.smr", 2, 3)["proof"] == ["00" * 32]
        assert c.report_access([{"id": 1, "purpose": "DJ-1"}]) == {"accepted": 1}
    assert {auth for _, _, auth, _ in peer.seen} == {f"Bearer {KEY}"}
    assert json.loads(peer.seen[-1][3]) == {"reports": [{"id": 1, "purpose": "DJ-1"}]}


def test_no_key_status_is_none(peer):
    with client(peer.url) as c:
        assert c.key_status() is None


def test_server_errors_are_retried_then_answered(peer):
    peer.routes = {"/v1/federation/datasets": [(503, {}), (502, {}), (200, {"datasets": [1]})]}
    with client(peer.url) as c:
        assert c.datasets() == {"datasets": [1]}
    assert len(peer.seen) == 3


def test_refusals_and_exhausted_retries_name_peer_and_url_never_the_key(peer):
    peer.routes = {"/v1/federation/datasets": [(403, {"detail": f"role consumer may not mirror {KEY}"})],
                   "/v1/keys/jwks.json": [(500, {})]}
    with client(peer.url) as c:
        with pytest.raises(SourceUnreachable) as refused:
            c.datasets()
        with pytest.raises(SourceUnreachable) as down:
            c.jwks()
    for exc in (refused.value, down.value):
        assert "peer district" in str(exc) and KEY not in str(exc) and exc.exit_code == 3
    assert f"{peer.url}/v1/federation/datasets: HTTP 403" in str(refused.value)
    assert "check the credential" in str(refused.value) and refused.value.http_status == 403
    assert "after 3 attempts" in str(down.value) and down.value.http_status is None


def test_an_unreachable_peer_is_source_unreachable(peer):
    url = peer.url
    peer.close()
    with client(url) as c, pytest.raises(SourceUnreachable, match=r"peer district: .*/v1/federation/datasets"):
        c.datasets()


def test_download_streams_and_checks_the_sha256(peer, tmp_path):
    data = _parquet(1000)
    digest = hashlib.sha256(data).hexdigest()
    base = "/v1/federation/datasets/bl.smr/versions/2"
    peer.routes = {f"{base}/records.parquet": [(200, data)], f"{base}/holders.parquet": [(200, data)],
                   base: [(200, {"holders_sha256": digest})]}
    with client(peer.url) as c:
        path = c.download("bl.smr", 2, "records", tmp_path / "records.parquet", digest)
        assert path.read_bytes() == data and pq.read_metadata(path).num_rows == 1000
        assert c.download("bl.smr", 2, "holders", tmp_path / "holders.parquet").read_bytes() == data
        assert c.bytes_in >= 2 * len(data)
        with pytest.raises(DataError, match="file digest mismatch.*records.parquet of bl.smr version 2"):
            c.download("bl.smr", 2, "records", tmp_path / "bad.parquet", "0" * 64)
        assert not (tmp_path / "bad.parquet").exists()
        with pytest.raises(ValueError, match="unknown peer file"):
            c.download("bl.smr", 2, "index", tmp_path / "x")
