"""Catalogue tables. Schema changes go through Alembic migrations in catalog/migrations."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    certificate_type: Mapped[str] = mapped_column(String(64))
    type_version: Mapped[int] = mapped_column(Integer)
    department: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    sharing: Mapped[str] = mapped_column(String(32))
    update_cycle: Mapped[str] = mapped_column(String(32))
    steward: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)              # migration 0008
    department_name: Mapped[str | None] = mapped_column(String(255))   # migration 0008
    current_version: Mapped[int | None] = mapped_column(Integer)
    log_from: Mapped[int | None] = mapped_column(Integer)        # migration 0017: first log version
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Source(Base):
    __tablename__ = "sources"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    connector_kind: Mapped[str] = mapped_column(String(32))
    registration: Mapped[dict] = mapped_column(JSON)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StoredRegistration(Base):
    """A source's registration file as registered: the TOML text every scheduler, DAG processor
    and worker reads (catalog/registrations.py; migration 0015)."""
    __tablename__ = "registrations"
    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    toml: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))   # first stored
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registered_by: Mapped[str | None] = mapped_column(String(255))
    origin: Mapped[str | None] = mapped_column(String(1024))     # the file it was stored from


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[str] = mapped_column(String(64))
    content_digest: Mapped[str] = mapped_column(String(64))
    signed_tree_head: Mapped[str] = mapped_column(Text)
    head_hash: Mapped[str] = mapped_column(String(64), unique=True)
    previous_head_hash: Mapped[str | None] = mapped_column(String(64))
    kid: Mapped[str] = mapped_column(String(128))
    type_version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)      # the version folder's key in the store (store/<dataset>/v000001)
    first_leaf: Mapped[int | None] = mapped_column(BigInteger)     # 0017: its first appended leaf
    record_count: Mapped[int | None] = mapped_column(BigInteger)   # records in its current state
    map_bits: Mapped[int | None] = mapped_column(Integer)
    map_root: Mapped[str | None] = mapped_column(String(64))
    checkpoint: Mapped[str | None] = mapped_column(Text)           # C2SP signed note
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_source_key", "source_id", "run_key", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    run_key: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32))   # running | published | unchanged | failed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    extracted: Mapped[int | None] = mapped_column(BigInteger)
    accepted: Mapped[int | None] = mapped_column(BigInteger)
    quarantined: Mapped[int | None] = mapped_column(BigInteger)
    reasons: Mapped[dict | None] = mapped_column(JSON)      # expectation -> failing rows
    version: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    dag_run_id: Mapped[str | None] = mapped_column(String(255))   # Airflow's run id, for links
    # the process running it outside Airflow (`exchange run`/`approve`; catalog/ledger/run_owner.py),
    # migration 0013; None for Airflow's tasks (their failure callback answers for them)
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_start: Mapped[str | None] = mapped_column(String(64))  # boot id and start time of the pid


# partial indexes (migration 0020): of the current records alone, so a changed record's old
# state leaves them (no entry moves to the superseded ones) and they never grow with history
_CURRENT = text("superseded_in IS NULL")
_WITHDRAWN = text("superseded_in IS NULL AND status = 'withdrawn'")   # the current withdrawn records


class Record(Base):
    """Index of published record states: one row per state appended to the dataset's log (its
    version and log leaf index; `superseded_in` the version that replaced it, null while current).
    Versions from before the log (migration 0017) have one row per record per version.

    record_id = 12 hex of SHA-256(holder key) + 20 hex of SHA-256(dataset ‖ licence number):
    stable across versions, and a holder's records share a prefix, so one primary-key B-tree
    serves both `record_id =` and holder lookups (a prefix range), and sorted bulk inserts
    append instead of landing at random.
    """
    __tablename__ = "records"
    __table_args__ = (Index("ix_records_dataset_current", "dataset_id", "record_id", "leaf_index", "leaf_hash",
                            "superseded_in",
                            sqlite_where=_CURRENT, postgresql_where=_CURRENT),    # covers a map bucket (0021)
                      Index("ix_records_dataset_licence", "dataset_id", "licence_number", "superseded_in",
                            sqlite_where=_CURRENT, postgresql_where=_CURRENT),    # covers the ids of numbers
                      Index("ix_records_dataset_withdrawn", "dataset_id", "status",
                            sqlite_where=_WITHDRAWN, postgresql_where=_WITHDRAWN),
                      {"sqlite_with_rowid": False})
    record_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(128), ForeignKey("datasets.id"))
    leaf_index: Mapped[int] = mapped_column(BigInteger)
    holder_key: Mapped[str] = mapped_column(String(64))
    holder_code_type: Mapped[str] = mapped_column(String(8))
    holder_name: Mapped[str] = mapped_column(String(255))
    licence_number: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    valid_to: Mapped[date | None] = mapped_column(Date)
    leaf_hash: Mapped[str | None] = mapped_column(String(64))       # 0017
    superseded_in: Mapped[int | None] = mapped_column(Integer)      # 0017


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_seq", "seq", unique=True),
                      Index("ix_audit_log_holder", "holder", "seq"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    department: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict | None] = mapped_column(JSON)
    # hash chain (catalog/serving/audit.py; migration 0007)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(64))
    datasets: Mapped[list | None] = mapped_column(JSON)
    fields: Mapped[list | None] = mapped_column(JSON)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    entry_hash: Mapped[str | None] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the newest audit entry's sequence number and hash (locks appends in order)."""
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed checkpoint of the audit chain (catalog/serving/audit_checkpoints.py; migration 0012):
    its size and head hash at a time, as a compact JWS of the exchange's signing key."""
    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_size", "size"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kid: Mapped[str] = mapped_column(String(64))
    signed: Mapped[str] = mapped_column(Text)


class Department(Base):
    """A consuming department known to the exchange; role consumer | auditor."""
    __tablename__ = "departments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # migration 0022: where its change notices are POSTed (set by the operator, never by the
    # department itself); how many working days it has to answer an objection (None: 5)
    notice_endpoint: Mapped[str | None] = mapped_column(String(1024))
    objection_days: Mapped[int | None] = mapped_column(Integer)


class Credential(Base):
    """An API key: only SHA-256 of its random secret is stored."""
    __tablename__ = "credentials"
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DashboardSession(Base):
    """A dashboard login (api/dashboard/session.py), migration 0013. `id` is the SHA-256 of the
    cookie's random token; a logout sets ended_at, which every worker process sees."""
    __tablename__ = "dashboard_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("credentials.key_id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Grant(Base):
    """Consumer department x dataset x purposes x fields (None: all) until expires_at."""
    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_department", "department_id", "dataset_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    purposes: Mapped[list] = mapped_column(JSON)
    fields: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RecordEvent(Base):
    """A change in a record between two consecutive versions of its dataset, for the versions up
    to its dataset's `log_from` (from before the log); nothing writes it any more: later changes
    are read from the records' states (catalog/publish/status.py). A record's first appearance
    in version 1 has no event; the content a change gave it is its `records` row of the same
    version, and its time is its version's publication (`dataset_versions.published_at`)."""
    __tablename__ = "record_events"
    __table_args__ = (Index("ix_record_events_record", "record_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(128), ForeignKey("datasets.id"))
    record_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)           # the version the change took effect in
    change: Mapped[str] = mapped_column(String(16))         # added | amended | revoked | reinstated | withdrawn
    status: Mapped[str] = mapped_column(String(16))         # the standing from then on
    reason: Mapped[str | None] = mapped_column(String(64))  # the source's status word, if not valid


class Watermark(Base):
    """The newest change-timestamp value of a source whose version has been published."""
    __tablename__ = "source_watermarks"
    source_id: Mapped[str] = mapped_column(String(128), ForeignKey("sources.id"), primary_key=True)
    column: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text)
    run_key: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TakenFile(Base):
    """The ledger of dropped files whose content fed a published version: each is taken once."""
    __tablename__ = "taken_files"
    source_id: Mapped[str] = mapped_column(String(128), ForeignKey("sources.id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    run_key: Mapped[str] = mapped_column(String(255))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class QuarantineEntry(Base):
    """A quarantined silo row, identified across runs by `key` (quality/validate.py::row_key: the
    licence number) and `row_hash` (the row's content; migration 0011): rows sharing a licence
    number are entries of their own.
    open -> reviewed (a steward's note) -> resolved (a later run accepted it or no longer saw it)."""
    __tablename__ = "quarantine_entries"
    __table_args__ = (Index("ix_quarantine_source_key_row", "source_id", "key", "row_hash", unique=True),
                      Index("ix_quarantine_dataset_key", "dataset_id", "key"),
                      Index("ix_quarantine_held_record", "held_record_id"),
                      Index("ix_quarantine_dataset_state", "dataset_id", "state"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(128), ForeignKey("sources.id"))
    dataset_id: Mapped[str] = mapped_column(String(128), ForeignKey("datasets.id"))
    key: Mapped[str] = mapped_column(String(128))
    row_hash: Mapped[str] = mapped_column(String(40), server_default="")
    # the current version's record with this licence number, held back (disputed) by this row
    held_record_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list] = mapped_column(JSON)
    values: Mapped[str | None] = mapped_column(Text)              # the raw row: the run's quarantine file
    first_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    last_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_run_id: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RunQuality(Base):
    """What the quality gates saw in a run: silo columns, drift, Data Docs, the size gate."""
    __tablename__ = "run_quality"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    silo_columns: Mapped[dict | None] = mapped_column(JSON)        # column -> Arrow type
    unmapped_columns: Mapped[list | None] = mapped_column(JSON)
    new_columns: Mapped[list | None] = mapped_column(JSON)         # unmapped and not seen before
    data_docs: Mapped[str | None] = mapped_column(Text)            # store key of the run's Data Docs index.html
    size_gate: Mapped[dict | None] = mapped_column(JSON)           # previous, accepted, change, limit
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approval_note: Mapped[str | None] = mapped_column(Text)
    change_detection: Mapped[dict | None] = mapped_column(JSON)    # mode, reason, carried, checked rows


class MetadataChange(Base):
    """One change of a dataset's stewarded metadata (title, steward, description, department,
    sharing, update cycle), written by Catalog.register; the first registration records the
    initial values (migration 0008)."""
    __tablename__ = "dataset_metadata_changes"
    __table_args__ = (Index("ix_metadata_changes_dataset", "dataset_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(128), ForeignKey("datasets.id"))
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str | None] = mapped_column(String(255))
    source_id: Mapped[str | None] = mapped_column(String(128))
    source_file: Mapped[str | None] = mapped_column(Text)


class Alert(Base):
    """An alert said to operators: a run failed or overran its deadline, a dataset turned late or
    stale, or recovered. The watch reads the latest freshness alert so it says each thing once."""
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_dataset_kind", "dataset_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16))       # failed | late_run | late | stale | recovered
    dataset_id: Mapped[str | None] = mapped_column(String(128))
    source_id: Mapped[str | None] = mapped_column(String(128))
    dag_id: Mapped[str | None] = mapped_column(String(255))
    dag_run_id: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str | None] = mapped_column(String(32))  # the run's or the dataset's state
    message: Mapped[str] = mapped_column(Text)
    delivered: Mapped[list | None] = mapped_column(JSON)   # per channel: ok, attempts, error


class SigningKey(Base):
    """A signing key's public part as published (catalog/publish/key_status.py; migration 0014),
    so that every machine checks its signer against it and every API host serves the same JWKS.
    Times are RFC 3339 UTC strings to the second, as in the key manifest and the key status."""
    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(128), primary_key=True)   # RFC 7638 thumbprint
    jwk: Mapped[dict] = mapped_column(JSON)                           # the public JWK only
    status: Mapped[str] = mapped_column(String(16))                   # active | retired | compromised
    position: Mapped[int] = mapped_column(Integer)                    # order of creation (manifest order)
    created_at: Mapped[str] = mapped_column(String(32))
    retired_at: Mapped[str | None] = mapped_column(String(32))
    compromised_at: Mapped[str | None] = mapped_column(String(32))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KeyMaterial(Base):
    """The published key material, one row (id 1): the JWKS (exactly jwks.json's bytes) and the
    signed key status document (key-status.jws), served by every API host (migration 0014)."""
    __tablename__ = "key_material"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    jwks: Mapped[str] = mapped_column(Text)
    key_status: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Subscription(Base):
    """A consuming department's standing request to be told of changes (migration 0022): to a
    dataset's records, or to one holder's (bound to a case number), under its grants, until
    expires_at or revoked_at."""
    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_dataset", "dataset_id"),
                      Index("ix_subscriptions_holder", "holder_key"),
                      Index("ix_subscriptions_department", "department_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    kind: Mapped[str] = mapped_column(String(16))                 # dataset | holder
    dataset_id: Mapped[str | None] = mapped_column(String(128))   # kind dataset
    holder_key: Mapped[str | None] = mapped_column(String(64))    # kind holder
    purpose: Mapped[str] = mapped_column(String(255))             # item code or case:NUMBER
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(64))    # the key id that asked


class NoticeEvent(Base):
    """One signed change notice (a CloudEvents 1.0 JSON body, RFC 8785 canonical bytes) and its
    detached JWS; shared by every recipient that may see the same fields (migration 0022)."""
    __tablename__ = "notice_events"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)   # CloudEvents id
    type: Mapped[str] = mapped_column(String(128))
    dataset_id: Mapped[str | None] = mapped_column(String(128))
    record_id: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text)          # compact JWS, payload detached (RFC 7515 F)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Notice(Base):
    """One notice owed to one department: its delivery state (migration 0022). `seq` is the
    replay cursor and the delivery order (per department, hence per record).
    pending -> delivered | dead (gave up after the configured time; alerted) | withheld (the
    grant no longer allows it when it was due)."""
    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_department_event", "department_id", "event_id", unique=True),
                      Index("ix_notices_department_seq", "department_id", "seq"),
                      Index("ix_notices_state_due", "state", "next_attempt_at"))
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    department_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(ForeignKey("notice_events.event_id"))
    subscription_id: Mapped[int | None] = mapped_column(Integer)     # None: an objection's outcome
    objection_id: Mapped[int | None] = mapped_column(Integer)
    holder_key: Mapped[str | None] = mapped_column(String(64))       # for the holder's access report
    purpose: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class NoticeProgress(Base):
    """How far a dataset's versions have been turned into notices (migration 0022)."""
    __tablename__ = "notice_progress"
    dataset_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)              # the last version fanned out
    expired_through: Mapped[date | None] = mapped_column(Date)  # expiries told up to this day
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Objection(Base):
    """数据异议: a consuming department says a shared record is wrong (migration 0022).
    open -> correcting (the steward corrects it at the source) -> corrected (a later version
    holds a new state of the record: `corrected_version`) | upheld (the record stands; `resolution`
    says why). The record is disputed while open or correcting."""
    __tablename__ = "objections"
    __table_args__ = (Index("ix_objections_record_state", "record_id", "state"),
                      Index("ix_objections_dataset_state", "dataset_id", "state"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)          # the dataset's current version when filed
    department_id: Mapped[str] = mapped_column(String(64))  # the objector
    purpose: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolution: Mapped[str | None] = mapped_column(Text)
    corrected_version: Mapped[int | None] = mapped_column(Integer)
    overdue_alerted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))   # outcome told


class Peer(Base):
    """Another exchange this one mirrors datasets from (migration 0023). `keys`: its pinned public
    keys, [{kid, jwk, status, pinned_by, compromised_at?, heads_before_compromise?}], grown only
    through its signed key status document from the key given out of band (`fingerprint`);
    `credential`: where the key this exchange presents to the peer comes from (an Airflow
    connection id), never the secret itself."""
    __tablename__ = "peers"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(1024))
    fingerprint: Mapped[str] = mapped_column(String(64))
    keys: Mapped[list] = mapped_column(JSON)
    key_status: Mapped[str | None] = mapped_column(Text)          # the last key status JWS verified
    credential: Mapped[str | None] = mapped_column(String(255))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str | None] = mapped_column(String(255))
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_outcome: Mapped[str | None] = mapped_column(String(16))  # ok | refused | failed
    last_error: Mapped[str | None] = mapped_column(Text)


class Mirror(Base):
    """A peer's dataset held here as the peer signed it (migration 0023): `version` and
    `head_hash` the last good (verified) version; state ok | refused (the peer showed a rewritten
    or split history, or an unknown key: kept at the last good state) | failed (unreachable) |
    removed (the peer was removed: kept read-only, still never served on to other peers)."""
    __tablename__ = "mirrors"
    __table_args__ = (Index("ix_mirrors_peer", "peer"),)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    peer: Mapped[str] = mapped_column(String(64))       # no foreign key: kept once the peer is removed
    source_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[int | None] = mapped_column(Integer)
    head_hash: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Cosignature(Base):
    """This exchange's witness cosignature on a peer's checkpoint it verified (migration 0023;
    C2SP tlog-cosignature): published so that a peer showing two logs is evident."""
    __tablename__ = "cosignatures"
    dataset_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    peer: Mapped[str] = mapped_column(String(64))
    checkpoint: Mapped[str] = mapped_column(Text)       # the peer's signed note, as verified
    cosignature: Mapped[str] = mapped_column(Text)      # the signature line this exchange adds
    kid: Mapped[str] = mapped_column(String(128))
    cosigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PeerAccessReport(Base):
    """A local consumer's access to records of a mirrored dataset, owed to the dataset's origin
    (migration 0023), so its access report shows who asked, for whom and why.
    pending -> delivered | dead."""
    __tablename__ = "peer_access_reports"
    __table_args__ = (Index("ix_peer_access_reports_due", "peer", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    peer: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    department: Mapped[str] = mapped_column(String(128))    # the end consumer here
    purpose: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str | None] = mapped_column(String(64))
    datasets: Mapped[list | None] = mapped_column(JSON)
    records: Mapped[list | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
