"""Every request's audit entries are written before its response starts.

The ASGI middleware gives each request a list (catalog.serving.consumer.PENDING) that the consumer
service fills; when the response is about to start, the entries are handed to one writer that
chains and commits all entries waiting at that moment in one transaction (group commit). If
the write fails, the client gets 503, not data. A request under /v1/ (but the public documents:
keys, checkpoints, the DCAT-AP catalogue and the service items) that left no entry (an unknown
path, a method not allowed, a body too large, an unaudited route) gets one from its response
status. Refusals anyone can cause at any
rate are counted per client (api/refusals.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

from api.actions import action_of, audited
from api.problems import TITLES
from api.refusals import RefusalCounter, counted
from catalog.serving import audit
from catalog.serving.audit_writer import AuditWriter
from catalog.serving.consumer import PENDING

log = logging.getLogger("exchange.api")



def client_of(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


def _unaudited(scope, status: int) -> dict:
    """The entry of a request that left none, from its response status."""
    caller = (scope.get("state") or {}).get("caller")
    purpose = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("purpose") or ["-"])[0]
    refused = status >= 400
    return audit.entry(department=caller.department if caller else "-", purpose=purpose or "-",
                       action=action_of(scope), outcome=f"refused:{status}" if refused else "allowed",
                       detail={"reason": TITLES.get(status, "Error"), "method": scope.get("method"),
                               "path": scope["path"][:200]} if refused else None)


class Refusals:
    """The counter of one process and its summaries: written as each window closes (a timer
    on the loop), and every open one when the server stops (the app's lifespan)."""

    def __init__(self, state, counter: RefusalCounter):
        self.state, self.counter = state, counter
        self._timer, self._timer_loop = None, None
        self._unwritten: list[dict] = []
        self._tasks: set = set()

    def admit(self, rows: list[dict], client: str) -> list[dict]:
        """The entries to write now: counted refusals only as the first of their window."""
        out = []
        for r in rows:
            if not counted(r):
                out.append(r)
            elif (first := self.counter.admit(r, client)) is not None:
                out.append(first)
        self._arm()
        return out

    def _arm(self, delay: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._timer_loop is loop:
            return
        delay = self.counter.next_close() if delay is None else delay
        if delay is not None:
            self._timer, self._timer_loop = loop.call_later(delay + 0.01, self._fire), loop

    def _fire(self) -> None:
        self._timer = None
        rows, self._unwritten = self._unwritten + self.counter.closed(), []
        if rows:
            task = asyncio.create_task(self._write(rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._arm()

    async def _write(self, rows: list[dict]) -> None:
        try:
            await self.state.audit_writer.write(rows)
        except Exception:        # kept, and tried again: counted refusals are not lost
            log.exception("could not write %d refusal summaries; trying again", len(rows))
            self._unwritten.extend(rows)
            self._arm(5.0)

    async def close(self) -> None:
        """Write every summary, open windows too (the server is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        rows, self._unwritten = self._unwritten + self.counter.closed(everything=True), []
        if rows:
            await self.state.audit_writer.write(rows)


class AuditMiddleware:
    def __init__(self, app, state_of):
        self.app, self.state_of = app, state_of

    def _admit(self, scope, rows: list[dict]) -> list[dict]:
        return self.state_of(scope).audit_refusals.admit(rows, client_of(scope))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        pending: list[dict] = []
        token = PENDING.set(pending)
        failed, entered = False, False
        path = scope["path"]
        must_audit = audited(path)

        async def send_after_audit(message):
            nonlocal failed, entered
            if failed:
                return
            if message["type"] == "http.response.start" and must_audit and not entered and not pending:
                pending.append(_unaudited(scope, message["status"]))
            if message["type"] == "http.response.start" and pending:
                entered = True
                rows = self._admit(scope, pending[:])
                pending.clear()
                try:
                    if rows:
                        await self.state_of(scope).audit_writer.write(rows)
                except Exception:
                    failed = True
                    body = json.dumps({"type": "about:blank", "title": "Service unavailable", "status": 503,
                                       "detail": "the request could not be audited, so it is not answered; "
                                                 "try again later"}).encode()
                    await send({"type": "http.response.start", "status": 503,
                                "headers": [(b"content-type", b"application/problem+json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
            await send(message)
        try:
            await self.app(scope, receive, send_after_audit)
        finally:
            PENDING.reset(token)
            if pending:       # no response was started (an unexpected error): still audited
                rows = self._admit(scope, pending[:])
                if rows:
                    await self.state_of(scope).audit_writer.write(rows)


def install(app, engine, inline: bool | None = None, window: float = 60.0) -> None:
    """The audit middleware (outermost: it sees every response, 413 included), its writer,
    and the refusal counter, whose summaries are written when the server stops."""
    app.state.audit_writer = AuditWriter(engine, inline)
    app.state.audit_refusals = Refusals(app.state, RefusalCounter(window))
    app.add_middleware(AuditMiddleware, state_of=lambda scope: scope["app"].state)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with inner(a) as state:
            try:
                yield state
            finally:
                await app.state.audit_refusals.close()
    app.router.lifespan_context = lifespan
