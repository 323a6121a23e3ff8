"""One sync with a peer exchange (`exchange peers sync NAME`, DAG `peer__<name>`; issue #19):

1. keys: the peer's JWKS and signed key status, followed from the pinned keys (trust.peer_keys);
2. the datasets the peer lets this exchange mirror; per dataset:
   a. the last mirrored version re-checked: the peer's head_hash for it must still be ours;
   b. each new version: its signed head verified against the pinned keys, an RFC 9162
      consistency proof from our last mirrored tree to the new signed root verified, its files
      downloaded (SHA-256 checked) and mirrored (catalog/federation/mirror.py checks every record
      against the head and stores it unsigned by us), then its checkpoint cosigned (witness);
   c. a refusal (rewrite, split view, unknown key, bad records) alerts `peer_refused` and keeps
      the mirror at its last good version; the other datasets go on;
3. a peer that cannot be reached: outcome failed, alert `peer_failed`;
4. the access reports owed to the peer delivered.
Every failure alerts from here, so the DAG needs no failure callback of its own.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from base import clock
from base.errors import DataError, ExchangeError, VerificationError
from base.settings import get_settings
from connectors.peer import PeerClient, SourceUnreachable
from exchange import alerts
from exchange.catalogue import open_catalog
from exchange.peers import client, field, peers_store
from trust.merkle import verify_consistency

log = logging.getLogger("exchange.mirroring")
REPORT_BATCH = 500
REPORT_ROUNDS = 20


class _PeerDown(Exception):
    """The peer itself is unreachable: stop asking it for more in this sync (`entry`: the
    dataset it was on, for the summary)."""

    def __init__(self, message: str, entry: dict | None = None):
        super().__init__(message)
        self.entry = entry


def sync_peer(name: str, now: datetime | None = None) -> dict:
    """Mirror what `name` publishes for this exchange; returns
    {"peer","outcome","datasets":[{"dataset","from","to","records","state","error","seconds","bytes"}],
    "reports": n, "error"} with outcome ok | refused | failed (refused wins over failed); per dataset
    `seconds` is its sync's wall time and `bytes` what was downloaded for it (JSON answers included)."""
    now = now or clock.now()
    settings = get_settings().private_home()
    catalog = open_catalog(settings)
    peers = peers_store(catalog)
    peer = peers.get(name)
    summary: dict = {"peer": name, "outcome": "ok", "datasets": [], "reports": 0}
    errors: list[str] = []
    try:
        with client(name, field(peer, "url"), field(peer, "credential")) as c:
            sync = _Sync(name, c, catalog, peers, settings, now)
            try:
                keys = sync.keys(list(field(peer, "keys") or []))
                for meta in c.datasets().get("datasets", []):
                    entry = sync.dataset(meta, keys)
                    summary["datasets"].append(entry)
                    if entry["state"] != "ok":
                        errors.append(f"{entry['dataset']}: {entry['error']}")
                summary["reports"] = sync.reports()
            except (SourceUnreachable, _PeerDown) as exc:
                if isinstance(exc, _PeerDown) and exc.entry:
                    summary["datasets"].append(exc.entry)
                sync.failed.append(str(exc))
                errors.append(str(exc))
            refused, failed = sync.refused, sync.failed
    except ExchangeError as exc:           # the credential, a missing peer key: nothing asked
        refused, failed = [], [str(exc)]
        errors.append(str(exc))
    except Exception as exc:               # a bug: recorded and alerted, then raised
        message = f"同步中断 (sync crashed): peer {name}: {type(exc).__name__}: {exc}"
        peers.record_sync(name, "failed", alerts.redact(message), now)
        _alert("peer_failed", name, None, message, now)
        raise
    summary["outcome"] = "refused" if refused else "failed" if failed else "ok"
    error = "; ".join(errors)[:4000] or None
    summary["error"] = alerts.redact(error) if error else None
    peers.record_sync(name, summary["outcome"], alerts.redact(error) if error else None, now)
    if failed:                             # refusals were alerted one by one
        _alert("peer_failed", name, None, "; ".join(failed), now)
    return summary


class PeerRefused(VerificationError):
    """A sync that refused something the peer served (exit 8); the mirrors kept their last good state."""

    def __init__(self, message: str):
        ExchangeError.__init__(self, message)
        self.step, self.step_name, self.detail = 0, "peer sync", message


def raise_for_outcome(summary: dict) -> dict:
    """The summary when the sync was ok; else PeerRefused (exit 8) or SourceUnreachable (exit 3)
    naming the peer and what went wrong."""
    if summary["outcome"] == "ok":
        return summary
    bad = "; ".join(f"{d['dataset']}: {d['error']}" for d in summary["datasets"] if d["state"] != "ok")
    what = bad or summary.get("error") or "see `exchange peers list`"
    if summary["outcome"] == "refused":
        raise PeerRefused(f"跨区域同步被拒 (peer refused): peer {summary['peer']}: {what}")
    raise SourceUnreachable(f"跨区域同步失败 (peer unreachable): peer {summary['peer']}: {what}")


class _Sync:
    def __init__(self, name: str, c: PeerClient, catalog, peers, settings, now: datetime):
        self.name, self.c, self.catalog, self.peers, self.settings, self.now = name, c, catalog, peers, settings, now
        self.refused: list[str] = []
        self.failed: list[str] = []
        self._keystore = None

    # 1. keys
    def keys(self, pinned: list[dict]) -> list[dict]:
        """The pinned keys followed through the peer's signed key status; a key set that cannot
        be followed is refused (alerted) and the keys pinned so far kept: heads signed by a key
        not among them are refused dataset by dataset."""
        from trust import peer_keys

        jwks, status = self.c.jwks(), self.c.key_status()
        try:
            keys = peer_keys.follow(pinned, jwks, status)
        except VerificationError as exc:   # PeerKeyError included
            message = f"对端密钥无法跟随 (peer keys not followed): peer {self.name}: {exc}"
            self.refused.append(message)
            _alert("peer_refused", self.name, None, message, self.now)
            return pinned
        self.peers.set_keys(self.name, keys, status)
        return keys

    # 2. one dataset
    def dataset(self, meta: dict, keys: list[dict]) -> dict:
        """One dataset's sync, its wall seconds and the bytes downloaded for it added to its entry."""
        t0, bytes0 = time.perf_counter(), self.c.bytes_in
        entry = self._dataset(meta, keys)
        entry |= {"seconds": round(time.perf_counter() - t0, 3), "bytes": self.c.bytes_in - bytes0}
        return entry

    def _dataset(self, meta: dict, keys: list[dict]) -> dict:
        from catalog.federation.mirror import MirrorRefused, ensure_mirror

        ds = meta.get("dataset")
        entry = {"dataset": ds, "from": None, "to": None, "records": 0, "state": "ok", "error": None}
        try:
            ds = ensure_mirror(self.catalog, self.name, meta, self.now)
            entry["dataset"] = ds
            last = field(self.peers.mirror(ds), "version")
            entry["from"] = entry["to"] = last
            target = int(meta["version"])
            if last is not None:
                if target < last:
                    raise MirrorRefused("rewrite", f"peer {self.name} dataset {ds}: its current version is "
                                                   f"{target}, this exchange mirrors version {last} already")
                self._known(ds, last)
            first = last + 1 if last is not None else int(meta.get("log_from") or 1)
            for v in range(first, target + 1):
                entry["records"] += self._version(ds, v, last, keys)
                entry["to"] = last = v
            self.peers.mirror_checked(ds, self.now)
        except (MirrorRefused, VerificationError, DataError) as exc:
            entry |= {"state": "refused", "error": alerts.redact(str(exc))}
            self.refused.append(f"{ds}: {exc}")
            self._mirror_failed(ds, "refused", str(exc))
            _alert("peer_refused", self.name, ds, str(exc), self.now)
        except SourceUnreachable as exc:
            entry |= {"state": "failed", "error": alerts.redact(str(exc))}
            self._mirror_failed(ds, "failed", str(exc))
            if getattr(exc, "http_status", None) is None:   # the peer itself, not this dataset
                raise _PeerDown(str(exc), entry) from None  # failed once, by sync_peer
            self.failed.append(str(exc))
        except ExchangeError as exc:       # a name taken here, a catalogue rule: this dataset only
            entry |= {"state": "failed", "error": alerts.redact(str(exc))}
            self.failed.append(f"{ds}: {exc}")
            self._mirror_failed(ds, "failed", str(exc))
        return entry

    def _known(self, ds: str, last: int) -> None:
        """a. The peer still shows our last mirrored version as it was."""
        from catalog.federation.mirror import check_known

        check_known(self.catalog, ds, self.c.version(ds, last))

    def _version(self, ds: str, v: int, last: int | None, keys: list[dict]) -> int:
        """b. One new version: head, consistency, files, mirror, cosignature; its records."""
        from catalog.federation.mirror import MirrorRefused, mirror_version
        from trust.peer_keys import PeerKeyError, verify_peer_head, verify_peer_note

        info = self.c.version(ds, v)
        try:
            head = verify_peer_head(info["signed_tree_head"], keys)
            verify_peer_note(info.get("checkpoint") or "", info["signed_tree_head"], keys)   # what is cosigned
        except PeerKeyError as exc:
            raise MirrorRefused("unknown_key", f"peer {self.name} dataset {ds} version {v}: {exc}") from None
        if head.get("dataset") != ds or head.get("version") != v or info.get("version") != v:
            raise MirrorRefused("inconsistent", f"peer {self.name} dataset {ds} version {v}: its signed head "
                                                f"names {head.get('dataset')} version {head.get('version')}")
        if last is not None:
            self._consistent(ds, last, v, head)
        with _scratch(self.settings) as scratch:
            records = self.c.download(ds, v, "records", scratch / "records.parquet", info["records_sha256"])
            holders = self.c.download(ds, v, "holders", scratch / "holders.parquet", info["holders_sha256"])
            rows = _rows(records)
            mirror_version(self.catalog, self.name, ds, info, records, holders, scratch, self.now)
        self._cosign(ds, v, info.get("checkpoint"))
        log.info("peer %s: %s version %d mirrored (%d records)", self.name, ds, v, rows)
        return rows

    def _consistent(self, ds: str, last: int, v: int, head: dict) -> None:
        """The new signed root extends the tree we hold (RFC 9162 §2.1.4.2), from our own root."""
        from catalog.federation.mirror import MirrorRefused

        ours = self.catalog.consistency(ds, last, last)        # our stored size and root of `last`
        proof = self.c.consistency(ds, last, v)
        try:
            verify_consistency(int(ours["first_size"]), int(head["tree_size"]), bytes.fromhex(ours["first_root"]),
                               bytes.fromhex(head["root_hash"]), [bytes.fromhex(p) for p in proof.get("proof", [])])
        except (ValueError, KeyError, TypeError) as exc:
            raise MirrorRefused("inconsistent", f"peer {self.name} dataset {ds}: version {v} (size "
                                                f"{head.get('tree_size')}) does not extend version {last} held "
                                                f"here (size {ours['first_size']}): {exc}") from None

    def _cosign(self, ds: str, v: int, note: str | None) -> None:
        """The witness cosignature on the checkpoint just verified (C2SP tlog-cosignature)."""
        from catalog.federation import cosignatures
        from catalog.signing.keys import keystore_for

        if not note:
            return
        if self._keystore is None:
            self._keystore = keystore_for(self.settings)
        line, kid = self._keystore.cosign(note, self.settings.log_origin, self.now)
        cosignatures.add(self.catalog.engine, ds, v, self.name, note, line, kid, self.now)

    def _mirror_failed(self, ds: str | None, state: str, error: str) -> None:
        if not ds:
            return
        try:
            self.peers.mirror_failed(ds, state, alerts.redact(error)[:4000], self.now)
        except ExchangeError as exc:       # no mirror row (ensure_mirror itself refused)
            log.info("peer %s: %s not marked %s: %s", self.name, ds, state, exc)

    # 4. access reports
    def reports(self) -> int:
        """Reports owed to this peer, delivered in batches; a batch refused stays pending."""
        from catalog.federation import access_reports

        engine, sent = self.catalog.engine, 0
        for _ in range(REPORT_ROUNDS):
            due = access_reports.due(engine, self.name, REPORT_BATCH, self.now)
            if not due:
                break
            ids = [r["id"] for r in due]
            try:
                self.c.report_access(due)
            except SourceUnreachable as exc:
                access_reports.failed(engine, ids, str(exc), self.now)
                if getattr(exc, "http_status", None) is None:
                    raise
                self.failed.append(str(exc))
                break
            access_reports.delivered(engine, ids, self.now)
            sent += len(ids)
        return sent


@contextmanager
def _scratch(settings):
    from base.files import private_dir
    from catalog.publish.scratch_dirs import Scratch

    scratch = Scratch.make(private_dir(settings.scratch_dir), "peer-")
    try:
        yield scratch.path
    finally:
        scratch.remove()


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq  # lazy: DAG parse
    return pq.read_metadata(path).num_rows


def _alert(kind: str, peer: str, dataset: str | None, message: str, now: datetime) -> None:
    alerts.send(alerts.Alert(kind, dataset, source=f"peer.{peer}", dag_id=f"peer__{peer}",
                             state="refused" if kind == "peer_refused" else "failed",
                             message=f"peer {peer}: {message}", at=now))
