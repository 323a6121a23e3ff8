"""A delta run's quarantined rows that are not reported again (issue 17).

A row is left unreported when it was quarantined last run with the same content (as many rows
of that content then as now), fails the same row-level expectations again, and no row sharing
its licence number changed, appeared or went. Its queue entry would then be written as it is:
the row is counted and stays quarantined in the row state, but it is left out of the run's
quarantine file and the queue sync, so its entry keeps naming the run whose file holds its raw
row. The entries a delta run settles are found from the change itself (`settle`): the keys of
the rows it reports, and the licence numbers of last run's quarantined rows it does not leave
unreported (changed, gone, accepted or failing otherwise)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base import staging
from exchange import row_state


class Unreported:
    """Last run's quarantined rows (the row state's rows not accepted) matched against a delta
    run's conformed rows (`hashes`, `licences`: per conformed row). `unsettled`: keys whose
    entries a run since the state's was written (failed, held, or this one before) touched:
    their rows are reported."""

    def __init__(self, state: Path, hashes: pa.Array, licences: pa.Array, unsettled: set[str]):
        table = staging.read_table(state)
        bad = np.flatnonzero(~pc.fill_null(table.column("accepted"), False).to_numpy(zero_copy_only=False))
        table = table.select(["row_hash", "licence_number", "reasons", "rechecked"]).take(pa.array(bad, pa.int64()))
        self.licences = table.column("licence_number").combine_chunks()
        reasons, rechecked = (table.column(c).combine_chunks() for c in ("reasons", "rechecked"))
        self.sorted = row_state._Sorted(row_state._matrix(table.column("row_hash")))
        n_groups = len(self.sorted.hi)
        self.group = self.sorted.groups(row_state._matrix(hashes)) if len(hashes) else np.zeros(0, np.int64)
        found = self.group >= 0
        now = np.bincount(self.group[found], minlength=n_groups)
        before = np.diff(np.append(self.sorted.at, len(self.sorted.order)))
        same = now == before                          # as many rows of that content now as then
        self.matched = same[self.sorted.row_groups()] if table.num_rows else np.zeros(0, bool)
        if n_groups:
            candidate = found & same[np.maximum(self.group, 0)]
            at = self.sorted.first(np.ones(table.num_rows, bool))[np.maximum(self.group, 0)]
        else:             # nothing was quarantined last run: no row of this one was
            candidate, at = np.zeros(len(self.group), bool), np.zeros(len(self.group), np.int64)
        last = pc.if_else(pc.is_valid(reasons), reasons, rechecked)     # its row-level failures then
        dated = pc.is_null(reasons).to_numpy(zero_copy_only=False)
        lic = licences.combine_chunks() if isinstance(licences, pa.ChunkedArray) else licences
        # licence numbers a changed row has or had: the rows sharing them are reported
        touched = [lic.filter(pa.array(~candidate)), self.licences.filter(pa.array(~self.matched)),
                   pa.array(sorted(unsettled), pa.string())]
        if len(at):       # a dated row sharing its number may fail otherwise while the other does not
            dated_now = candidate & dated[at] if len(dated) else np.zeros(len(at), bool)
            counts = pc.value_counts(lic.drop_null())
            shared = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
            touched.append(pc.filter(lic, pa.array(dated_now)).filter(
                pc.fill_null(pc.is_in(pc.filter(lic, pa.array(dated_now)), value_set=shared), False)))
        touched_set = pa.chunked_array(touched, pa.string()).combine_chunks().drop_null()
        named = pc.fill_null(pc.greater(pc.utf8_length(lic), 0), False).to_numpy(zero_copy_only=False)
        hit = pc.fill_null(pc.is_in(lic, value_set=pc.unique(touched_set)), False).to_numpy(zero_copy_only=False)
        quiet = candidate & named & ~hit
        take = pa.array(np.where(quiet, at, 0), pa.int64(), mask=~quiet)
        self.before = last.take(take) if table.num_rows else pa.nulls(len(hashes), pa.list_(pa.string()))

    def settle(self, quiet: np.ndarray) -> set[str]:
        """Licence numbers of last run's quarantined rows whose content is not among the rows
        left unreported (`quiet`: a mask over the conformed rows): their entries are settled
        (seen again, or resolved) by the queue sync."""
        groups = np.zeros(len(self.sorted.hi), bool)
        groups[self.group[quiet & (self.group >= 0)]] = True
        left = ~groups[self.sorted.row_groups()] if len(self.licences) else np.zeros(0, bool)
        return set(self.licences.filter(pa.array(left)).drop_null().to_pylist())
