"""Real receivers for alerts on 127.0.0.1: a webhook (http.server in a thread) and an SMTP server
(a minimal one on socketserver: EHLO, MAIL, RCPT, DATA, QUIT), each keeping what it received."""
from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv.calls += 1
        if srv.delay:
            time.sleep(srv.delay)
        if srv.fail_first > 0:
            srv.fail_first -= 1
            self.send_response(srv.fail_status)
            self.end_headers()
            return
        srv.received.append({"path": self.path, "type": self.headers.get("Content-Type"),
                             "json": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class WebhookReceiver:
    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        self.server.received, self.server.calls = [], 0
        self.server.fail_first, self.server.fail_status, self.server.delay = 0, 500, 0.0
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def received(self) -> list[dict]:
        return [r["json"] for r in self.server.received]

    def wait_for(self, predicate, timeout: float) -> list[dict]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hits = [r for r in self.received if predicate(r)]
            if hits:
                return hits
            time.sleep(0.5)
        return []

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _SMTP(socketserver.StreamRequestHandler):
    def _w(self, line: str):
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self._w("220 sink ESMTP")
        sender, rcpt = None, []
        while line := self.rfile.readline():
            cmd = line.decode("utf-8", "replace").strip()
            up = cmd.upper()
            if up.startswith(("EHLO", "HELO")):
                self._w("250 sink")
            elif up.startswith("MAIL FROM:"):
                sender, rcpt = cmd[10:].strip(" <>"), []
                self._w("250 OK")
            elif up.startswith("RCPT TO:"):
                rcpt.append(cmd[8:].strip(" <>"))
                self._w("250 OK")
            elif up == "DATA":
                self._w("354 end with <CR><LF>.<CR><LF>")
                data = []
                while (part := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    data.append(part[1:] if part.startswith(b"..") else part)
                msg = email.message_from_bytes(b"".join(data), policy=email.policy.default)
                self.server.messages.append({"from": sender, "to": rcpt, "message": msg})
                self._w("250 OK queued")
            elif up == "QUIT":
                self._w("221 bye")
                return
            else:
                self._w("250 OK" if up in ("RSET", "NOOP") else "502 not implemented")


class SMTPReceiver:
    def __init__(self):
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
        self.server.daemon_threads = True
        self.server.messages = []
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def messages(self) -> list[dict]:
        return self.server.messages

    def close(self):
        self.server.shutdown()
        self.server.server_close()
