"""HTTP API silos through requests: page-number, offset or cursor pagination.

Every call has a timeout; connection errors, 5xx and 429 are retried with exponential backoff
and jitter (Retry-After honoured), a bounded number of times; the page loop is bounded by
max_pages. A page whose shape is wrong is refused, naming the source, the page and the field.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import pyarrow as pa
import requests

from base.errors import ConfigError, DataError, SourceError
from connectors.base import as_text, batch_from_rows, redact, string_schema
from connectors.credentials import secret_from
from connectors.http_auth import make_auth
from connectors.retry import RETRY_STATUS, RetryPolicy, retry_after_seconds
from registration.connector import HttpSettings

log = logging.getLogger(__name__)


class HttpConnector:
    def __init__(self, settings: HttpSettings, source_id: str,
                 sleep: Callable[[float], None] = time.sleep):
        self.settings, self.source_id, self.sleep = settings, source_id, sleep
        self.high_water: str | None = settings.since
        self.requests = 0
        self._secret: str | None = None

    def columns(self) -> list[str]:
        return list(self.settings.fields)

    def _session(self) -> tuple[requests.Session, str]:
        s = self.settings
        secret, extra = secret_from(s.conn_id, s.secret_env, self.source_id, "the API secret")
        self._secret = secret
        base = s.url or extra.get("host")
        if not base:
            raise ConfigError(f"source {self.source_id}: connection {s.conn_id!r} has no host (the API's base URL)")
        if s.auth != "none" and not secret:
            raise ConfigError(f"source {self.source_id}: auth {s.auth!r} needs a secret: the "
                              f"password of connection {s.conn_id!r} (or secret_env for development)")
        session = requests.Session()
        session.auth = make_auth(s.auth, secret, s.auth_header or extra.get("auth_header"))
        return session, base.rstrip("/") + "/" + s.path.lstrip("/")

    def batches(self) -> Iterator[pa.RecordBatch]:
        s = self.settings
        schema = string_schema(s.fields)
        session, url = self._session()
        cursor, newest = None, s.since
        first, last = (s.part["first"], s.part["last"]) if s.part else (1, None)
        try:
            for n in range(first, (last or s.max_pages) + 1):
                payload = self._page(session, url, n, self._paging(n, cursor))
                records = self._records(payload, n)
                rows = [self._row(r, n, i) for i, r in enumerate(records)]
                if s.watermark and rows:
                    seen = [r[s.fields.index(s.watermark)] for r in rows]
                    newest = max([v for v in seen if v] + ([newest] if newest else []), default=newest)
                if rows:
                    yield batch_from_rows(rows, schema)
                if s.pagination == "cursor":
                    nxt = _dig(payload, s.next_cursor, missing=KeyError)
                    if nxt is KeyError:
                        raise self._shape(n, f"has no field {s.next_cursor!r} (the next cursor)")
                    if nxt in (None, ""):
                        break
                    if nxt == cursor:
                        raise self._shape(n, f"returned the same cursor {nxt!r} again")
                    cursor = nxt
                elif len(rows) < s.page_size:
                    break
            else:
                if last is None:            # (a partition ends at its last page)
                    raise SourceError(f"source {self.source_id}: more than max_pages={s.max_pages} pages at "
                                      f"{url}; raise max_pages if the silo really is that large")
        finally:
            session.close()
        self.high_water = newest

    def total(self) -> int:
        """The number of records the API says it holds (field `total` of its first page)."""
        s = self.settings
        session, url = self._session()
        try:
            payload = self._page(session, url, 1, self._paging(1, None))
        finally:
            session.close()
        count = _dig(payload, s.total or "", missing=KeyError) if isinstance(payload, dict) else KeyError
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise self._shape(1, f"has no record count {s.total!r} (a whole number) to plan partitions by"
                              if count is KeyError else f"field {s.total!r} is {count!r}, not a record count")
        return count

    def _paging(self, n: int, cursor) -> dict:
        s = self.settings
        params = dict(s.params)
        if s.pagination == "page":
            params |= {s.page_param: s.first_page + n - 1, s.size_param: s.page_size}
        elif s.pagination == "offset":
            params |= {s.offset_param: (n - 1) * s.page_size, s.limit_param: s.page_size}
        else:
            params[s.limit_param] = s.page_size
            if cursor is not None:
                params[s.cursor_param] = cursor
        if s.watermark and s.since:
            params[s.since_param] = s.since
        return params

    def _page(self, session: requests.Session, url: str, n: int, params: dict):
        """One page, retried on connection errors, 5xx and 429; the decoded JSON."""
        s = self.settings
        policy = RetryPolicy(s.attempts, s.backoff, s.max_backoff, s.max_retry_after)
        where = f"source {self.source_id}: page {n} of {s.method} {url}"
        last = ""
        for attempt in range(policy.attempts):
            self.requests += 1
            try:
                if s.method == "GET":
                    resp = session.get(url, params=params, timeout=(s.connect_timeout, s.read_timeout))
                else:
                    resp = session.request(s.method, url, data=json.dumps(params, sort_keys=True),
                                           headers={"Content-Type": "application/json"},
                                           timeout=(s.connect_timeout, s.read_timeout))
                body = resp.content          # a connection dropped mid-body raises here
            except requests.RequestException as exc:
                last, wait = self._clean(f"{type(exc).__name__}: {exc}"), policy.delay(attempt)
            else:
                if resp.status_code < 300:
                    try:
                        return json.loads(body)
                    except ValueError as exc:
                        raise DataError(f"page {n} is not valid JSON ({exc}); the silo sent a "
                                        "malformed page: nothing was published, re-run when it is fixed",
                                        source=self.source_id, rule="http: page is JSON") from None
                if resp.status_code not in RETRY_STATUS:
                    hint = ("check the credentials of the connection"
                            if resp.status_code in (401, 403) else "check the registration's path and parameters")
                    raise SourceError(f"{where}: HTTP {resp.status_code} {resp.reason}; {hint}")
                last, wait = f"HTTP {resp.status_code} {resp.reason}", policy.delay(attempt)
                told = retry_after_seconds(resp.headers.get("Retry-After"))
                if told is not None:
                    if told > policy.max_retry_after:
                        raise SourceError(f"{where}: rate-limited with Retry-After {told:.0f}s, more "
                                          f"than max_retry_after={policy.max_retry_after:.0f}s; re-run later")
                    wait = max(wait, told)
            if attempt + 1 < policy.attempts:
                log.warning("%s: %s; retry %d/%d in %.2fs", where, last, attempt + 1,
                            policy.attempts - 1, wait)
                self.sleep(wait)
        raise SourceError(f"{where}: still failing after {policy.attempts} attempts ({last}); "
                          "check that the silo is up, then re-run: nothing was published")

    def _clean(self, text: str) -> str:
        return redact(text, [self._secret])

    def _shape(self, n: int, what: str) -> DataError:
        return DataError(f"page {n} {what}; the silo's answer does not have the registered "
                         "shape: nothing was published", source=self.source_id, rule="http: page shape")

    def _records(self, payload, n: int) -> list:
        if not isinstance(payload, dict):
            raise self._shape(n, f"is a JSON {type(payload).__name__}, not an object")
        records = _dig(payload, self.settings.records, missing=KeyError)
        if records is KeyError:
            raise self._shape(n, f"has no field {self.settings.records!r} (the records)")
        if not isinstance(records, list):
            raise self._shape(n, f"field {self.settings.records!r} is a {type(records).__name__}, not a list")
        if len(records) > self.settings.page_size:
            raise self._shape(n, f"has {len(records)} records, more than page_size={self.settings.page_size}")
        return records

    def _row(self, record, n: int, i: int) -> tuple:
        if not isinstance(record, dict):
            raise self._shape(n, f"record {i} is a {type(record).__name__}, not an object")
        row = []
        for name in self.settings.fields:
            if name not in record:
                raise self._shape(n, f"record {i} has no field {name!r}")
            value = record[name]
            if isinstance(value, (dict, list)):
                raise self._shape(n, f"record {i} field {name!r} is a {type(value).__name__}, not a value")
            row.append(as_text(value))
        return tuple(row)


def _dig(payload: dict, path: str, missing=None):
    for part in path.split("."):
        if not isinstance(payload, dict) or part not in payload:
            return missing
        payload = payload[part]
    return payload
