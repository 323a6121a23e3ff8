"""A department's webhook receiver for change notices, as an outsider would write one: a real
HTTP server on 127.0.0.1 (ephemeral port) that verifies EVERY notice's detached JWS with PyJWT
(a library the exchange does not use) against the exchange's JWKS before it accepts it, and
keeps one copy per Idempotency-Key. It can answer 503 for a while, or go down (its socket
closed) and come back on the same port.

    with Receiver(jwks=lambda: {...}) as rx:      # rx.url: give it to `exchange departments endpoint`
        ...; rx.down(); ...; rx.up(); rx.events   # [(idempotency key, seq, event)], first copies only
"""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import rfc8785

from tests.conftest import free_port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def verify(body: bytes, signature: str, jwks: dict) -> dict:
    """The event, once its detached JWS (`header..signature`, RFC 7515 Appendix F) verifies
    with the JWKS key its kid names; raises otherwise."""
    protected, empty, sig = signature.split(".")
    if empty:
        raise ValueError("the signature is not detached (its payload part is not empty)")
    header = jwt.get_unverified_header(f"{protected}.{b64url(body)}.{sig}")
    match = [k for k in jwks["keys"] if k.get("kid") == header["kid"]]
    if not match or header.get("alg") != "EdDSA":
        raise ValueError(f"unknown key {header.get('kid')} or alg {header.get('alg')}")
    key = jwt.PyJWK(match[0]).key
    payload = jwt.api_jws.PyJWS().decode(f"{protected}.{b64url(body)}.{sig}", key, algorithms=["EdDSA"])
    if payload != body:
        raise ValueError("signed bytes differ from the body")
    event = json.loads(body)
    if rfc8785.dumps(event) != body:
        raise ValueError("the body is not RFC 8785 canonical JSON")
    return event


class Receiver:
    def __init__(self, jwks: Callable[[], dict], port: int | None = None):
        self.jwks, self.port = jwks, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/notices"
        self.lock = threading.Lock()
        self.events: list[tuple[str, int, dict]] = []     # first copy per idempotency key
        self.posts: list[tuple[str, int]] = []             # every accepted POST (duplicates too)
        self.rejected: list[str] = []                      # what failed verification
        self.status = 200                                  # what it answers a good notice with
        self.server: ThreadingHTTPServer | None = None

    def _handler(self):
        rx = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"          # keep-alive, as the exchange's sessions expect

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key, seq = self.headers.get("Idempotency-Key", ""), int(self.headers.get("Exchange-Notice-Seq", "0"))
                try:
                    if not self.headers.get("Content-Type", "").startswith("application/cloudevents+json"):
                        raise ValueError(f"content type {self.headers.get('Content-Type')}")
                    event = verify(body, self.headers.get("Exchange-Signature", ""), rx.jwks())
                    if event["id"] != key:
                        raise ValueError("Idempotency-Key is not the event id")
                except Exception as exc:  # noqa: BLE001 - a receiver refuses what it cannot verify
                    with rx.lock:
                        rx.rejected.append(f"{type(exc).__name__}: {exc}")
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with rx.lock:
                    status = rx.status
                    if status < 300:
                        rx.posts.append((key, seq))
                        if key not in {k for k, _, _ in rx.events}:
                            rx.events.append((key, seq, event))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    def up(self) -> Receiver:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        """Gone: the port refuses connections until `up()`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> Receiver:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()
