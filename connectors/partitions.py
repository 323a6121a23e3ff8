"""Planning a split run: the silo's partitions, as a JSON list (it travels by XCom).

Each partition is a dict with `index` and `of` and what its kind needs to pull only its rows:
- sql: `column`, `after`, `upto` (text, compared after a cast to the column's type):
  after < key <= upto, the first open below, the last open above and also taking the rows
  whose key is NULL; the bounds come from NTILE over the key (SQLite, PostgreSQL, MariaDB);
- http: `first`, `last` pages (1-based; the last partition's `last` is None: to the end);
- files: `files`, whole files of the drop in name order.
Together the partitions hold every row exactly once, in an order the merge keeps. A silo too
small to split (or empty) is planned as WHOLE: one partition, the run as unsplit.
"""
from __future__ import annotations

import math

import sqlalchemy as sa

from base.errors import SourceError

WHOLE: dict = {"index": 0, "of": 1}
MAX_PARTS = 256


def wanted(run: dict, rows: int) -> int:
    """How many partitions the [run] table asks for a silo of `rows` rows (at least one)."""
    if "partition_rows" in run:
        n = math.ceil(rows / run["partition_rows"])
    else:
        n = int(run.get("partitions", 1))
    return max(1, min(n, rows, MAX_PARTS))


def plan(conn, run: dict) -> list[dict]:
    """The partitions of this connector's silo for the registration's [run] table."""
    from connectors.files import FileDropConnector  # lazy: as in connectors.build
    from connectors.http import HttpConnector
    from connectors.sql import SqlConnector
    if run.get("partitions", 1) <= 1 and "partition_rows" not in run:
        return [dict(WHOLE)]
    if isinstance(conn, SqlConnector):
        return plan_sql(conn, run)
    if isinstance(conn, HttpConnector):
        return plan_pages(conn.total(), conn.settings.page_size, run)
    if isinstance(conn, FileDropConnector):
        return plan_files([p.name for p in conn.pending()], run)
    raise TypeError(f"no partition plan for {type(conn).__name__}")


def _numbered(parts: list[dict]) -> list[dict]:
    if len(parts) <= 1:
        return [dict(WHOLE)]
    return [{"index": i, "of": len(parts), **p} for i, p in enumerate(parts)]


def split_evenly(count: int, n: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of `count` items in `n` contiguous runs, the first ones one longer."""
    size, extra = divmod(count, n)
    out, start = [], 0
    for i in range(n):
        stop = start + size + (i < extra)
        out.append((start, stop))
        start = stop
    return out


def plan_pages(total: int, page_size: int, run: dict) -> list[dict]:
    pages = math.ceil(total / page_size)
    n = min(wanted(run, total), pages)
    if n <= 1:
        return [dict(WHOLE)]
    ranges = split_evenly(pages, n)
    return _numbered([{"kind": "http", "first": a + 1, "last": None if i == n - 1 else b}
                      for i, (a, b) in enumerate(ranges)])


def plan_files(names: list[str], run: dict) -> list[dict]:
    names = sorted(names)
    n = wanted(run, len(names))
    if n <= 1:
        return [dict(WHOLE)]
    return _numbered([{"kind": "files", "files": names[a:b]} for a, b in split_evenly(len(names), n)])


def plan_sql(conn, run: dict) -> list[dict]:
    """Key ranges of about equal row counts: NTILE(n) over the key, each tile's largest key a
    bound. Equal keys never straddle two partitions (a tile ending inside a run of equal keys
    gives its rows to the earlier one), so a partition may come out smaller, or not at all."""
    s = conn.settings
    types = conn._reflect()
    name = s.key
    if name not in types:
        raise SourceError(f"source {conn.source_id}: connector.key {name!r} (the partition key) is not "
                          f"in table {s.table!r}; it has {sorted(types)}")
    table = sa.table(s.table, sa.column(name))
    col = table.c[name]
    engine = conn._engine()
    try:
        with engine.connect() as db:
            rows, keyed = db.execute(sa.select(sa.func.count(), sa.func.count(col)).select_from(table)).one()
            n = min(wanted(run, rows), keyed)
            if n <= 1:
                return [dict(WHOLE)]
            tiles = sa.select(col.label("k"), sa.func.ntile(n).over(order_by=col).label("tile")
                              ).where(col.is_not(None)).subquery()
            uppers = db.execute(sa.select(tiles.c.tile, sa.cast(sa.func.max(tiles.c.k), sa.String))
                                .group_by(tiles.c.tile).order_by(tiles.c.tile)).all()
    except sa.exc.SQLAlchemyError as exc:
        raise conn._fail("could not plan partitions of", exc) from exc
    finally:
        engine.dispose()
    bounds: list[str] = []
    for _, upper in uppers[:-1]:
        if not bounds or bounds[-1] != upper:
            bounds.append(upper)
    edges: list[str | None] = [None, *bounds, None]
    last = len(edges) - 2
    return _numbered([{"kind": "sql", "column": name, "after": edges[i], "upto": edges[i + 1],
                       "nulls": i == last} for i in range(last + 1)])
