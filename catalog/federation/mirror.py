"""A peer's dataset held here exactly as the peer signed it (docs/federation.md): same dataset
id and version numbers, the peer's JWS tree head and signed note stored unchanged, so bundles
served here verify offline against the peer's keys.

    ensure_mirror(catalog, peer, meta, now) -> dataset id
        The dataset row (the origin's metadata), the mirror's Source (connector kind `peer`)
        and the `mirrors` row.
    mirror_version(catalog, peer, dataset, info, records, holders, scratch, now) -> PublishResult
        One origin version: its records checked (record ids, schema, counts, chain), its log
        segment staged here (own tiles, own map) and published under the origin's head, which
        must name what was computed here (Catalog.publish(head=...)); else MirrorRefused and
        nothing of it is kept.
    check_known(catalog, dataset, info)
        A version mirrored already: the origin's head hash must still be ours.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from base import staging
from base.errors import ConfigError, MirrorRefused, NotFound
from catalog.db.models import Dataset, DatasetVersion, MetadataChange, Mirror, Peer, Run, Source
from catalog.ledger.service import FINAL
from catalog.listing import SourceListing
from catalog.publish import log_delta, log_version, store
from catalog.publish.changes import Changes
from catalog.publish.checkpoints import GivenHead
from catalog.service import METADATA, Catalog, PublishResult
from catalog.signing import vmap
from catalog.signing.canonical import canonical_json
from catalog.signing.digests import from_hex, hex_strings
from catalog.signing.merkle import leaf_hashes
from schemas.types import CertificateType, get_type
from trust.heads import head_hash
from trust.merkle import LEAF_PREFIX

__all__ = ["MirrorRefused", "check_known", "ensure_mirror", "mirror_version", "source_id"]

CONNECTOR = "peer"
WITHDRAWN = log_version.WITHDRAWN


def source_id(peer: str, dataset: str) -> str:
    return f"peer.{peer}.{dataset}"[:128]


def ensure_mirror(catalog: Catalog, peer: str, meta: dict, now: datetime) -> str:
    """The mirrored dataset's rows, made or their metadata brought up to the origin's `meta`
    (GET /v1/federation/datasets). ConfigError if a local dataset has that id, or another
    peer mirrors it."""
    dataset = meta["dataset"]
    store.version_key(dataset, 0)          # a dataset name the store writes under
    src = source_id(peer, dataset)
    attrs = {"certificate_type": meta["certificate_type"], "type_version": int(meta["type_version"]),
             **{k: meta.get(k) for k in METADATA}}
    with catalog.session() as s, s.begin():
        if s.get(Peer, peer) is None:
            raise NotFound(f"没有这个对等平台 (no peer) {peer!r}: add it with `exchange peers add`")
        ds = s.get(Dataset, dataset)
        mirror = s.get(Mirror, dataset)
        if ds is not None and mirror is None:
            raise ConfigError(f"数据集已存在 (dataset exists here): {dataset} is published by this exchange; "
                              f"peer {peer} cannot be mirrored into it")
        if mirror is not None and mirror.peer != peer:
            raise ConfigError(f"数据集已被镜像 (dataset already mirrored): {dataset} is mirrored from peer "
                              f"{mirror.peer}, not {peer}; each dataset is mirrored from its origin only")
        if ds is None:
            ds = Dataset(id=dataset, created_at=now, **attrs)
            s.add(ds)
            old = dict.fromkeys(METADATA)
        else:
            old = {k: getattr(ds, k) for k in METADATA}
            for k, v in attrs.items():
                setattr(ds, k, v)
        s.flush()
        s.add_all(MetadataChange(dataset_id=dataset, field=k, old_value=old[k], new_value=attrs[k],
                                 changed_at=now, changed_by=f"peer:{peer}", source_id=src, source_file=None)
                  for k in METADATA if old[k] != attrs[k])
        if s.get(Source, src) is None:
            s.add(Source(id=src, dataset_id=dataset, connector_kind=CONNECTOR,
                         registration={"peer": peer, "dataset": dataset}, registered_at=now))
        if mirror is None:
            s.add(Mirror(dataset_id=dataset, peer=peer, source_id=src, version=None, head_hash=None,
                         state="ok", checked_at=now))
    return dataset


def check_known(catalog: Catalog, dataset: str, info: dict) -> None:
    """A version this exchange mirrored already, as the origin shows it now (its version JSON):
    the same head, else MirrorRefused "rewrite" (a different head whose previous head is ours:
    the version was signed again) or "split_view" (the origin shows a different history)."""
    version = int(info["version"])
    with catalog.session() as s:
        ours = s.get(DatasetVersion, (dataset, version))
    if ours is None:
        raise NotFound(f"数据集 {dataset} 版本 {version} 未镜像 (not mirrored here)")
    theirs = info.get("head_hash") or head_hash(info["signed_tree_head"])
    if theirs == ours.head_hash and head_hash(info["signed_tree_head"]) == ours.head_hash:
        return
    kind = "rewrite" if info.get("previous_head_hash") == ours.previous_head_hash else "split_view"
    raise MirrorRefused(kind, f"数据集 {dataset} 版本 {version} 的签名树头已改变 (the origin's head of a "
                        f"mirrored version changed): ours {ours.head_hash}, the origin's now {theirs}")


def _mirrored(catalog: Catalog, peer: str, dataset: str) -> tuple[Dataset, DatasetVersion | None]:
    with catalog.session() as s:
        mirror = s.get(Mirror, dataset)
        if mirror is None or mirror.peer != peer:
            raise ConfigError(f"数据集 {dataset} 不是对等平台 {peer} 的镜像 (not a mirror of peer {peer}): "
                              "ensure_mirror first")
        ds = s.get(Dataset, dataset)
        head = s.get(DatasetVersion, (dataset, ds.current_version)) if ds.current_version else None
        return ds, head


def _check_info(dataset: str, info: dict, head: DatasetVersion | None) -> GivenHead:
    """The version JSON against what is mirrored (chain, numbering, first leaf) and against its
    own head's payload."""
    given = GivenHead(info["signed_tree_head"], info["checkpoint"])
    payload = given.payload
    version, first = int(info["version"]), int(info["first_leaf"])
    where = f"数据集 {dataset} 版本 {version}"
    for k in ("dataset", "version", "tree_size", "previous_head_hash"):
        if payload.get(k) != info.get(k):
            raise MirrorRefused("inconsistent", f"{where}: 版本信息与签名树头不符 (version info does not "
                                f"match its head): {k} {info.get(k)!r} != {payload.get(k)!r}")
    if head_hash(info["signed_tree_head"]) != info.get("head_hash", head_hash(info["signed_tree_head"])):
        raise MirrorRefused("inconsistent", f"{where}: head_hash is not the hash of the signed tree head")
    if head is None:
        if first != 0 or info.get("previous_head_hash") is not None:
            raise MirrorRefused("inconsistent", f"{where}: 首个镜像版本须为日志的第一个版本 (the first mirrored "
                                f"version must start the log): first leaf {first}, previous head "
                                f"{info.get('previous_head_hash')}")
        return given
    if version != head.version + 1:
        raise MirrorRefused("inconsistent", f"{where}: 版本不连续 (not the next version): mirrored "
                            f"version {head.version}")
    if info.get("previous_head_hash") != head.head_hash:
        raise MirrorRefused("rewrite", f"{where}: 上一签名树头不符 (previous head does not chain): it names "
                            f"{info.get('previous_head_hash')}, the mirrored version {head.version} is "
                            f"{head.head_hash}")
    if first != head.tree_size:
        raise MirrorRefused("inconsistent", f"{where}: first leaf {first}, the mirrored log has "
                            f"{head.tree_size} leaves")
    return given


def _check_schema(dataset: str, version: int, ctype: CertificateType, schema: pa.Schema) -> list[str]:
    cols = [*ctype.field_names, "record_id"]
    want = ctype.arrow_schema().append(pa.field("record_id", pa.string()))
    got = [(f.name, f.type) for f in schema]
    if got != [(f.name, f.type) for f in want]:
        raise MirrorRefused("bad_records", f"数据集 {dataset} 版本 {version}: 记录结构不是 {ctype.name} 的 "
                            f"(records are not of the certificate type): {schema.names} != {cols}")
    return cols


def _layout_ok(meta: pq.FileMetaData) -> bool:
    """Row groups of store.ROW_GROUP rows, the last at most that (read_record divides by it)."""
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return all(g == store.ROW_GROUP for g in groups[:-1]) and (not groups or groups[-1] <= store.ROW_GROUP)


def stage(catalog: Catalog, dataset: str, info: dict, ctype: CertificateType, records: Path,
          holders: Path, scratch: Path) -> tuple[log_version.LogVersion, int | None]:
    """The origin's segment as this exchange's LogVersion (records.parquet in ROW_GROUP row
    groups, index.parquet of holder keys, the index rows, leaves, the map), the records checked
    on the way; returns it and the version it was built on. The map is the current version's
    with the buckets the segment touches rehashed (_on_map); the whole state is read only for
    the first version or when the map's bits change, as the origin's Delta run does."""
    version = int(info["version"])
    where = f"数据集 {dataset} 版本 {version}"
    rec_file = staging.parquet_file(records)
    cols = _check_schema(dataset, version, ctype, rec_file.schema_arrow)
    holder_keys = staging.read_table(holders, ["holder_key"]).column(0).combine_chunks()
    n = rec_file.metadata.num_rows
    expected = int(info["tree_size"]) - int(info["first_leaf"])
    if not n == len(holder_keys) == expected:
        raise MirrorRefused("bad_records", f"{where}: {n} 条记录, {len(holder_keys)} 个持有人 (records, "
                            f"holders); the head appends {expected}")
    out = scratch / "log_version"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows_path = out.parent / "index_rows.parquet"
    rewrite = not _layout_ok(rec_file.metadata)
    rec_writer = staging.writer(out / "records.parquet", rec_file.schema_arrow, staging.DATASET_FILES) \
        if rewrite else None
    idx_writer = None
    leaves: list[np.ndarray] = []
    ids: list[pa.Array] = []
    at = 0
    try:
        for batch in store.exactly(store.BATCH, rec_file.iter_batches(batch_size=store.BATCH)):
            table = pa.Table.from_batches([batch]).select(cols)
            keys = holder_keys.slice(at, table.num_rows)
            got = table.column("record_id").combine_chunks()
            try:
                want = store.record_ids(dataset, keys, table.column("licence_number").combine_chunks())
            except ValueError as exc:
                raise MirrorRefused("bad_records", f"{where}: {exc}") from exc
            wrong = pc.invert(pc.fill_null(pc.equal(got, want), False))
            if pc.any(wrong).as_py():
                first_bad = int(np.flatnonzero(wrong.to_numpy(zero_copy_only=False))[0])
                raise MirrorRefused("bad_records", f"{where}: 记录编号与持有人、证照编号不符 (record id does not "
                                    f"match its holder and licence number) at row {at + first_bad}: "
                                    f"{got[first_bad].as_py()}")
            hashes = leaf_hashes(canonical_json(table, prefix=LEAF_PREFIX), prefixed=True)
            rows = {c: (keys if c == "holder_key" else table.column(c)) for c in store.INDEX_COLUMNS}
            start = int(info["first_leaf"]) + at
            part = pa.table(rows).append_column(
                "leaf_index", pa.array(np.arange(start, start + table.num_rows), pa.int64()))
            part = part.append_column("leaf_hash", hex_strings(hashes))
            if idx_writer is None:
                idx_writer = staging.writer(rows_path, part.schema, log_version.ROWS_FILE)
            idx_writer.write_table(part)
            if rec_writer is not None:
                rec_writer.write_table(table, row_group_size=store.ROW_GROUP)
            leaves.append(hashes)
            ids.append(got)
            at += table.num_rows
    finally:
        for w in (rec_writer, idx_writer):
            if w is not None:
                w.close()
    if not rewrite:                      # the origin's file, in this exchange's layout already
        try:
            os.link(records, out / "records.parquet")
        except OSError:
            shutil.copyfile(records, out / "records.parquet")
    seg_ids = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    if pc.count_distinct(seg_ids).as_py() != len(seg_ids):
        raise MirrorRefused("bad_records", f"{where}: 同一记录出现两次 (a record appears twice in the version)")
    if idx_writer is None:
        schema = pa.schema([pa.field("holder_key", holder_keys.type)] + [
            rec_file.schema_arrow.field(c) for c in store.INDEX_COLUMNS if c != "holder_key"])
        schema = pa.schema([schema.field(c) for c in store.INDEX_COLUMNS])
        empty = schema.append(pa.field("leaf_index", pa.int64())).append(pa.field("leaf_hash", pa.string()))
        staging.write_table(empty.empty_table(), rows_path, log_version.ROWS_FILE)
    staging.write_table(pa.table({"holder_key": holder_keys}), out / "index.parquet", staging.DATASET_FILES)
    matrix = np.concatenate(leaves) if leaves else np.zeros((0, 32), np.uint8)

    seg = log_version.Segment(log_version.STATE.empty_table(), out, int(info["first_leaf"]), matrix, seg_ids,
                              added=0, changes=Changes(0, 0, 0, 0, 0), held=0, withdrawn_now=0)
    status = staging.read_table(out / "records.parquet", ["status"]).column(0)
    cur, _versions, _size, base = catalog.delta_base(dataset)
    lv = _on_map(base, base.map, seg, status) if base.map is not None else None
    if lv is None:             # the first version, or the map's bits change: the whole state
        state = base.reader.whole()
        old_ids = state.column("record_id").combine_chunks()
        known = pc.fill_null(pc.is_in(seg_ids, value_set=old_ids), False) if len(old_ids) else \
            pa.array(np.zeros(len(seg_ids), bool))
        still = int(pc.sum(pc.equal(state.column("status"), WITHDRAWN)).as_py() or 0) if state.num_rows else 0
        seg = _counted(seg, _changes(known, status, state.num_rows, still))
        lv = seg.version(*log_version.whole_map(state, seg))
    lv.ids = None            # read from the index rows when superseding
    return lv, cur


def _on_map(base: log_delta.DeltaBase, level: vmap.MapLevel, seg: log_version.Segment,
            status: pa.ChunkedArray) -> log_version.LogVersion | None:
    """The version on the current version's map `level`, as the origin's Delta run builds it
    (log_delta.touched_map): only the map buckets of the segment's records read from the
    index. None when the map's bits change with the new record count (then the whole state)."""
    touched = base.reader.buckets_of(seg.record_ids, level.bits)
    seg_bytes = from_hex(seg.record_ids, 32) if len(seg.record_ids) else np.zeros((0, 16), np.uint8)
    known = touched.entries.has(seg_bytes)       # a current record is among its bucket's entries
    count = base.record_count + int(np.count_nonzero(~known))
    if vmap.bits_for(count) != level.bits:
        return None
    seg = _counted(seg, _changes(pa.array(known), status, base.record_count, base.reader.withdrawn()))
    return seg.version(log_delta.touched_map(level, seg, base.reader, touched), count)


def _counted(seg: log_version.Segment, changes: Changes) -> log_version.Segment:
    return replace(seg, added=changes.new, changes=changes, withdrawn_now=changes.withdrawn)


def _changes(known: pa.Array, status: pa.ChunkedArray, records: int, still_withdrawn: int) -> Changes:
    """What the version changes, counted as the origin's run did (roughly: no held records):
    `known` marks the segment's records in the current state of `records` records, of them
    `still_withdrawn` withdrawn."""
    withdrawn = pc.equal(status.combine_chunks(), WITHDRAWN) if len(known) else pa.array([], pa.bool_())

    def count(mask) -> int:
        return int(pc.sum(mask).as_py() or 0)

    return Changes(new=count(pc.and_(pc.invert(known), pc.invert(withdrawn))),
                   changed=count(pc.and_(known, pc.invert(withdrawn))),
                   unchanged=records - count(known), withdrawn=count(withdrawn),
                   still_withdrawn=still_withdrawn)


def _listing(ds: Dataset, src: str) -> SourceListing:
    return SourceListing(source=src, dataset=ds.id, certificate_type=ds.certificate_type,
                         type_version=ds.type_version, title=ds.title, steward=ds.steward or "",
                         description=ds.description, department=ds.department,
                         department_name=ds.department_name, sharing=ds.sharing,
                         update_cycle=ds.update_cycle, connector_kind=CONNECTOR, registration={})


def _run(catalog: Catalog, src: str, version: int, now: datetime) -> int:
    with catalog.session() as s, s.begin():
        run = s.scalar(sa.select(Run).where(Run.source_id == src, Run.run_key == f"v{version}"))
        if run is None:
            run = Run(source_id=src, run_key=f"v{version}", state="running", started_at=now)
            s.add(run)
        elif run.state in FINAL:
            raise MirrorRefused("inconsistent", f"{src}: version {version} was mirrored already (run "
                                f"{run.id} {run.state}); the mirrored version is not the one before it")
        else:
            run.state, run.message, run.started_at = "running", None, now
        s.flush()
        return run.id


def _fail_run(catalog: Catalog, run_id: int, message: str, now: datetime) -> None:
    with catalog.session() as s, s.begin():
        run = s.get(Run, run_id)
        run.state, run.finished_at, run.message = "failed", now, message[:4000]


def mirror_version(catalog: Catalog, peer: str, dataset: str, info: dict, records: Path, holders: Path,
                   scratch: Path, now: datetime) -> PublishResult:
    """Hold the origin's version `info` (its version JSON; the caller verified its head with
    trust.peer_keys.verify_peer_head) from its files `records` and `holders`, staged in
    `scratch`. MirrorRefused: nothing of it is kept, the mirror stays at its last good version
    (the caller records the refusal: Peers.mirror_failed)."""
    ds, head = _mirrored(catalog, peer, dataset)
    if info.get("dataset") != dataset:
        raise MirrorRefused("inconsistent", f"version info of {info.get('dataset')!r}, asked for {dataset}")
    given = _check_info(dataset, info, head)
    ctype = get_type(ds.certificate_type, where=f"mirrored dataset {dataset}")
    scratch.mkdir(parents=True, exist_ok=True)
    lv, base = stage(catalog, dataset, info, ctype, records, holders, scratch)
    if base != (head.version if head else None):
        raise MirrorRefused("inconsistent", f"dataset {dataset} moved to version {base} while version "
                            f"{info['version']} was staged")
    src = source_id(peer, dataset)
    run_id = _run(catalog, src, int(info["version"]), now)
    try:
        result = catalog.publish(run_id, _listing(ds, src), lv, None, now, base_version=base, head=given,
                                 version=int(info["version"]))
    except Exception as exc:
        _fail_run(catalog, run_id, str(exc), now)
        raise
    with catalog.session() as s, s.begin():
        mirror = s.get(Mirror, dataset)
        mirror.version, mirror.head_hash = result.version, head_hash(given.signed_tree_head)
        mirror.state, mirror.last_error, mirror.synced_at, mirror.checked_at = "ok", None, now, now
    return result
