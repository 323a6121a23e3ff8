"""A department's licence API, for tests and the demo, with faults that can be switched on.

    python -m demo.silo_server --rows 2000 --port 8765 --auth bearer --secret-env SILO_SECRET
    python -m demo.silo_server --rows-file rows.parquet --conn-id silo_hrss_api --auth bearer

GET /licences with ?page=&page_size=, ?offset=&limit= or ?cursor=&limit=, optional
?updated_since= (on GXSJ); POST /licences takes the same parameters as a JSON body.
Answers {"data": [...], "total": N, "next_cursor": "..."|null}. Listens on 127.0.0.1 only.
Faults: POST /_faults with a JSON object of Faults fields (or set server.faults in code).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pyarrow.parquet as pq

from connectors.credentials import airflow_connection
from connectors.http_auth import signature, signed_message
from demo.synth import business_licences


@dataclass
class Faults:
    error_at_page: int | None = None   # this page (1-based) answers error_status ...
    error_times: int = 0               # ... this many times, then recovers
    error_status: int = 500
    rate_limit_every: int = 0          # every Nth request answers 429 with Retry-After
    retry_after: str = "1"
    slow: float = 0.0                  # seconds before every answer
    bad_json_at_page: int | None = None
    bad_json_times: int = 0
    wrong_shape_at_page: int | None = None   # records of that page miss a field
    drop_at_page: int | None = None    # the connection is cut mid-answer (server going down)
    drop_times: int = 0
    down: bool = False                 # every connection is cut at once


@dataclass
class Log:
    requests: list = field(default_factory=list)   # (method, path with query, status)


class SiloServer:
    def __init__(self, rows: list[dict], port: int = 0, auth: str = "none", secret: str | None = None,
                 auth_header: str | None = None, watermark: str = "GXSJ"):
        self.rows, self.auth, self.secret, self.watermark = rows, auth, secret, watermark
        self.auth_header = auth_header or {"api_key": "X-API-Key", "hmac": "X-Signature"}.get(auth)
        self.faults, self.log, self._n = Faults(), Log(), 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> SiloServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- answering ------------------------------------------------------------------
    def authorised(self, method: str, url: str, headers, body: bytes) -> bool:
        if self.auth == "none":
            return True
        if self.auth == "bearer":
            return headers.get("Authorization") == f"Bearer {self.secret}"
        if self.auth == "api_key":
            return headers.get(self.auth_header) == self.secret
        want = signature(self.secret, signed_message(method, url, body))
        return headers.get(self.auth_header, "") == want

    def answer(self, params: dict) -> tuple[int, dict]:
        rows = self.rows
        since = params.get("updated_since")
        if since:
            rows = [r for r in rows if (r.get(self.watermark) or "") > since]
        limit = int(params.get("page_size") or params.get("limit") or 100)
        if "page" in params:
            page = int(params["page"])
            start = (page - 1) * limit
        elif "cursor" in params:
            start = int(base64.urlsafe_b64decode(params["cursor"].encode()).decode())
            page = start // limit + 1
        else:
            start = int(params.get("offset") or 0)
            page = start // limit + 1
        chunk = rows[start:start + limit]
        end = start + len(chunk)
        nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(rows) else None
        return page, {"data": chunk, "total": len(rows), "next_cursor": nxt}

    def take(self, name: str, page: int) -> bool:
        """Whether fault `name` fires on this page (and count it down)."""
        with self._lock:
            f = self.faults
            if getattr(f, f"{name}_at_page") == page and getattr(f, f"{name}_times") > 0:
                setattr(f, f"{name}_times", getattr(f, f"{name}_times") - 1)
                return True
            return False

    def next_request(self) -> int:
        with self._lock:
            self._n += 1
            return self._n


def _handler(silo: SiloServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):   # quiet; silo.log keeps what tests need
            pass

        def _send(self, status: int, payload, headers: dict | None = None, raw: bytes | None = None):
            body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            silo.log.requests.append((self.command, self.path, status))

        def _cut(self, partial: bytes = b"") -> None:
            """Die mid-answer: headers promise more than is sent, then the socket closes."""
            silo.log.requests.append((self.command, self.path, "cut"))
            if partial:
                self.send_response(200)
                self.send_header("Content-Length", str(len(partial) * 4))
                self.end_headers()
                self.wfile.write(partial)
                self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_faults":
                for k, v in json.loads(body or b"{}").items():
                    if not hasattr(silo.faults, k):
                        return self._send(400, {"error": f"unknown fault {k}", "known": list(asdict(silo.faults))})
                    setattr(silo.faults, k, v)
                return self._send(200, asdict(silo.faults))
            self._serve(json.loads(body or b"{}"), body)

        def do_GET(self):
            self._serve(dict(parse_qsl(urlsplit(self.path).query)), b"")

        def _serve(self, params: dict, body: bytes):
            f = silo.faults
            n = silo.next_request()
            if f.slow:
                time.sleep(f.slow)
            if f.down:
                return self._cut()
            if urlsplit(self.path).path.rstrip("/") != "/licences":
                return self._send(404, {"error": "no such resource"})
            if not silo.authorised(self.command, self.path, self.headers, body):
                return self._send(401, {"error": "not authorised"})
            if f.rate_limit_every and n % f.rate_limit_every == 0:
                return self._send(429, {"error": "slow down"}, {"Retry-After": f.retry_after})
            try:
                page, payload = silo.answer(params)
            except (ValueError, TypeError) as exc:
                return self._send(400, {"error": str(exc)})
            if silo.take("error", page):
                return self._send(f.error_status, {"error": "internal error"})
            if silo.take("drop", page):
                return self._cut(json.dumps(payload, ensure_ascii=False).encode()[:200])
            if silo.take("bad_json", page):
                return self._send(200, None, raw=json.dumps(payload, ensure_ascii=False).encode()[:-7])
            if f.wrong_shape_at_page == page and payload["data"]:
                payload["data"] = [{k: v for k, v in r.items() if k != "TYSHXYDM"} for r in payload["data"]]
            self._send(200, payload)

    return Handler


def licence_rows(n: int, seed: int = 7) -> list[dict]:
    """Rows of demo/synth.py's business licences, ID as a number (APIs send numbers)."""
    return business_licences(n, seed=seed)[0].to_pylist()


def _from_connection(conn_id: str) -> tuple[int, str | None]:
    c = airflow_connection(conn_id, f"silo server ({conn_id})")
    port = urlsplit(c.host or "").port or c.port
    if not port:
        raise SystemExit(f"silo_server: connection {conn_id!r} names no port (host {c.host!r})")
    return port, c.password


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="silo_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000)
    p.add_argument("--rows-file", help="serve the rows of this Parquet file instead of licences")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--auth", choices=["none", "bearer", "api_key", "hmac"], default="none")
    p.add_argument("--secret-env", help="environment variable holding the token/key/HMAC secret")
    p.add_argument("--conn-id", help="take the port (from its host URL) and the secret (its password) "
                                     "from this Airflow connection, as the source's runs do")
    for name, typ in (("error-at-page", int), ("error-times", int), ("rate-limit-every", int),
                      ("slow", float), ("bad-json-at-page", int), ("drop-at-page", int)):
        p.add_argument(f"--{name}", type=typ)
    args = p.parse_args(argv)
    secret = os.environ.get(args.secret_env) if args.secret_env else None
    if args.conn_id:
        args.port, secret = _from_connection(args.conn_id)
    if args.rows_file:
        rows = pq.read_table(args.rows_file).to_pylist()
    else:
        rows = licence_rows(args.rows, args.seed)
    silo = SiloServer(rows, args.port, args.auth, secret)
    for name in ("error_at_page", "error_times", "rate_limit_every", "slow", "bad_json_at_page", "drop_at_page"):
        if getattr(args, name) is not None:
            setattr(silo.faults, name, getattr(args, name))
    silo.faults.bad_json_times = 1 if args.bad_json_at_page else 0
    silo.faults.drop_times = 1 if args.drop_at_page else 0
    print(f"silo API on {silo.url}/licences ({len(rows)} rows, auth {args.auth}); Ctrl-C stops",
          flush=True)
    try:
        silo.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
