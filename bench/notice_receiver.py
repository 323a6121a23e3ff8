"""The change notices' receiver for bench/notices.py, in its own process (so it does not share the
deliverer's GIL): HTTP/1.1 keep-alive on 127.0.0.1, answers every POST 204, counts the notices per
(path, Idempotency-Key), keeps one body in `SAMPLE` for signature checks. GET /stats answers its
counts, the sample and the wall-clock time (time.time()) of its last receipt as JSON.

    python -m bench.notice_receiver      # prints "port <n>" once listening; stops on SIGTERM
"""
from __future__ import annotations

import base64
import hashlib
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SAMPLE = 1000


class _Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.count, self.keys, self.sample, self.last = 0, set(), [], 0.0

    def take(self, path: str, key: str, body: bytes, signature: str) -> None:
        h = int.from_bytes(hashlib.blake2b(f"{path} {key}".encode(), digest_size=8).digest(), "big")
        with self.lock:
            self.count += 1
            self.keys.add(h)
            if self.count % SAMPLE == 1:
                self.sample.append([base64.b64encode(body).decode(), signature])
            self.last = time.time()

    def stats(self) -> bytes:
        with self.lock:
            return json.dumps({"received": self.count, "distinct_received": len(self.keys),
                               "sample": self.sample, "last": self.last}).encode()


def serve() -> ThreadingHTTPServer:
    counts = _Counts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            counts.take(self.path, self.headers.get("Idempotency-Key") or "", body,
                        self.headers.get("Exchange-Signature") or "")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            out = counts.stats() if self.path == "/stats" else b"{}"
            self.send_response(200 if self.path == "/stats" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def main() -> int:
    server = serve()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
