"""A peer exchange's federation endpoints over HTTP (issue #19, docs/federation.md): its key set,
its catalogue of mirrorable datasets, a version's head and files, consistency proofs, and the
access reports this exchange owes it.

The API key (Bearer) goes with every call and into no message. Connection errors, 5xx and 429
are retried with backoff (connectors/retry.py); anything else that is not 2xx, and every
exhausted retry, is a SourceUnreachable naming the peer and the URL. Files are streamed to disk
and their SHA-256 checked against the one the version JSON gave.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import requests

from base.errors import DataError, SourceError
from connectors.base import redact
from connectors.retry import RETRY_STATUS, RetryPolicy, retry_after_seconds

log = logging.getLogger(__name__)
FILES = {"records": "records.parquet", "holders": "holders.parquet"}
CHUNK = 1 << 20


class SourceUnreachable(SourceError):
    """A peer that cannot be reached or answers with an error (exit 3): the sync fails, the
    mirrors stay at their last good state."""


class PeerClient:
    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0, *, peer: str | None = None,
                 policy: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep):
        self.url, self.peer = url.rstrip("/"), peer or url
        self.timeout, self.policy, self.sleep = timeout, policy or RetryPolicy(attempts=4), sleep
        self._key = api_key
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.bytes_in = 0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the calls
    def jwks(self) -> dict:
        return self._json("GET", "/v1/keys/jwks.json")

    def key_status(self) -> str | None:
        """The peer's signed key status document (compact JWS); None if it publishes none (404)."""
        resp = self._call("GET", "/v1/keys/key-status.jws", ok_missing=True)
        return None if resp is None else resp.text.strip()

    def datasets(self) -> dict:
        """`{"exchange", "datasets": [meta, ...]}`: what this exchange may mirror."""
        return self._json("GET", "/v1/federation/datasets")

    def version(self, dataset: str, version: int) -> dict:
        return self._json("GET", f"/v1/federation/datasets/{_q(dataset)}/versions/{int(version)}")

    def consistency(self, dataset: str, first: int, second: int) -> dict:
        return self._json("GET", f"/v1/logs/{_q(dataset)}/consistency", params={"from": first, "to": second})

    def report_access(self, reports: list[dict]) -> dict:
        return self._json("POST", "/v1/federation/access", body={"reports": reports})

    def download(self, dataset: str, version: int, name: str, dest: Path, sha256: str | None = None) -> Path:
        """Streams `records` or `holders` (the version's records.parquet / holders.parquet) to
        `dest`, checking the SHA-256 `sha256` (the version JSON's records_sha256/holders_sha256;
        fetched when not given). A file that does not match is removed and refused."""
        if name not in FILES:
            raise ValueError(f"unknown peer file {name!r}; known: {', '.join(FILES)}")
        if sha256 is None:
            sha256 = self.version(dataset, version)[f"{name}_sha256"]
        path = f"/v1/federation/datasets/{_q(dataset)}/versions/{int(version)}/{FILES[name]}"
        dest = Path(dest)
        for attempt in range(self.policy.attempts):
            resp = self._call("GET", path, stream=True)
            assert resp is not None
            digest, size = hashlib.sha256(), 0
            try:
                with resp, open(dest, "wb") as out:
                    for chunk in resp.iter_content(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            except requests.RequestException as exc:    # the connection dropped mid-file
                if attempt + 1 >= self.policy.attempts:
                    raise self._unreachable(path, f"{type(exc).__name__}: {exc}") from None
                self.sleep(self.policy.delay(attempt))
                continue
            self.bytes_in += size
            if digest.hexdigest() != sha256:
                dest.unlink(missing_ok=True)
                raise DataError(f"对端文件摘要不符 (file digest mismatch): peer {self.peer}: {FILES[name]} of "
                                f"{dataset} version {version} has SHA-256 {digest.hexdigest()}, its version "
                                f"JSON says {sha256}; nothing was mirrored", rule="peer: file sha256")
            return dest
        raise AssertionError("unreachable")  # pragma: no cover

    # the transport
    def _json(self, method: str, path: str, params: dict | None = None, body: dict | None = None):
        resp = self._call(method, path, params=params, body=body)
        assert resp is not None
        try:
            return resp.json()
        except ValueError:
            raise SourceUnreachable(f"对端应答不是 JSON (not JSON): peer {self.peer}: {method} {self.url}{path} "
                                    "answered something else; check the peer's URL") from None

    def _call(self, method: str, path: str, params: dict | None = None, body: dict | None = None,
              stream: bool = False, ok_missing: bool = False) -> requests.Response | None:
        url = self.url + path
        last = ""
        for attempt in range(self.policy.attempts):
            wait = self.policy.delay(attempt)
            try:
                resp = self.session.request(method, url, params=params, stream=stream,
                                            data=None if body is None else json.dumps(body, ensure_ascii=False),
                                            headers={"Content-Type": "application/json"} if body is not None else None,
                                            timeout=(min(10.0, self.timeout), self.timeout))
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 300:
                    if not stream:
                        self.bytes_in += len(resp.content)
                    return resp
                if ok_missing and resp.status_code == 404:
                    resp.close()
                    return None
                detail = _detail(resp)
                resp.close()
                if resp.status_code not in RETRY_STATUS:
                    hint = ("check the credential: the key of this exchange's department (role exchange) "
                            "at the peer" if resp.status_code in (401, 403) else "check the peer's URL")
                    raise self._unreachable(path, f"HTTP {resp.status_code} {resp.reason}{detail}; {hint}",
                                            status=resp.status_code)
                last = f"HTTP {resp.status_code} {resp.reason}"
                told = retry_after_seconds(resp.headers.get("Retry-After"))
                if told is not None:
                    if told > self.policy.max_retry_after:
                        raise self._unreachable(path, f"rate-limited with Retry-After {told:.0f}s; sync later")
                    wait = max(wait, told)
            if attempt + 1 < self.policy.attempts:
                log.warning("peer %s: %s %s: %s; retry %d/%d in %.2fs", self.peer, method, url,
                            self._clean(last), attempt + 1, self.policy.attempts - 1, wait)
                self.sleep(wait)
        raise self._unreachable(path, f"still failing after {self.policy.attempts} attempts ({last}); "
                                "check that the peer is up, then sync again")

    def _unreachable(self, path: str, why: str, status: int | None = None) -> SourceUnreachable:
        exc = SourceUnreachable(self._clean(f"对端不可达 (peer unreachable): peer {self.peer}: "
                                            f"{self.url}{path}: {why}"))
        exc.http_status = status  # type: ignore[attr-defined]
        return exc

    def _clean(self, text: str) -> str:
        return redact(text, [self._key])


def _q(name: str) -> str:
    return quote(name, safe="")


def _detail(resp: requests.Response) -> str:
    """The problem's detail (RFC 9457) the peer gave, if any, cut short."""
    try:
        d = resp.json()
    except ValueError:
        return ""
    text = d.get("detail") if isinstance(d, dict) else None
    return f": {str(text)[:300]}" if text else ""
