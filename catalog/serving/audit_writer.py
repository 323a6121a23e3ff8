"""The audit log's group-commit writer: the API hands it each request's entries before the
response starts (api/auditing.py), and it commits every entry waiting at that moment in one
transaction, the way the database at hand does it best."""
from __future__ import annotations

import asyncio
import logging

import psycopg

from catalog.db.rawdb import Busy, raw
from catalog.federation.access_reports import ROW_KEY, enqueue_from
from catalog.serving import audit

log = logging.getLogger("exchange.api")
RETRY_BUSY = 0.0005      # seconds before a batch that found SQLite's write lock taken tries again
BUSY_LIMIT = 2.0


class AuditWriter:
    """Group commit. On SQLite (commits are quick, no fsync) the batch is written on the event
    loop itself (a writer thread measured no better: GIL hand-offs). If another process (a
    second worker) holds the write lock, the batch is retried a moment later rather than
    blocking the loop in SQLite's busy wait; after BUSY_LIMIT seconds it waits like any
    writer (and fails with 503 if the lock stays taken). On PostgreSQL (a commit waits for
    fsync) it is written through an async psycopg connection while the loop serves others,
    and the next batch gathers meanwhile: one statement, the database chaining the entries under
    the head's lock, so workers in other processes append just as cheaply."""

    def __init__(self, engine, inline: bool | None = None):
        self.engine = engine
        self.inline = engine.dialect.name == "sqlite" if inline is None else inline
        self._aconn = None
        self._checkpoints_aside = False
        self._queue: list[tuple[list[dict], asyncio.Future]] = []
        self._running = False
        self._busy_since: float | None = None

    async def write(self, rows: list[dict]) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((rows, fut))
        if not self._running:
            self._running = True
            if self.inline:
                loop.call_soon(self._flush)
            else:
                asyncio.create_task(self._drain())
        await fut

    def _take(self):
        batch, self._queue = self._queue, []
        return batch, [r for rows, _ in batch for r in rows]

    @staticmethod
    def _settle(batch, exc: Exception | None) -> None:
        for _, fut in batch:
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def _flush(self) -> None:
        if not self._checkpoints_aside and self.engine.dialect.name == "sqlite":
            raw(self.engine).checkpoint_aside()      # no checkpoint stalls on the loop
            self._checkpoints_aside = True
        batch, rows = self._take()
        loop = asyncio.get_running_loop()
        waited = loop.time() - self._busy_since if self._busy_since is not None else 0.0
        try:
            audit.append_many(self.engine, rows, wait=waited > BUSY_LIMIT)
        except Busy:
            if self._busy_since is None:
                self._busy_since = loop.time()
            self._queue[:0] = batch       # in front of what came meanwhile: the order is kept
            loop.call_later(RETRY_BUSY, self._flush)
            return
        except Exception as exc:
            self._busy_since, self._running = None, False
            log.exception("audit write failed")
            return self._settle(batch, exc)
        self._busy_since, self._running = None, False
        if any(ROW_KEY in r for r in rows):        # reports owed to mirrored datasets' origins
            enqueue_from(self.engine, rows)
        self._settle(batch, None)

    async def _write_async(self, rows: list[dict]) -> None:
        if self.engine.dialect.name != "postgresql":
            return await asyncio.to_thread(audit.append_many, self.engine, rows)
        if self._aconn is None or self._aconn.closed:
            cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
            self._aconn = await psycopg.AsyncConnection.connect(*cargs, **cparams, autocommit=True)
        try:
            await audit.append_many_async(self._aconn, rows)
        except psycopg.OperationalError:
            await self._aconn.close()       # reconnect for the next batch
            raise

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, rows = self._take()
                try:
                    await self._write_async(rows)
                except Exception as exc:
                    log.exception("audit write failed")
                    self._settle(batch, exc)
                else:
                    if any(ROW_KEY in r for r in rows):   # reports owed to mirrored datasets' origins
                        await asyncio.to_thread(enqueue_from, self.engine, rows)
                    self._settle(batch, None)
        finally:
            self._running = False
