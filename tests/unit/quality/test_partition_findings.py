"""A split run's validation: row-level findings per partition (check_partition), merged with
the version-wide checks over the whole run, give what one validation of the whole run gives:
counts, reasons, the quarantine file and GX's results (counts, partial lists, success)."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from base import staging
from quality.validate import check_partition, validate
from schemas.conform import conform
from tests.unit.quality.test_validate_split import CASES, TODAY
from tests.unit.schemas.test_conform import REG, silo_batch

COMPOUND = {"type": "expect_compound_columns_to_be_unique",
            "kwargs": {"column_list": ["licence_number", "holder_name"]}}


def _silo(tmp_path):
    rows, i = [], 0
    for copy in range(4):
        for overrides, _ in CASES.values():
            i += 1
            number = f"33010600012{(i if copy < 3 else i - 5):04d}"  # the last copy repeats earlier numbers
            b = silo_batch(ID=str(i), ZCH=number, **overrides)
            rows.append(b.set_column(b.schema.get_field_index("_row"), "_row", pa.array([i], pa.int64())))
    raw = pa.Table.from_batches(rows)
    conformed = pa.Table.from_batches([conform(b, REG.source_map) for b in rows])
    return raw, conformed


def _gx(outcome) -> list:
    return [json.loads(json.dumps({"type": r.expectation_config.type, "success": r.success,
                                   "result": r.result}, default=str)) for r in outcome.result.results]


def test_partition_findings_merged_equal_one_whole_validation(tmp_path):
    raw, conformed = _silo(tmp_path)
    whole_dir, split_dir = tmp_path / "whole", tmp_path / "split"
    for d in (whole_dir, split_dir):
        d.mkdir()
        pq.write_table(raw, d / "extracted.parquet")
        pq.write_table(conformed, d / "conformed.parquet")
    whole = validate(whole_dir / "conformed.parquet", whole_dir / "extracted.parquet", REG.ctype, whole_dir,
                     TODAY, batch_rows=5, checks=[COMPOUND], docs=False)
    findings, start = [], 0
    for n, size in enumerate((9, 10, 9)):         # uneven partitions
        part = split_dir / f"conformed.p{n}.parquet"
        pq.write_table(conformed.slice(start, size), part)
        out = split_dir / f"findings.p{n}.arrow"
        counts = check_partition(part, REG.ctype, out, TODAY, batch_rows=4, checks=[COMPOUND])
        assert counts["rows"] == size
        findings.append(out)
        start += size
    assert start == conformed.num_rows
    split = validate(split_dir / "conformed.parquet", split_dir / "extracted.parquet", REG.ctype,
                     split_dir, TODAY, batch_rows=7, checks=[COMPOUND], docs=False, findings=findings)
    counts = [(o.extracted, o.accepted, o.quarantined) for o in (split, whole)]
    assert counts[0] == counts[1]
    assert split.reasons == whole.reasons
    assert split.reasons["expect_column_values_to_be_unique(licence_number)"] == 10, "duplicates across partitions"
    assert "expect_compound_columns_to_be_unique(licence_number,holder_name)" in split.reasons
    assert pq.read_table(split.quarantine_path).equals(pq.read_table(whole.quarantine_path))
    assert staging.read_table(split.accepted_path).equals(staging.read_table(whole.accepted_path))
    assert _gx(split) == _gx(whole)
