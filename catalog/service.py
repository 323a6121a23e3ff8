"""The published catalogue: datasets and their sources, publishing a version, and reading it
(lookups, bundles, record status). The run ledger is catalog.ledger.service.Ledger."""
from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from base import clock, times
from base.errors import ConfigError, InvalidRequest, MirrorRefused, NotFound, PublishError
from base.storage import Store
from catalog import registrations
from catalog.db.engine import checkpoint_aside, checkpoint_thread, engine_for
from catalog.db.models import (
    Dataset,
    DatasetVersion,
    Department,
    MetadataChange,
    Objection,
    QuarantineEntry,
    Record,
    Run,
    Source,
)
from catalog.db.rawdb import raw
from catalog.ledger.service import FINAL
from catalog.listing import SourceListing
from catalog.publish import checkpoints, index_load, log_delta, log_version, store
from catalog.publish import status as statuses
from catalog.publish.key_status import key_material
from catalog.publish.log_version import LogVersion
from catalog.signing import vmap
from catalog.signing.keys import KeyStore
from catalog.signing.merkle import MerkleTree
from catalog.signing.tiles import TileLog
from trust.heads import head_hash
from trust.verify import label_unsigned, make_bundle

METADATA = ("title", "steward", "description", "department", "department_name", "sharing",
            "update_cycle")     # a dataset's stewarded metadata: its changes are kept
HISTORY_COLUMNS = ("changed_at", "field", "old_value", "new_value", "changed_by", "source_id",
                   "source_file")


def utcnow() -> datetime:
    return clock.now()


ANY_BASE = object()       # Catalog.publish without a base version to check
TILE_PATH = re.compile(r"tile/[0-9]/(x[0-9]{3}/)*[0-9]{3}(\.p/[0-9]{1,3})?")


class BaseMoved(PublishError):
    """Another publish of the dataset committed while this version was built on the one before."""


def _lock_dataset(s: Session, dataset: str) -> Dataset:
    """The dataset's row, locked for the rest of the transaction: FOR UPDATE, and on SQLite
    (which has no row locks and reads outside a transaction until its first write) a no-op
    write first, which takes the database's write lock before the row is read."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(sa.update(Dataset.__table__).where(Dataset.id == dataset)
                  .values(current_version=Dataset.__table__.c.current_version))
    return s.get(Dataset, dataset, with_for_update=True, populate_existing=True)


@dataclass(frozen=True)
class PublishResult:
    dataset: str
    version: int | None      # None: nothing new to publish
    state: str               # published | unchanged
    tree_size: int
    root_hash: str
    records: int | None = None      # records in the version's state
    appended: int = 0               # record states this version appended to the log


class Catalog:
    def __init__(self, url: str, store: Store, *, pre_ping: bool = True):
        """`store`: where the versions' files are (base/storage.py); the catalogue keeps their
        keys, relative to it."""
        self.engine = engine_for(url, pre_ping)
        self.store = store
        self._logs: dict[str, TileLog] = {}                   # a dataset's log: its tiles cached
        self._maps: OrderedDict[str, vmap.MapLevel] = OrderedDict()   # versions' map levels (immutable)
        self._settling: list[threading.Thread] = []          # WAL checkpoints after publishes

    def _checkpoint_later(self) -> None:
        thread = checkpoint_thread(self.engine)
        self._settling = [t for t in self._settling if t.is_alive()] + ([thread] if thread else [])

    def settle(self) -> None:
        """Wait for the WAL checkpoints started after publishes (SQLite; engine.checkpoint_thread)."""
        while self._settling:
            self._settling.pop().join()

    def _log(self, dataset: str) -> TileLog:
        """The dataset's log, one reader per Catalog: tiles never change once written, so a
        long-lived API host keeps the ones proofs read."""
        log = self._logs.get(dataset)
        if log is None:
            log = self._logs[dataset] = TileLog(self.store, log_version.log_prefix(dataset))
        return log

    def _map(self, key: str) -> vmap.MapLevel:
        level = self._maps.get(key)
        if level is None:
            level = self._maps[key] = vmap.MapLevel.load(self.store.sub(key), "map.bin")
            if len(self._maps) > 16:
                self._maps.popitem(last=False)
        return level

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- sources and runs -------------------------------------------------------------
    def register(self, listing: SourceListing, by: str | None = None) -> list[str]:
        """Add or update a source and its dataset; every change of the stewarded metadata
        (METADATA) is kept in dataset_metadata_changes, the first registration's values too.
        Returns the metadata fields that changed. With `listing.toml`, the registration's text
        is stored too (catalog/registrations.py), in the same transaction; a source cannot move
        to another dataset."""
        now = utcnow()
        with self.session() as s, s.begin():
            if listing.toml is not None:
                before = s.get(Source, listing.source)
                if before is not None and before.dataset_id != listing.dataset:
                    raise ConfigError(
                        f"来源不能换数据集 (source cannot move): source {listing.source} is registered for "
                        f"dataset {before.dataset_id}; a registration cannot move it to {listing.dataset}: "
                        "give it a new id")
                registrations.put(s, listing.source, listing.toml, origin=listing.source_file, by=by,
                                  now=now)
            ds = s.get(Dataset, listing.dataset)
            meta = listing.metadata()
            attrs = dict(certificate_type=listing.certificate_type, type_version=listing.type_version,
                         **meta)
            old = dict.fromkeys(meta) if ds is None else {k: getattr(ds, k) for k in meta}
            if ds is None:
                s.add(Dataset(id=listing.dataset, created_at=now, **attrs))
                s.flush()
            else:
                for k, v in attrs.items():
                    setattr(ds, k, v)
            changed = [k for k, v in meta.items() if old[k] != v]
            s.add_all(MetadataChange(dataset_id=listing.dataset, field=k, old_value=old[k],
                                     new_value=meta[k], changed_at=now, changed_by=by,
                                     source_id=listing.source, source_file=listing.source_file)
                      for k in changed)
            src = s.get(Source, listing.source)
            if src is None:
                s.add(Source(id=listing.source, dataset_id=listing.dataset,
                             connector_kind=listing.connector_kind,
                             registration=_jsonable(listing.registration), registered_at=now))
            else:
                src.registration = _jsonable(listing.registration)
        return changed

    def dataset(self, dataset: str) -> dict:
        """A dataset's metadata, its sources and the history of its metadata changes."""
        with self.session() as s:
            ds = s.get(Dataset, dataset)
            if ds is None:
                known = s.scalars(sa.select(Dataset.id).order_by(Dataset.id)).all()
                raise NotFound(f"no dataset {dataset!r}; known: {', '.join(known) or '(none)'}")
            sources = s.scalars(sa.select(Source).where(Source.dataset_id == dataset)
                                .order_by(Source.id)).all()
            history = s.scalars(sa.select(MetadataChange).where(MetadataChange.dataset_id == dataset)
                                .order_by(MetadataChange.id)).all()
            return {"dataset": ds.id, "certificate_type": ds.certificate_type,
                    "type_version": ds.type_version, "current_version": ds.current_version,
                    "created_at": ds.created_at, **{k: getattr(ds, k) for k in METADATA},
                    "sources": [{"source": x.id, "connector": x.connector_kind,
                                 "registered_at": x.registered_at, "registration": x.registration}
                                for x in sources],
                    "history": [{c: getattr(h, c) for c in HISTORY_COLUMNS} for h in history]}

    # --- publishing -------------------------------------------------------------------
    def publish(self, run_id: int, listing: SourceListing, lv: LogVersion, keys: KeyStore | None,
                now: datetime | None = None, *, base_version=ANY_BASE,
                head: checkpoints.GivenHead | None = None, version: int | None = None) -> PublishResult:
        """One transaction: the version (the log's next checkpoint), its index rows (the records'
        changes are read from them: publish/status.py) and the run's state, or nothing. `lv`
        (catalog/publish/log_version.py) holds only the record states that changed.
        Its leaves are dropped once in the log (`lv.appended` is 0 after).
        `base_version`: the current version `lv` was built on; if another publish moved the
        dataset on meanwhile, BaseMoved is raised under the dataset's lock, before anything is
        written, and the caller builds again.
        `head` (a mirror, catalog/federation/mirror.py): the peer's signed checkpoint of this
        version, stored as it is (`keys` unused); its payload must name what this catalogue
        computed (checkpoints.HEAD_FIELDS), else MirrorRefused and nothing is kept. `version`:
        the version's number when the dataset has none yet (a mirror starts at the origin's
        first log version); after that it must be the next."""
        now = now or utcnow()
        final_key: str | None = None
        written: list[str] = []
        # the loader attaches its scratch file (SQLite) before the transaction, detaches it after;
        # the WAL is checkpointed on a thread after the commit (settle())
        with self.engine.connect() as conn, checkpoint_aside(conn), index_load.loader(conn) as loader, \
                Session(conn, expire_on_commit=False) as s:
            try:
                with s.begin():
                    ds = _lock_dataset(s, listing.dataset)   # publishes of one dataset: one at a time
                    run = s.get(Run, run_id)
                    if run.state in FINAL:       # the same run again: publish nothing twice
                        return PublishResult(listing.dataset, run.version, run.state,
                                             run.accepted or 0, "")
                    if base_version is not ANY_BASE and ds.current_version != base_version:
                        raise BaseMoved(f"dataset {ds.id} moved from version {base_version} to "
                                        f"{ds.current_version} while this version was built")
                    prev = (s.get(DatasetVersion, (ds.id, ds.current_version))
                            if ds.current_version else None)
                    if prev and lv.appended == 0:
                        if head is not None:
                            raise MirrorRefused("inconsistent", f"dataset {ds.id}: a signed version that "
                                                "appends nothing to the log")
                        run.state, run.finished_at, run.version = "unchanged", now, prev.version
                        return PublishResult(ds.id, prev.version, "unchanged", prev.tree_size, prev.root_hash)
                    next_version = (prev.version if prev else 0) + 1
                    if version is not None and version != next_version and (prev or version < 1):
                        raise PublishError(f"dataset {ds.id}: version {version} cannot follow "
                                           f"{prev.version if prev else 'none'}")
                    version = version if version is not None else next_version
                    loader.prepare(lv.index_path)     # SQLite: sorted and ingested while the log grows
                    log = TileLog(self.store, log_version.log_prefix(ds.id))
                    if prev is not None and ds.log_from is None:     # a catalogue from before the log
                        written += _adopt(log, self.store, ds, prev)
                    if lv.first_leaf != (prev.tree_size if prev else 0):
                        raise PublishError(f"dataset {ds.id}: the version was built on a log of "
                                           f"{lv.first_leaf} leaves, the log has {prev.tree_size if prev else 0}")
                    appended = log.append(lv.first_leaf, [lv.leaves])
                    lv.leaves = lv.leaves[:0].copy()   # in the tiles (the map made): not held while the index loads
                    written += appended.keys
                    final_key = store.version_key(ds.id, version)
                    self.store.delete_prefix(final_key)   # left by a crash before its commit
                    if head is None:
                        assert keys is not None, "a version is signed with the exchange's keys"
                        jws, note = checkpoints.sign(keys, ds.id, version, appended.size, appended.root,
                                                     lv.map, now, prev.signed_tree_head if prev else None,
                                                     prev.checkpoint if prev else None)
                        kid, published_at = keys.signer().kid, now
                    else:            # a mirror: the peer's head, checked against what was computed here
                        head.check({"dataset": ds.id, "version": version, "tree_size": appended.size,
                                    "root_hash": appended.root.hex(), "map_bits": lv.map.bits,
                                    "map_root": lv.map.root().hex(),
                                    "previous_head_hash": prev.head_hash if prev else None})
                        jws, note = head.signed_tree_head, head.checkpoint
                        kid, published_at = head.kid, head.issued_at
                    (lv.directory / "head.jws").write_text(jws, encoding="ascii")
                    (lv.directory / "checkpoint").write_text(note, encoding="utf-8")
                    lv.map.save(Store.local(lv.directory), "map.bin")
                    s.add(DatasetVersion(
                        dataset_id=ds.id, version=version, tree_size=appended.size,
                        root_hash=appended.root.hex(), content_digest=lv.map.root().hex(),
                        signed_tree_head=jws, head_hash=head_hash(jws),
                        previous_head_hash=prev.head_hash if prev else None, kid=kid,
                        type_version=listing.type_version, path=final_key, run_id=run.id,
                        published_at=published_at, first_leaf=lv.first_leaf, record_count=lv.record_count,
                        map_bits=lv.map.bits, map_root=lv.map.root().hex(), checkpoint=note))
                    if ds.log_from is None:
                        ds.log_from = version
                    s.flush()
                    if prev is not None:      # only a publish sets current_version: before it, no rows
                        _supersede(s, ds.id, version, lv.iter_record_ids(_SUPERSEDE_CHUNK))
                    _insert_index(loader, ds.id, version, lv.index_path)
                    self.store.put_dir(lv.directory, final_key, move=True)
                    ds.current_version = version
                    run.state, run.finished_at, run.version = "published", now, version
                self._checkpoint_later()
                self.store.write_text(f"{log_version.log_prefix(ds.id)}/checkpoint", note)
                return PublishResult(ds.id, version, "published", appended.size, appended.root.hex(),
                                     lv.record_count, appended.size - lv.first_leaf)
            except Exception as exc:
                if final_key is not None:
                    self.store.delete_prefix(final_key)
                for key in written:
                    self.store.delete(key)
                if isinstance(exc, (PublishError, MirrorRefused)):
                    raise
                raise PublishError(f"dataset {listing.dataset}: the version was not published "
                                   f"({type(exc).__name__}: {exc}); nothing of it was kept, "
                                   "re-run the DAG run") from exc

    def current_state(self, dataset: str) -> tuple[int | None, pa.Table, dict[int, tuple[str, int]], int]:
        """(current version, its record states, version -> (folder key, first leaf), log size):
        what a log version is built on (catalog/publish/log_version.py)."""
        with self.engine.connect() as conn:
            cur = conn.execute(sa.select(Dataset.current_version).where(Dataset.id == dataset)).scalar()
            versions = {v: (path, first or 0) for v, path, first in conn.execute(
                sa.select(DatasetVersion.version, DatasetVersion.path, DatasetVersion.first_leaf)
                .where(DatasetVersion.dataset_id == dataset))}
            size = conn.execute(sa.select(DatasetVersion.tree_size).where(
                DatasetVersion.dataset_id == dataset, DatasetVersion.version == cur)).scalar() if cur else 0
            return cur, log_version.current_state(conn, self.store, dataset), versions, size or 0

    def delta_base(self, dataset: str) -> tuple[int | None, dict[int, tuple[str, int]], int, log_delta.DeltaBase]:
        """(current version, version -> (folder key, first leaf), log size, what a Delta version
        is built on: the current map and record count, and the index reads it needs) without
        reading the current state (catalog/publish/log_delta.py)."""
        with self.engine.connect() as conn:
            cur = conn.execute(sa.select(Dataset.current_version).where(Dataset.id == dataset)).scalar()
            versions = {v: (path, first or 0) for v, path, first in conn.execute(
                sa.select(DatasetVersion.version, DatasetVersion.path, DatasetVersion.first_leaf)
                .where(DatasetVersion.dataset_id == dataset))}
            head = conn.execute(sa.select(DatasetVersion.tree_size, DatasetVersion.record_count,
                                          DatasetVersion.map_root, DatasetVersion.path).where(
                DatasetVersion.dataset_id == dataset, DatasetVersion.version == cur)).first() if cur else None
        level = None
        if head is not None and head.map_root:
            try:
                level = self._map(head.path)
            except (OSError, ValueError):                # no map.bin to start from: build it whole
                level = None
            if level is not None and level.root().hex() != head.map_root:      # nor from another map
                level = None
        reader = log_delta.IndexReader(self.engine, self.store, dataset)
        return (cur, versions, head.tree_size if head else 0,
                log_delta.DeltaBase(level, (head.record_count or 0) if head else 0, reader))

    def current_records_by_licence(self, dataset: str, numbers: list[str]) -> dict[str, str]:
        """licence number -> record id of the dataset's current records with those numbers
        (indexed by licence number since migration 0018, read in chunks)."""
        wanted = sorted(set(numbers))
        r = Record.__table__.c
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for at in range(0, len(wanted), log_delta.CHUNK):
                out.update(conn.execute(sa.select(r.licence_number, r.record_id).where(
                    r.dataset_id == dataset, r.superseded_in.is_(None),
                    r.licence_number.in_(wanted[at:at + log_delta.CHUNK]))).all())
        return out

    def sources_of(self, dataset: str) -> list[str]:
        """The sources that publish into `dataset`."""
        with self.session() as s:
            return list(s.scalars(sa.select(Source.id).where(Source.dataset_id == dataset).order_by(Source.id)))

    def current_version_files(self, dataset: str) -> Store | None:
        """The folder of the dataset's current version, as a Store (the snapshot diff reads it)."""
        return self.current_version(dataset)[1]

    def current_version(self, dataset: str) -> tuple[int | None, Store | None]:
        """The dataset's current version and its folder (a Store), read together (None, None
        before the first). A publish built on them passes the version as `base_version`."""
        with self.session() as s:
            row = s.execute(sa.select(Dataset.current_version, DatasetVersion.path).outerjoin(
                DatasetVersion, sa.and_(Dataset.id == DatasetVersion.dataset_id,
                                        Dataset.current_version == DatasetVersion.version))
                .where(Dataset.id == dataset)).first()
            if row is None or row[0] is None:
                return None, None
            return row[0], self.store.sub(row[1])

    # --- reading ----------------------------------------------------------------------
    def datasets(self) -> list[dict]:
        with self.session() as s:
            rows = s.execute(sa.select(Dataset, DatasetVersion).outerjoin(
                DatasetVersion, sa.and_(DatasetVersion.dataset_id == Dataset.id,
                                        DatasetVersion.version == Dataset.current_version))
                .order_by(Dataset.id)).all()
            return [{"dataset": d.id, "title": d.title, "certificate_type": d.certificate_type,
                     "department": d.department, "department_name": d.department_name,
                     "sharing": d.sharing, "update_cycle": d.update_cycle, "version": d.current_version,
                     "records": _count(v) if v else 0,
                     "published_at": times.iso(v.published_at) if v else None,
                     "root_hash": v.root_hash if v else None} for d, v in rows]

    def department_names(self) -> dict[str, str]:
        """Every department's name by id, for showing a name wherever an id is: the owners'
        names from their registrations and datasets, the consumer departments' own."""
        with self.session() as s:
            names = {r.get("department"): r.get("department_name")
                     for r in s.scalars(sa.select(Source.registration)) if isinstance(r, dict)}
            names.update((k, v) for k, v in s.execute(sa.select(Dataset.department, Dataset.department_name)))
            names.update((k, v) for k, v in s.execute(sa.select(Department.id, Department.name)))
        return {k: v for k, v in names.items() if k and v}

    def versions(self, dataset_id: str, limit: int = 50) -> list[dict]:
        """A dataset's versions, newest first."""
        with self.session() as s:
            return [{"version": v.version, "records": _count(v), "root_hash": v.root_hash,
                     "published_at": v.published_at, "kid": v.kid, "type_version": v.type_version,
                     "run_id": v.run_id}
                    for v in s.scalars(sa.select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
                                       .order_by(DatasetVersion.version.desc()).limit(limit))]

    def lookup(self, holder_key: str, today: date | None = None) -> list[dict]:
        """A holder's current records. The API's hot path: a prebuilt statement on the driver
        (catalog/db/rawdb.py), in autocommit."""
        today = today or clock.today()
        prefix = store.holder_prefix(holder_key)
        r = raw(self.engine)
        sql, args = r.args(_LOOKUP, {"lo": prefix, "hi": prefix + "g", "holder": holder_key})
        with r.connection() as c:
            rows = c.execute(sql, args).fetchall()
        out = []
        for record_id, dataset, title, version, number, name, status, valid_to, disputed in rows:
            if isinstance(valid_to, str):          # SQLite keeps dates as ISO text
                valid_to = date.fromisoformat(valid_to)
            out.append({"record_id": record_id, "dataset": dataset, "title": title,
                        "version": version, "licence_number": number, "holder_name": name,
                        "status": statuses.standing(status, valid_to, today),
                        "valid_to": valid_to.isoformat() if valid_to else None,
                        "disputed": bool(disputed)})
        return out

    def bundle(self, record_id: str, today: date | None = None) -> dict:
        """The record's current state with its proofs: inclusion in the log at the dataset's
        current version and, from the log's versions on, the map proof that it is the record's
        latest state there (docs/verification.md)."""
        today = today or clock.today()
        with self.session() as s:
            hit = s.execute(sa.select(Record, DatasetVersion).join(
                DatasetVersion, sa.and_(DatasetVersion.dataset_id == Record.dataset_id,
                                        DatasetVersion.version == Record.version))
                .where(Record.record_id == record_id)
                .order_by(Record.version.desc()).limit(1)).first()
            if hit is None:
                raise NotFound(f"no record {record_id!r}; find record ids with `exchange lookup HOLDER_ID`")
            rec, ver = hit
            st = statuses.record_status(s, self.store, record_id, today=today)
            head = ver
            if rec.superseded_in is None:
                head = s.scalar(sa.select(DatasetVersion).join(Dataset, sa.and_(
                    Dataset.id == DatasetVersion.dataset_id, Dataset.current_version == DatasetVersion.version))
                    .where(Dataset.id == rec.dataset_id))
            entries = self._bucket(s, rec.dataset_id, head, record_id) if head.map_root else None
        if head.first_leaf is None:            # a version from before the log: its own tree
            directory = self.store.sub(ver.path)
            path = store.inclusion_proof(directory, rec.leaf_index)
            record = store.read_record(directory, rec.leaf_index)
        else:
            path = self._log(rec.dataset_id).inclusion_proof(rec.leaf_index, head.tree_size)
            record = store.read_record(self.store.sub(ver.path), rec.leaf_index - (ver.first_leaf or 0))
        proof = None
        if entries is not None:
            bucket, rows = entries
            level, log = self._map(head.path), self._log(rec.dataset_id)
            rows = [(r, i, bytes.fromhex(h) if h else log.leaf(i, head.tree_size)) for r, i, h in rows]
            proof = vmap.proof(level.bits, bucket, rows, level.path(bucket))
        bundle = make_bundle(
            record_id=record_id, dataset=rec.dataset_id, version=head.version,
            leaf_index=rec.leaf_index, tree_size=head.tree_size, audit_path=path, record=record,
            signed_tree_head=head.signed_tree_head, status=st["status"], map_proof=proof)
        return label_unsigned({**bundle, "status_since": st["since"], "status_reason": st["reason"],
                               "disputed": st["disputed"], "dispute": st["dispute"], "disputes": st["disputes"]})

    @staticmethod
    def _bucket(s: Session, dataset: str, head: DatasetVersion, record_id: str):
        """(bucket, [(record id, leaf index, leaf hash or None)]) of the record's map bucket at
        the current version `head`: the current states of the bucket's records, by record id."""
        bucket = vmap.bucket_of(record_id, head.map_bits)
        lo, hi = vmap.bucket_range(bucket, head.map_bits)
        r = Record.__table__.c
        where = [r.dataset_id == dataset, r.superseded_in.is_(None), r.record_id >= lo]
        if hi is not None:
            where.append(r.record_id < hi)
        rows = s.execute(sa.select(r.record_id, r.leaf_index, r.leaf_hash).where(*where)
                         .order_by(r.record_id)).all()
        return bucket, [tuple(x) for x in rows]

    def consistency(self, dataset: str, first: int, second: int) -> dict:
        """An RFC 9162 consistency proof between two versions of a dataset's log, beside both
        versions' signed checkpoints (docs/verification.md, "The log")."""
        if first > second:
            raise InvalidRequest(f"起始版本晚于结束版本 (from after to): --from {first} is after --to {second}: "
                                 "give the older version first")
        with self.session() as s:
            ds = s.get(Dataset, dataset)
            if ds is None:
                known = s.scalars(sa.select(Dataset.id).order_by(Dataset.id)).all()
                raise NotFound(f"no dataset {dataset!r}; known: {', '.join(known) or '(none)'}")
            rows = {v.version: v for v in s.scalars(sa.select(DatasetVersion).where(
                DatasetVersion.dataset_id == dataset, DatasetVersion.version.in_((first, second))))}
        for v in (first, second):
            if v not in rows:
                raise NotFound(f"没有该版本 (no such version): dataset {dataset} has no version {v}; its current "
                               f"version is {ds.current_version or '(none)'}")
            if rows[v].first_leaf is None:
                raise NotFound(f"该版本早于只追加日志 (before the log): version {v} of {dataset} predates its "
                               f"append-only log (the log starts at "
                               f"version {ds.log_from or (ds.current_version or 0) + 1}): no consistency "
                               "proof reaches it; its own signed head still verifies its records")
        a, b = rows[first], rows[second]
        proof = self._log(dataset).consistency_proof(a.tree_size, b.tree_size)
        return {"dataset": dataset, "first_version": first, "second_version": second,
                "first_size": a.tree_size, "second_size": b.tree_size,
                "first_root": a.root_hash, "second_root": b.root_hash, "proof": [p.hex() for p in proof],
                "first_checkpoint": {"signed_tree_head": a.signed_tree_head, "checkpoint": a.checkpoint},
                "second_checkpoint": {"signed_tree_head": b.signed_tree_head, "checkpoint": b.checkpoint}}

    def log_checkpoint(self, dataset: str) -> str:
        """The dataset's latest signed-note checkpoint (C2SP tlog-checkpoint)."""
        with self.session() as s:
            note = s.scalar(sa.select(DatasetVersion.checkpoint).join(Dataset, sa.and_(
                Dataset.id == DatasetVersion.dataset_id, Dataset.current_version == DatasetVersion.version))
                .where(Dataset.id == dataset))
        if not note:
            raise NotFound(f"尚无日志检查点 (no checkpoint yet): dataset {dataset!r} has no log checkpoint yet: "
                           "it appears with its next version")
        return note

    def log_tile(self, dataset: str, path: str) -> bytes:
        """A tile of the dataset's log (C2SP tlog-tiles path: tile/<L>/<N>[.p/<W>])."""
        if not TILE_PATH.fullmatch(path) or not store.DATASET_NAME.fullmatch(dataset):
            raise NotFound(f"不是日志瓦片 (not a tile): {path!r} of {dataset!r} is not a tile of a log "
                           "(tile/<L>/<N>[.p/<W>])")
        key = f"{log_version.log_prefix(dataset)}/{path}"
        if not self.store.exists(key):
            raise NotFound(f"没有该瓦片 (no such tile): no tile {path} in the log of {dataset!r}")
        return self.store.read_bytes(key)

    def key_material(self) -> tuple[str, str] | None:
        """(jwks.json's text, key-status.jws's compact JWS) as the catalogue publishes them;
        None before the first key is published (catalog/publish/key_status.py)."""
        return key_material(self.engine)

    def record_status(self, record_id: str, version: int | None = None,
                      leaf_hash: str | None = None, today: date | None = None) -> dict:
        """valid | expired | revoked | withdrawn | superseded, since when, and the history."""
        with self.session() as s:
            st = statuses.record_status(s, self.store, record_id, version, leaf_hash, today)
        if st is None:
            raise NotFound(f"no record {record_id!r}; find record ids with `exchange lookup HOLDER_ID`")
        return st

    def sample_holder(self, dataset: str) -> str | None:
        with self.session() as s:
            return s.scalar(sa.select(Record.holder_key)
                            .where(Record.dataset_id == dataset, Record.superseded_in.is_(None),
                                   Record.status == "valid")
                            .order_by(Record.leaf_index).limit(1))

    def current_size(self, dataset: str) -> int | None:
        """Live records (not withdrawn) of the current version; None before the first. On the
        log: its record count less the withdrawn ones (counted by a partial index, migration 0020)."""
        with self.session() as s:
            head = s.execute(sa.select(Dataset.current_version, DatasetVersion.record_count,
                                       DatasetVersion.first_leaf).outerjoin(DatasetVersion, sa.and_(
                                           DatasetVersion.dataset_id == Dataset.id,
                                           DatasetVersion.version == Dataset.current_version))
                             .where(Dataset.id == dataset)).first()
            if head is None or head[0] is None:
                return None
            current = [Record.dataset_id == dataset, Record.superseded_in.is_(None)]
            if head[1] is None or head[2] is None:       # before the log: count them
                return s.scalar(sa.select(sa.func.count()).select_from(Record).where(
                    *current, Record.status != statuses.WITHDRAWN))
            return head[1] - s.scalar(sa.select(sa.func.count()).select_from(Record).where(
                Record.dataset_id == dataset, *log_delta.CURRENT_WITHDRAWN))


def _adopt(log: TileLog, files: Store, ds: Dataset, prev: DatasetVersion) -> list[str]:
    """A dataset published before the log: its current version's tree becomes the log's first
    leaves (same leaves, same order: the same root), so its signed head, and every bundle
    signed under it, is the log's first checkpoint."""
    leaves = MerkleTree.open_in(files.sub(prev.path), "tree.bin").leaf_array()
    done = log.append(0, [leaves])
    if done.size != prev.tree_size or done.root.hex() != prev.root_hash:
        raise PublishError(f"dataset {ds.id}: version {prev.version}'s tree.bin does not give its signed "
                           "root; the log cannot start from it (run `exchange audit-chain`)")
    ds.log_from, prev.first_leaf = prev.version, 0
    return done.keys


_SUPERSEDE_CHUNK = 500


def _supersede(s: Session, dataset: str, version: int, chunks: Iterable[list[str]]) -> None:
    """The current rows of records that get a new state in `version` are no longer current
    (`chunks`: their ids, a list of at most _SUPERSEDE_CHUNK at a time). SQLite: in the driver's
    own SQL (SQLAlchemy's compiling of each chunk's IN list cost about as much as the update)."""
    if s.get_bind().dialect.name == "sqlite":
        conn = s.connection()
        for ids in chunks:
            conn.exec_driver_sql(sqlite_supersede_sql(len(ids)), (version, *ids, dataset))
        return
    for ids in chunks:
        s.execute(supersede_statement(dataset, version, ids))


def sqlite_supersede_sql(n: int) -> str:
    """_supersede's UPDATE on SQLite for n ids (parameters: version, the ids, dataset): by the
    primary key, a look-up an id (unary + keeps the other terms off the partial indexes, whose
    scan of every current record it would pick)."""
    return (f"UPDATE records SET superseded_in = ? WHERE record_id IN ({', '.join('?' * n)}) "
            "AND +dataset_id = ? AND +superseded_in IS NULL")


def supersede_statement(dataset: str, version: int, ids: list[str]) -> sa.Update:
    """The UPDATE of _supersede on other databases (SQLite: sqlite_supersede_sql)."""
    r = Record.__table__.c
    return sa.update(Record.__table__).where(r.dataset_id == dataset, r.superseded_in.is_(None),
                                             r.record_id.in_(ids)).values(superseded_in=version)


def _insert_index(loader: index_load.IndexLoader, dataset: str, version: int, index_path: Path) -> None:
    """The version's index rows into `records`, in bulk, in the publishing transaction
    (catalog/publish/index_load.py: ADBC and ATTACH on SQLite, COPY on PostgreSQL)."""
    loader.load(index_path, dataset, version)


def _count(v: DatasetVersion) -> int:
    """Records in a version (its tree size before the log, which held every record)."""
    return v.record_count if v.record_count is not None else v.tree_size


_r = Record.__table__.c
_q = QuarantineEntry.__table__.c
_o = Objection.__table__.c
# catalog.publish.status.dispute: quarantined rows hold the record, or an objection to it is not
# closed (each an indexed EXISTS: ix_quarantine_held_record, ix_objections_record_state); literals, no
# parameters: rawdb
_DISPUTED = sa.or_(sa.exists().where(_q.held_record_id == _r.record_id, _q.state == sa.literal_column("'open'")),
                   sa.exists().where(_o.record_id == _r.record_id,
                                     _o.state.in_([sa.literal_column("'open'"), sa.literal_column("'correcting'")])))
_LOOKUP = (sa.select(_r.record_id, _r.dataset_id, Dataset.title, Dataset.current_version, _r.licence_number,
                     _r.holder_name, _r.status, _r.valid_to, _DISPUTED.label("disputed"))
           .join(Dataset, Dataset.id == _r.dataset_id)
           .where(_r.record_id >= sa.bindparam("lo"), _r.record_id < sa.bindparam("hi"),
                  _r.holder_key == sa.bindparam("holder"), _r.superseded_in.is_(None))
           .order_by(_r.dataset_id, _r.licence_number))   # a holder's records: a primary-key range


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))
