"""What a source has already given us, advanced only after the version it fed is published.

- the mirror: the silo's rows as last published (`$EXCHANGE_HOME/mirror/<source>.arrow`);
- the watermark (catalogue table source_watermarks) of an incremental source;
- the ledger of dropped files taken (catalogue table taken_files).

`prepare` wraps a run's connector: an incremental pull (a watermark, or a file drop in delta
mode) yields the changed rows and then the mirror's other rows, so later stages always see the
whole silo; a file drop with nothing new yields the mirror. The run's pull is written to
`pending.json`; `commit` (called by publish) moves the mirror, the watermark and the ledger
forward. A failed run commits nothing, so the next run pulls the same changes again.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import connectors
from base import staging
from base.errors import SourceError
from connectors.files import Claim, FileDropConnector, mark_processed

PENDING = "pending.json"
ROW = "_row"


def mirror_path(home: Path, source_id: str) -> Path:
    path = (home / "mirror" / source_id).with_suffix(staging.TRANSIENT_SUFFIX)
    legacy = path.with_suffix(".parquet")            # kept before hand-off files were Arrow IPC
    return legacy if legacy.exists() and not path.exists() else path


class Tracked:
    """A run's view of a silo: the whole silo, however it was pulled."""

    def __init__(self, conn, source_id: str, mirror: Path, workdir: Path, watermark_column: str | None,
                 merge_key: str | None, pending: str = PENDING):
        self.conn, self.source_id, self.mirror, self.workdir = conn, source_id, mirror, workdir
        self.pending = pending     # this partition's pull (a split run's are merged before publish)
        self.watermark_column = watermark_column
        self.key = merge_key       # set: the pull holds changes only, merged onto the mirror
        self.counts = {"pulled": 0, "kept": 0}

    def _mirror_columns(self) -> list[str] | None:
        if not self.mirror.exists():
            return None
        return [n for n in staging.read_schema(self.mirror).names if n != ROW]

    def _nothing_new(self) -> bool:
        return isinstance(self.conn, FileDropConnector) and not self.conn.pending()

    def columns(self) -> list[str]:
        if self._nothing_new() and self._mirror_columns():
            return self._mirror_columns()
        return self.conn.columns()

    def column_types(self) -> dict[str, str]:
        """The silo's declared types (for drift checks), where the connector knows them."""
        inner = getattr(self.conn, "column_types", None)
        return inner() if inner and not self._nothing_new() else dict.fromkeys(self.columns(), "")

    def batches(self) -> Iterator[pa.RecordBatch]:
        (self.workdir / self.pending).unlink(missing_ok=True)
        keys: list[pa.Array] = []
        columns = None
        nothing_new = self._nothing_new()
        if not nothing_new:
            for batch in self.conn.batches():
                columns = batch.schema.names
                if self.key:
                    keys.append(batch.column(self.key))
                self.counts["pulled"] += batch.num_rows
                yield batch
        if (self.key or nothing_new) and self.mirror.exists():
            yield from self._rest_of_mirror(columns, keys)
        self._write_pending()

    def _rest_of_mirror(self, columns, keys) -> Iterator[pa.RecordBatch]:
        mirrored = self._mirror_columns()
        columns = columns or mirrored
        if mirrored != columns:
            raise SourceError(f"source {self.source_id}: the silo's columns changed since the last "
                              f"published pull ({mirrored} -> {columns}); an incremental pull cannot "
                              f"be merged: delete {self.mirror} and the source's watermark for a full pull")
        changed = pa.chunked_array(keys, pa.string()) if keys else None
        schema = pa.schema([(c, pa.string()) for c in columns])
        for batch in staging.iter_batches(self.mirror, 65_536, columns):
            if changed is not None:
                batch = batch.filter(pc.invert(pc.is_in(batch.column(self.key), value_set=changed.combine_chunks())))
            if batch.num_rows:
                self.counts["kept"] += batch.num_rows
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)

    def _write_pending(self) -> None:
        high = getattr(self.conn, "high_water", None)
        pending = {
            "watermark": [self.watermark_column, high] if self.watermark_column and high else None,
            "files": [c.__dict__ for c in getattr(self.conn, "claims", [])],
            "counts": self.counts,
        }
        tmp = self.workdir / (self.pending + ".tmp")
        tmp.write_text(json.dumps(pending, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.workdir / self.pending)


def pending_name(part: dict | None) -> str:
    """The file a partition's pull is written to: pending.json for a whole run."""
    return staging.part_name(PENDING.removesuffix(".json"), part) + ".json"


def prepare(source_id: str, cfg: dict, ledger, workdir: Path, home: Path, part: dict | None = None) -> Tracked:
    """The connector for this run (`cfg`: the registration's [connector] table), wrapped:
    incremental from the committed watermark. `part`: one partition of a split run (never
    incremental: registration/partitioning.py refuses the two together)."""
    mirror = mirror_path(home, source_id)
    column = cfg.get("watermark")
    committed = ledger.watermark(source_id) if column else None
    since = committed[1] if committed and committed[0] == column and mirror.exists() else None
    conn = connectors.build(cfg, source_id, since=since, part=part)
    if isinstance(conn, FileDropConnector):
        conn.taken = ledger.taken_files(source_id)
    merge = (column and since is not None) or cfg.get("mode") == "delta"
    return Tracked(conn, source_id, mirror, workdir, column, cfg.get("key") if merge else None,
                   pending_name(part))


def merge_pending(workdir: Path, parts: list[dict]) -> None:
    """A split run's partitions' pulls as one pending.json (files in partition order); the
    partitions' own files stay until the merged run is handed on."""
    merged: dict = {"watermark": None, "files": [], "counts": {"pulled": 0, "kept": 0}}
    for part in parts:
        one = json.loads((workdir / pending_name(part)).read_text(encoding="utf-8"))
        merged["files"] += one["files"]
        for k, v in one["counts"].items():
            merged["counts"][k] = merged["counts"].get(k, 0) + v
    tmp = workdir / (PENDING + ".tmp")
    tmp.write_text(json.dumps(merged, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, workdir / PENDING)


def commit(source_id: str, run_key: str, workdir: Path, ledger, home: Path) -> dict | None:
    """After publish: the mirror, then the watermark and ledger, then the files' move.
    Each step is idempotent, in an order where a crash between two steps is repaired by
    running the same run again (an incremental pull merged twice is the same pull)."""
    path = workdir / PENDING
    if not path.exists():
        return None
    pending = json.loads(path.read_text(encoding="utf-8"))
    extracted = staging.transient(workdir, "extracted")
    if extracted.exists():
        mirror = mirror_path(home, source_id)
        mirror.parent.mkdir(parents=True, exist_ok=True)
        os.replace(extracted, mirror.with_suffix(staging.TRANSIENT_SUFFIX))
        if mirror.suffix != staging.TRANSIENT_SUFFIX:
            mirror.unlink(missing_ok=True)
    claims = [Claim(**c) for c in pending["files"]]
    ledger.commit_pull(source_id, run_key, tuple(pending["watermark"]) if pending["watermark"] else None,
                        [(c.sha256, c.name) for c in claims])
    for c in claims:
        mark_processed(c)
    path.unlink()
    return pending
