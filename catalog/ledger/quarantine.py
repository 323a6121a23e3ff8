"""The quarantine queue's bulk work: matching this run's rows to known entries, and inserting
many rows at once (a broken export can quarantine a million rows)."""
from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa


def changed_rows(seen: dict, known: dict) -> dict:
    """(key, row_hash) of this run -> the known entry it continues though its content changed:
    where a key has exactly one unmatched row and one unmatched entry (a fixed typo keeps its
    review; entries kept from before migration 0011 have row_hash '')."""
    rows, entries = defaultdict(list), defaultdict(list)
    for kh in known:           # the entries first: none (a first run), no row is looked at
        if kh not in seen:
            entries[kh[0]].append(kh)
    for kh in seen:
        if kh[0] in entries and kh not in known:
            rows[kh[0]].append(kh)
    return {rows[k][0]: entries[k][0] for k in entries if k in rows and len(rows[k]) == len(entries[k]) == 1}


HASHED = ("sha256:", "sha256;")      # the range of keys hashed from rows without a licence number


def entries(conn, table, source_id: str, scope: set[str] | None, seen: dict) -> list:
    """(key, row_hash, id, reasons as stored text, values, held_record_id, state) of the
    source's entries: all of them, or those of the keys in `scope` or `seen` ((key, row_hash)
    of this run's rows) and the hashed keys, read 500 keys at a time."""
    T = table
    cols = (T.c.key, T.c.row_hash, T.c.id, sa.cast(T.c.reasons, sa.Text), T.c["values"], T.c.held_record_id,
            T.c.state)
    if scope is None:
        return conn.execute(sa.select(*cols).where(T.c.source_id == source_id)).all()
    keys = sorted(k for k in {*scope, *(k for k, _ in seen)} if not HASHED[0] <= k < HASHED[1])
    out = list(conn.execute(sa.select(*cols).where(T.c.source_id == source_id, T.c.key >= HASHED[0],
                                                   T.c.key < HASHED[1])).all())
    for at in range(0, len(keys), 500):
        out += conn.execute(sa.select(*cols).where(T.c.source_id == source_id, T.c.key.in_(keys[at:at + 500])))
    return out


def seen_again(conn, table, source_id: str, again: list[int], known: list[int], closed: set[int],
               scoped: bool = False, **values) -> None:
    """`values` (the run, the time) set on the source's entries `again` (ids; `known`: all the
    source's entries, `closed`: the resolved ones): the unresolved ones in one statement over
    the source's unresolved entries but the few not seen again (a run that quarantines what the
    last one did), else 500 ids at a time; the resolved ones seen again 500 ids at a time.
    `scoped`: `known` is not all the source's entries: 500 ids at a time."""
    if not again:
        return
    reopened = [i for i in again if i in closed]
    rest = set(known).difference(again, closed)        # unresolved, not seen again
    if len(rest) <= 500 and not scoped:
        conn.execute(table.update().where(table.c.source_id == source_id, table.c.state != "resolved",
                                          table.c.id.not_in(sorted(rest))).values(**values))
        ids = reopened
    else:
        ids = again
    for at in range(0, len(ids), 500):
        conn.execute(table.update().where(table.c.id.in_(ids[at:at + 500])).values(**values))


def executemany(conn, stmt, rows: list[dict]) -> None:
    """Many rows through the driver's executemany, values converted by the columns' own
    SQLAlchemy types once each (per-row statement compilation would dominate), column by
    column: a value every row shares (a run id, a time) once, a repeated list (reasons, JSON)
    once per distinct list."""
    cols = list(rows[0])
    table = stmt.table
    compiled = stmt.values({c: sa.bindparam(c) for c in cols}).compile(dialect=conn.dialect)
    order = list(compiled.positiontup) if compiled.positional else cols
    columns = []
    for c in order:
        values = [r[c] for r in rows]
        proc = table.c[c].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if proc is None:
            columns.append(values)
        elif all(v is values[0] for v in values):
            columns.append([proc(values[0])] * len(values))
        else:
            columns.append(_converted(values, proc))
    out = list(zip(*columns))
    conn.exec_driver_sql(str(compiled), out if compiled.positional else
                         [dict(zip(order, r)) for r in out])


def _converted(values: list, proc) -> list:
    """`proc` over the values, once per distinct list of strings (the same text each time)."""
    if not all(type(v) is list for v in values):
        return [proc(v) for v in values]
    done: dict[tuple, object] = {}
    out = []
    for v in values:
        t = tuple(v)
        if t not in done:
            done[t] = proc(v)
        out.append(done[t])
    return out
