"""What a source has already given us, advanced only after the version it fed is published.

- the mirror: the silo's rows as last published (the store's `mirror/<source>.arrow`);
- the watermark (catalogue table source_watermarks) of an incremental source;
- the ledger of dropped files taken (catalogue table taken_files).

`prepare` wraps a run's connector: an incremental pull (a watermark, or a file drop in delta
mode) yields the changed rows and then the mirror's other rows, so later stages always see the
whole silo; a file drop with nothing new yields the mirror. The run's pull is written to the
store as `pending.json` (a split run's partitions each write their own, merged before
publish: `merge_pending`); `commit` (called by publish, maybe on another machine) moves the
mirror, the watermark and the ledger forward. A failed run commits nothing, so the next run
pulls the same changes again. Mirror and pending state live in the store (base/storage.py), so
any worker can run any stage.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import connectors
from base import staging
from base.errors import SourceError
from base.storage import Store
from connectors.files import Claim, FileDropConnector, mark_processed

ROW = "_row"
PENDING = "pending.json"


def mirror_key(store: Store, source_id: str) -> str:
    """The store key of a source's mirror: mirror/<source>.arrow (or the .parquet kept before
    hand-off files were Arrow IPC)."""
    key = f"mirror/{source_id}{staging.TRANSIENT_SUFFIX}"
    legacy = f"mirror/{source_id}.parquet"
    return legacy if not store.exists(key) and store.exists(legacy) else key


class Tracked:
    """A run's view of a silo: the whole silo, however it was pulled."""

    def __init__(self, conn, source_id: str, store: Store, mirror: str, pending: str, scratch: Path,
                 watermark_column: str | None, merge_key: str | None):
        self.conn, self.source_id, self.store, self.mirror = conn, source_id, store, mirror
        self.pending, self.scratch = pending, scratch
        self.has_mirror = store.exists(mirror)
        self._local_mirror: Path | None = None
        self.watermark_column = watermark_column
        self.key = merge_key       # set: the pull holds changes only, merged onto the mirror
        self.counts = {"pulled": 0, "kept": 0}

    def _mirror_file(self) -> Path:
        """The mirror on this machine: in place on a local store, else fetched once to scratch."""
        if self._local_mirror is None:
            self._local_mirror = (self.store.local_path(self.mirror)
                                  or self.store.get_file(self.mirror, self.scratch / Path(self.mirror).name))
        return self._local_mirror

    def _mirror_columns(self) -> list[str] | None:
        if not self.has_mirror:
            return None
        return [n for n in staging.read_schema(self._mirror_file()).names if n != ROW]

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
        self.store.delete(self.pending)
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
        if (self.key or nothing_new) and self.has_mirror:
            yield from self._rest_of_mirror(columns, keys)
        self._write_pending()

    def _rest_of_mirror(self, columns, keys) -> Iterator[pa.RecordBatch]:
        mirrored = self._mirror_columns()
        columns = columns or mirrored
        if mirrored != columns:
            raise SourceError(f"source {self.source_id}: the silo's columns changed since the last "
                              f"published pull ({mirrored} -> {columns}); an incremental pull cannot "
                              f"be merged: delete {self.store.url(self.mirror)} and the source's watermark "
                              "for a full pull")
        changed = pa.chunked_array(keys, pa.string()) if keys else None
        schema = pa.schema([(c, pa.string()) for c in columns])
        for batch in staging.iter_batches(self._mirror_file(), 65_536, columns):
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
        self.store.write_text(self.pending, json.dumps(pending, ensure_ascii=False))


def pending_name(part: dict | None) -> str:
    """The name of a partition's pull under the run's hand-off prefix: pending.json for a whole
    run, pending.p0002.json for the third partition of a split one."""
    return staging.part_name(PENDING.removesuffix(".json"), part) + ".json"


def prepare(source_id: str, cfg: dict, ledger, store: Store, pending: str, scratch: Path,
            part: dict | None = None) -> Tracked:
    """The connector for this run (`cfg`: the registration's [connector] table), wrapped:
    incremental from the committed watermark. `pending`: the store key the pull's state is
    written to; `scratch`: this task's own folder (a remote mirror is fetched there); `part`:
    one partition of a split run (never incremental: registration/partitioning.py refuses the
    two together)."""
    mirror = mirror_key(store, source_id)
    column = cfg.get("watermark")
    committed = ledger.watermark(source_id) if column else None
    since = committed[1] if committed and committed[0] == column and store.exists(mirror) else None
    conn = connectors.build(cfg, source_id, since=since, part=part)
    if isinstance(conn, FileDropConnector):
        conn.taken = ledger.taken_files(source_id)
    merge = (column and since is not None) or cfg.get("mode") == "delta"
    return Tracked(conn, source_id, store, mirror, pending, scratch, column, cfg.get("key") if merge else None)


def merge_pending(store: Store, parts: list[str], pending: str) -> None:
    """A split run's partitions' pulls (their store keys, in partition order) as the run's one
    pending pull under `pending`; the partitions' own stay until the merged run is handed on."""
    merged: dict = {"watermark": None, "files": [], "counts": {"pulled": 0, "kept": 0}}
    for key in parts:
        one = json.loads(store.read_text(key))
        merged["files"] += one["files"]
        for k, v in one["counts"].items():
            merged["counts"][k] = merged["counts"].get(k, 0) + v
    store.write_text(pending, json.dumps(merged, ensure_ascii=False))


def commit(source_id: str, run_key: str, store: Store, pending_key: str, extracted: str, ledger,
           keep_mirror: bool = False) -> dict | None:
    """After publish: the mirror (the run's `extracted` hand-off becomes it), then the watermark
    and ledger, then the files' move. Each step is idempotent, in an order where a crash between
    two steps is repaired by running the same run again (an incremental pull merged twice is the
    same pull). `keep_mirror`: the mirror holds the run's rows already (the caller knows it):
    it stays, the hand-off is dropped."""
    if not store.exists(pending_key):
        return None
    pending = json.loads(store.read_text(pending_key))
    if keep_mirror and store.exists(mirror_key(store, source_id)):
        store.delete(extracted)
    elif store.exists(extracted):
        # the old mirror goes first: a rename over a file makes ext4 start writing the new one
        # out (auto_da_alloc), ~0.3 s at 1M rows; a crash between the two leaves the hand-off,
        # moved by the same run again (a run without a mirror pulls the whole silo)
        store.delete(mirror_key(store, source_id))
        store.move(extracted, f"mirror/{source_id}{staging.TRANSIENT_SUFFIX}")
    claims = [Claim(**c) for c in pending["files"]]
    ledger.commit_pull(source_id, run_key, tuple(pending["watermark"]) if pending["watermark"] else None,
                        [(c.sha256, c.name) for c in claims])
    for c in claims:
        mark_processed(c)
    store.delete(pending_key)
    return pending
