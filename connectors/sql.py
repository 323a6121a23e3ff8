"""SQL silos through SQLAlchemy; the bulk read uses ADBC where a driver is installed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from exchange.errors import ConfigError, SourceError


@dataclass(frozen=True)
class SqlSettings:
    url: str
    table: str
    batch_rows: int = 65_536

    @classmethod
    def from_registration(cls, cfg: dict) -> "SqlSettings":
        known = {"kind", "url", "table", "batch_rows"}
        if set(cfg) - known:
            raise ConfigError(f"unknown connector keys {sorted(set(cfg) - known)}; known: {sorted(known)}")
        if "url" not in cfg or "table" not in cfg:
            raise ConfigError("a sql connector needs 'url' and 'table'")
        return cls(url=cfg["url"], table=cfg["table"], batch_rows=int(cfg.get("batch_rows", 65_536)))

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


class SqlConnector:
    def __init__(self, settings: SqlSettings, source_id: str):
        self.settings, self.source_id = settings, source_id

    def _fail(self, what: str, exc: Exception) -> SourceError:
        return SourceError(f"source {self.source_id}: {what} {self.settings.table!r} at "
                           f"{self.settings.safe_url}: {type(exc).__name__}: {exc}; "
                           "check that the silo is up and the connection settings are right")

    def _engine(self) -> sa.Engine:
        url = make_url(self.settings.url)
        if url.get_backend_name() == "sqlite":   # never create an empty file for a missing silo
            path = Path(url.database or "")
            if not path.is_file():
                raise SourceError(f"source {self.source_id}: the SQLite silo {path} does not exist; "
                                  "check the path in the registration")
            return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
        return sa.create_engine(self.settings.url)

    def columns(self) -> list[str]:
        return list(self.column_types())

    def column_types(self) -> dict[str, str]:
        """Column name -> the silo's declared type (schema drift checks compare these)."""
        engine = self._engine()
        try:
            insp = sa.inspect(engine)
            tables = insp.get_table_names()
            if self.settings.table not in tables:
                raise SourceError(f"source {self.source_id}: the silo has no table "
                                  f"{self.settings.table!r}; it has: {', '.join(tables) or '(none)'}")
            return {c["name"]: str(c["type"]) for c in insp.get_columns(self.settings.table)}
        except sa.exc.SQLAlchemyError as exc:
            raise self._fail("could not inspect table", exc) from exc
        finally:
            engine.dispose()

    def batches(self) -> Iterator[pa.RecordBatch]:
        cols = self.columns()
        schema = pa.schema([(c, pa.string()) for c in cols])
        url = make_url(self.settings.url)
        try:
            if url.get_backend_name() == "sqlite" and _has_adbc_sqlite():
                yield from _adbc_sqlite(url.database, self.settings, cols, schema)
            else:
                yield from _sqlalchemy_stream(self.settings, cols, schema)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._fail("lost the connection while reading", exc) from exc
        except Exception as exc:  # ADBC raises its own DB-API errors
            if type(exc).__module__.startswith("adbc_driver"):
                raise self._fail("lost the connection while reading", exc) from exc
            raise


def _has_adbc_sqlite() -> bool:
    try:
        import adbc_driver_sqlite.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _adbc_sqlite(path: str, s: SqlSettings, cols: list[str], schema: pa.Schema):
    """ADBC's SQLite driver infers types from the first batch, so a column NULL there
    breaks later batches: a sentinel row of strings fixes every column as text."""
    import adbc_driver_sqlite.dbapi as adbc

    sentinel = ", ".join(f"'' AS {_quote(c)}" for c in cols) + ", 0 AS __real"
    body = ", ".join(f"CAST({_quote(c)} AS TEXT)" for c in cols) + ", 1"
    query = f"SELECT {sentinel} UNION ALL SELECT {body} FROM {_quote(s.table)}"
    with adbc.connect(f"file:{path}?mode=ro") as conn, conn.cursor() as cur:
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(s.batch_rows)})
        cur.execute(query)
        for batch in cur.fetch_record_batch():
            batch = batch.filter(pc.equal(batch.column(len(cols)), 1))
            if batch.num_rows:
                yield pa.RecordBatch.from_arrays(batch.columns[:len(cols)], schema=schema)


def _sqlalchemy_stream(s: SqlSettings, cols: list[str], schema: pa.Schema):
    engine = sa.create_engine(s.url)
    table = sa.table(s.table, *(sa.column(c) for c in cols))
    query = sa.select(*(sa.cast(table.c[c], sa.String).label(c) for c in cols))
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=s.batch_rows).execute(query)
            for rows in result.partitions():
                arrays = [pa.array(col, pa.string()) for col in zip(*rows)]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        engine.dispose()
