"""Row hashes of change detection (exchange/row_state.py): the content of a silo row, every
column but `_row`, told apart however its values are split, nulls from empty text; matched
against a row state as a set lookup would, and scoped as the rule says."""
from __future__ import annotations

import hashlib
import random
import struct

import numpy as np
import pyarrow as pa
import pytest

from base import staging
from exchange import row_state


def _hashes(columns: dict) -> list[bytes]:
    return [bytes(r) for r in row_state.row_hashes(pa.table(columns))]


def test_equal_rows_hash_equal_and_the_row_number_is_not_content():
    a = _hashes({"A": ["x", "y"], "B": ["1", "1"], "_row": [1, 2]})
    b = _hashes({"A": ["x", "y"], "B": ["1", "1"], "_row": [7, 9]})
    assert a == b and a[0] != a[1] and all(len(h) == 16 for h in a)


def test_values_are_told_apart_however_they_are_split():
    rows = {"A": ["ab", "a", "", None, "a:b", "1:a"], "B": ["c", "bc", None, "", "c", "b"]}
    assert len(set(_hashes(rows))) == 6


def test_the_hash_is_sha256_of_the_lengths_then_the_values():
    got = _hashes({"A": ["路1"], "B": [None], "C": [12], "D": [""]})[0]
    assert got == hashlib.sha256(struct.pack("<4i", 4, -1, 2, 0) + "路1".encode() + b"12").digest()[:16]


def test_the_hash_is_the_same_however_the_rows_are_batched(monkeypatch):
    rng = random.Random(3)
    values = [None if rng.random() < 0.1 else "x" * rng.randrange(40) for _ in range(3_000)]
    table = pa.table({"A": values, "B": pa.array(values[::-1], pa.large_string()), "_row": range(3_000)})
    whole = row_state.row_hashes(table)
    monkeypatch.setattr(row_state, "SPAN", 500)          # many joins of a few rows each
    assert (row_state.row_hashes(table) == whole).all()
    sliced = [row_state.row_hashes(table.slice(i, 700)) for i in range(0, 3_000, 700)]
    assert (np.concatenate(sliced) == whole).all()


def _reference(table: pa.Table) -> list[bytes]:
    """The documented definition, a row at a time with hashlib."""
    names = [n for n in table.schema.names if n != "_row"]
    texts = [table.column(n).cast(pa.string()).to_pylist() for n in names]
    out = []
    for i in range(table.num_rows):
        values = [None if t[i] is None else t[i].encode() for t in texts]
        head = struct.pack(f"<{len(values)}i", *(-1 if v is None else len(v) for v in values))
        out.append(hashlib.sha256(head + b"".join(v or b"" for v in values)).digest()[:16])
    return out


@pytest.mark.parametrize("span", [row_state.SPAN, 1_000])
def test_the_native_path_hashes_as_the_definition_says(monkeypatch, span):
    monkeypatch.setattr(row_state, "SPAN", span)          # 1,000 bytes: spans end inside the batch
    rng = random.Random(span)
    n = 3_000
    words = ["", "证照·号", "a", "Ünïcode ", "x" * 300, "\x00\x1f", None]
    table = pa.table({
        "A": [rng.choice(words) for _ in range(n)],
        "B": pa.array([rng.choice(words) for _ in range(n)], pa.large_string()),
        "C": [None if rng.random() < 0.1 else rng.randrange(-10**6, 10**6) for _ in range(n)],
        "D": pa.array([None if rng.random() < 0.1 else rng.randrange(20_000) for _ in range(n)], pa.date32()),
        "E": pa.nulls(n, pa.string()),
        "_row": range(n)}).slice(5, n - 5)                                    # an offset
    assert [bytes(r) for r in row_state.row_hashes(table)] == _reference(table)
    batch = table.combine_chunks().to_batches()[0]
    assert [bytes(r) for r in row_state.row_hashes(batch)] == _reference(table)


def test_many_rows_hash_as_few_do():     # DataFusion's path (>= 512 rows) and hashlib's agree
    values = [f"v{i}" for i in range(1_200)]
    many = row_state.row_hashes(pa.table({"A": values}))
    few = np.concatenate([row_state.row_hashes(pa.table({"A": values[i:i + 100]})) for i in range(0, 1_200, 100)])
    assert (many == few).all()


def test_suites_whose_outcome_is_not_row_by_row_are_checked_in_full():
    from quality.validate import incremental_blocker
    from schemas.types import get_type

    licence = get_type("business_licence")
    assert incremental_blocker(licence) is None
    assert "property_unit_number" in incremental_blocker(get_type("real_estate_title"))
    compound = {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["holder_code", "address"]}}
    assert "not row by row" in incremental_blocker(licence, [compound])
    later = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "valid_to", "min_value": {
        "$PARAMETER": "today"}}}
    assert "today" in incremental_blocker(licence, [later])
    # any run parameter, not only "today", makes a rule dated: validate and this agree (suites.dated)
    other = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "valid_to", "max_value": {
        "$PARAMETER": "cutoff"}}}
    assert "run parameter" in incremental_blocker(licence, [other])


# --- matching against the row state ------------------------------------------------------------
def _state(tmp_path, hashes: np.ndarray, licences: list, accepted: list, withdrawn: list | None = None):
    table = pa.table([row_state.as_array(hashes), pa.array(licences, pa.string()), pa.array(accepted),
                      pa.array(withdrawn or [False] * len(licences)),
                      pa.nulls(len(licences), pa.list_(pa.string())),
                      pa.nulls(len(licences), pa.list_(pa.string()))], schema=row_state.SCHEMA)
    path = tmp_path / "rows.arrow"
    with staging.transient_writer(path, table.schema) as w:
        w.write_table(table)
    return row_state.Matcher(path)


def _random_state(seed: int, n: int = 400):
    """Hashes with equal rows, and pairs that share their first 8 bytes only; accepted rows'
    licence numbers distinct (as a delta run's suite leaves them), others repeated or null."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    for i in range(0, n - 1, 37):
        h[i + 1] = h[i]                     # equal rows
    for i in range(5, n - 1, 41):
        h[i + 1, :8] = h[i, :8]             # first halves alike
    h[:, :8] = h[:, :8] & 0x0F if seed % 2 else h[:, :8]    # and crowded first halves
    accepted = [bool(x) for x in rng.random(n) < 0.8]
    licences = [f"L{i}" if a else rng.choice([None, f"L{i}", f"L{i - 1}"]) for i, a in enumerate(accepted)]
    return h, licences, accepted


def _reference_index(h, accepted, q):
    first = {}
    for i, (row, a) in enumerate(zip(map(bytes, h), accepted)):
        if a:
            first.setdefault(row, i)
    return np.array([first.get(bytes(r), -1) for r in q])


@pytest.mark.parametrize("seed", range(4))
def test_rows_are_matched_to_the_first_accepted_equal_state_row(tmp_path, seed):
    h, licences, accepted = _random_state(seed)
    m = _state(tmp_path, h, licences, accepted)
    rng = np.random.default_rng(seed + 100)
    q = np.concatenate([h[rng.integers(0, len(h), 300)], rng.integers(0, 256, (50, 16), dtype=np.uint8)])
    q[-1, :8] = h[5, :8]                    # a first half that is the state's, a second that is not
    got = m.index(q)
    assert (got == _reference_index(h, accepted, q)).all()
    assert (got >= 0).sum() > 200 and (got == -1).sum() >= 50


def _reference_scope(h, licences, accepted, idx, checked):
    carried = [i for i, x in enumerate(idx) if x >= 0]
    lic = [licences[idx[i]] for i in carried]
    kept_hashes = {bytes(h[idx[i]]) for i in carried}
    gone = {licences[j] for j in range(len(h)) if bytes(h[j]) not in kept_hashes} - {None}
    repeated = {x for x in lic if x is not None and lic.count(x) > 1}
    wanted = set(checked) | repeated | gone
    back = [i for i, x in zip(carried, lic) if x in wanted]
    return back, gone | {licences[idx[i]] for i in back} - {None}


@pytest.mark.parametrize("seed", range(4))
def test_scope_pulls_back_what_a_set_rule_pulls_back(tmp_path, seed):
    h, licences, accepted = _random_state(seed)
    m = _state(tmp_path, h, licences, accepted)
    rng = np.random.default_rng(seed + 200)
    run = h[rng.integers(0, len(h), 500)]                      # some state rows twice, some gone
    run[::9] = rng.integers(0, 256, (len(run[::9]), 16), dtype=np.uint8)     # changed rows
    idx = m.index(run)
    checked = [f"L{i}" for i in rng.integers(0, len(h), 20)]
    back, delta = row_state.scope(m, idx, pa.array(checked + [None], pa.string()))
    want_back, want_delta = _reference_scope(h, licences, accepted, idx, checked)
    assert back.tolist() == want_back and len(want_back) > 0
    assert sorted(delta.to_pylist()) == sorted(want_delta)


def test_an_empty_or_missing_state_carries_nothing(tmp_path):
    q = np.zeros((3, 16), np.uint8)
    for m in (row_state.Matcher(None), _state(tmp_path, q[:1], ["L"], [False])):
        idx = m.index(q)
        assert (idx == -1).all()
        back, delta = row_state.scope(m, idx, pa.array(["L"]))
        assert len(back) == 0 and len(delta) == 0
        assert row_state.rows_table(q, idx, m).column("carried").to_pylist() == [False] * 3


def test_a_quarantined_row_is_left_unreported_only_if_nothing_about_it_changed(tmp_path):
    from exchange.unreported import Unreported

    h = {c: np.full(16, ord(c), np.uint8) for c in "ABCDEFGHX"}
    state = pa.table([row_state.as_array(np.stack([h[c] for c in "ABCDEEFG"])),
                      pa.array(["L1", "L2", "L3", None, "L5", "L5", "L6", "L7"]),
                      pa.array([False] * 6 + [True, False]), pa.array([False] * 8),
                      pa.array([["r1"], ["r2"], None, ["r3"], ["r4"], ["r4"], None, ["x"]], pa.list_(pa.string())),
                      pa.array([None, None, ["future"], None, None, None, None, None], pa.list_(pa.string()))],
                     schema=row_state.SCHEMA)
    path = tmp_path / "rows.arrow"
    with staging.transient_writer(path, state.schema) as w:
        w.write_table(state)
    # now: A and C as they were; B as it was but a changed row X took its licence number; D has
    # none; one of the two E rows went; G went; H is new
    now = "ABXCDEH"
    left = Unreported(path, row_state.as_array(np.stack([h[c] for c in now])),
                      pa.array(["L1", "L2", "L2", "L3", None, "L5", "L8"]), set())
    assert left.before.to_pylist() == [["r1"], None, None, ["future"], None, None, None]
    assert left.settle(np.array([c in "AC" for c in now])) == {"L2", "L5", "L7"}
    # C left out only if it fails as before (validate decides); were it reported, L3 is settled
    assert left.settle(np.array([c == "A" for c in now])) == {"L2", "L3", "L5", "L7"}
    # a key a failed run touched since: its row is reported
    assert Unreported(path, row_state.as_array(np.stack([h[c] for c in now])),
                      pa.array(["L1", "L2", "L2", "L3", None, "L5", "L8"]), {"L1"}).before.to_pylist()[0] is None


def _reference_state(rows: pa.Table, checked: pa.Table, bad: list[int], kept: pa.Table) -> pa.Table:
    """new_state as first written: every column taken and chosen row by row (int64 indices)."""
    import pyarrow.compute as pc

    n = rows.num_rows
    at = np.full(n, -1, np.int64)
    at[np.array(checked.column("_row").to_pylist()) - 1] = np.arange(checked.num_rows)
    here = at >= 0
    take = pa.array(np.where(here, at, 0), pa.int64(), mask=~here)
    quarantined = np.zeros(n, bool)
    quarantined[np.array(bad, np.int64) - 1] = True
    carried = rows.column("carried").combine_chunks()
    lic = pc.if_else(carried, rows.column("licence_number").combine_chunks(),
                     checked.column("licence_number").combine_chunks().take(take))
    wd = pc.equal(checked.column("status").combine_chunks().take(take), row_state.WITHDRAWN)
    withdrawn = pc.fill_null(pc.if_else(carried, rows.column("withdrawn").combine_chunks(),
                                        pc.and_(wd, pa.array(~quarantined))), False)
    k_at = np.full(n, -1, np.int64)
    k_at[np.array(kept.column("_row").to_pylist()) - 1] = np.arange(kept.num_rows)
    k_here = k_at >= 0
    k_take = pa.array(np.where(k_here, k_at, 0), pa.int64(), mask=~k_here)
    reasons = kept.column("reasons").combine_chunks().take(k_take)
    return pa.table([rows.column("row_hash").combine_chunks(), lic, pc.or_(carried, pa.array(here & ~quarantined)),
                     withdrawn, reasons, pa.nulls(n, pa.list_(pa.string()))], schema=row_state.SCHEMA)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("carry", [0.0, 0.5])     # a full run (every row checked, in order) and a delta run
def test_the_new_state_is_the_same_bytes_however_it_is_taken(carry):
    rng = random.Random(11)
    n = 300
    carried = [rng.random() < carry for _ in range(n)]
    h = np.frombuffer(bytes(rng.getrandbits(8) for _ in range(16 * n)), np.uint8).reshape(n, 16)
    rows = pa.table([row_state.as_array(h), pa.array(carried),
                     pa.array([f"L{i}" if c else None for i, c in enumerate(carried)], pa.string()),
                     pa.array([(i % 7 == 0) if c else None for i, c in enumerate(carried)], pa.bool_())],
                    schema=row_state.ROWS)
    todo = [i + 1 for i, c in enumerate(carried) if not c]
    chunk = len(todo) // 2             # the conformed rows come in batches
    lic = [None if i % 13 == 0 else f"N{i}" for i in todo]
    status = ["withdrawn" if i % 5 == 0 else "active" for i in todo]
    checked = pa.Table.from_batches([pa.record_batch([pa.array(todo[a:b], pa.int64()), pa.array(lic[a:b], pa.string()),
                                                      pa.array(status[a:b], pa.string())],
                                                     names=["_row", "licence_number", "status"])
                                     for a, b in ((0, chunk), (chunk, len(todo)))])
    bad = [r for r in todo if r % 4 == 0]
    kept = pa.table({"_row": pa.array(bad[::2], pa.int64()),
                     "reasons": pa.array([["expect_x"]] * len(bad[::2]), pa.list_(pa.string()))})
    new = row_state.new_state(rows, checked, pa.array(bad, pa.int64()), "fp", kept)
    assert new.column("accepted").to_pylist() == [c or (i + 1) not in bad for i, c in enumerate(carried)]
    assert _ipc(new.replace_schema_metadata(None)) == _ipc(_reference_state(rows, checked, bad, kept))


def test_nothing_quarantined_last_run_leaves_nothing_unreported(tmp_path):
    """A state whose rows were all accepted (a defect-free silo): every row now is reported."""
    from exchange.unreported import Unreported

    h = {c: np.full(16, ord(c), np.uint8) for c in "ABX"}
    state = pa.table([row_state.as_array(np.stack([h["A"], h["B"]])), pa.array(["L1", "L2"]),
                      pa.array([True, True]), pa.array([False, False]),
                      pa.array([None, None], pa.list_(pa.string())), pa.array([None, None], pa.list_(pa.string()))],
                     schema=row_state.SCHEMA)
    path = tmp_path / "rows.arrow"
    with staging.transient_writer(path, state.schema) as w:
        w.write_table(state)
    left = Unreported(path, row_state.as_array(np.stack([h[c] for c in "AX"])), pa.array(["L1", "L2"]), set())
    assert left.before.to_pylist() == [None, None]
    assert left.settle(np.array([True, True])) == set()
