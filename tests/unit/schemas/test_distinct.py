"""Normalising once per distinct value (schemas/distinct.py) gives exactly the direct result."""
from __future__ import annotations

import random
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.distinct import Distinct
from schemas.identifiers import holder_code_type, uscc_check_char
from schemas.normalize import clean_text, code_key, name_key, parse_dates

FW = str.maketrans("0123456789abcdefx", "０１２３４５６７８９ａｂｃｄｅｆｘ")
USCC = "91330106MA2B3C4D5" + uscc_check_char("91330106MA2B3C4D5")
MESSY = [
    None, "", " ", "\u3000", "\u200b", "长期", "長期", "长期有效", " 长 期 ", "永久", "無固定期限",
    "2020-02-30", "20200230", "2021-02-29", "2020-13-01", "2020-00-10", "0000-01-01", "abc",
    "2020-01-02", "20200102", "2020/1/2", "2020.1.2", "2020年1月2日", "２０２０年１月２日",
    " 2020 - 01 - 02 ", "2020\u200b0102", "2020-01-02 08:30:00", "2020-02-29", "1999-12-31",
    "杭州市西湖區 營業執照有限責任公司", "杭州市西湖区营业执照有限责任公司", "張　三", "张三",
    "（臺灣）", "龍華區\u200b鐵路街", USCC, USCC.lower().translate(FW), f" {USCC}\u200b",
    "110101199003071234", "11010119900307123x", "a\tb", "９１３３０１０６ｍａ２７ｘ",
]
FUNCTIONS = {"parse_dates": parse_dates, "code_key": code_key, "name_key": name_key,
             "clean_text": clean_text, "holder_code_type": holder_code_type}
messy_text = st.one_of(st.sampled_from(MESSY),
                       st.text(alphabet="0123456789０１２-/.年月日长期長 \u3000\u200b區区Xx", max_size=12))


def parts(result) -> list[pa.Array]:
    return [result] if isinstance(result, pa.Array) else list(result)


def assert_same(got, want) -> None:
    assert type(got) is type(want)
    for g, w in zip(parts(got), parts(want), strict=True):
        assert g.type == w.type and g.equals(w), (g.to_pylist(), w.to_pylist())


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(sorted(FUNCTIONS)),
       st.lists(st.lists(messy_text, max_size=40), min_size=1, max_size=5))
def test_distinct_path_equals_direct_path(name, batches):
    fn = FUNCTIONS[name]
    memo = Distinct(fn, direct_above=1.0)          # never gives up on the distinct path
    for batch in batches:
        arr = pa.array(batch, pa.string())
        assert_same(memo(arr), fn(arr))
    learnt = {v for b in batches if any(x is not None for x in b) for v in b}   # all-null: apart
    keys = memo._keys                               # each distinct value computed once
    assert (0 if keys is None else len(pc.unique(keys))) == len(learnt)
    assert keys is None or len(keys) == len(learnt)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_seeded_batches_of_repeating_values(name):
    rng = random.Random(7)
    fn, memo = FUNCTIONS[name], Distinct(FUNCTIONS[name])   # batches under min_rows: no giving up
    for size in (500, 1, 0, 2000, 300):
        arr = pa.array([rng.choice(MESSY) for _ in range(size)], pa.string())
        if size > 10:
            arr = arr.slice(3, size - 6)            # batches come as slices of a file's data
        assert_same(memo(arr), fn(arr))
    assert not memo.direct and len(memo._keys) <= len(MESSY)


def test_all_null_columns_take_fns_answer_for_null():
    for fn in FUNCTIONS.values():
        arr = pa.nulls(7, pa.string())
        assert_same(Distinct(fn)(arr), fn(arr))
    open_ended = Distinct(parse_dates)(pa.nulls(3, pa.string()))
    assert open_ended.invalid.to_pylist() == [False] * 3     # a null date is blank, not invalid


def test_nearly_all_distinct_batches_take_the_direct_path_and_agree():
    memo = Distinct(code_key, min_rows=100)
    unique = pa.array([f" {i:06d}ab " for i in range(1000)])
    assert_same(memo(unique), code_key(unique))
    assert memo.direct and memo._keys is None
    again = pa.array(["x", "x", None])
    assert_same(memo(again), code_key(again))


def test_limit_stops_learning_not_answering():
    memo = Distinct(parse_dates, limit=5, direct_above=1.0)
    for batch in (MESSY[:10], MESSY[10:20], MESSY):
        arr = pa.array(batch, pa.string())
        assert_same(memo(arr), parse_dates(arr))
    assert memo._keys is None or len(memo._keys) <= 5


def test_threads_share_one_memo():
    rng = random.Random(11)
    batches = [pa.array([rng.choice(MESSY) for _ in range(400)], pa.string()) for _ in range(24)]
    memo, results = Distinct(name_key, direct_above=1.0), {}

    def work(i):
        results[i] = memo(batches[i])

    for start in range(0, len(batches), 4):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(start, start + 4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    for i, batch in enumerate(batches):
        assert_same(results[i], name_key(batch))
    assert len(memo._keys) == len(pc.unique(memo._keys))   # merged, no value twice


def test_two_threads_learning_from_one_snapshot_merge_their_values():
    gate, calls = threading.Barrier(2), iter(range(1_000_000))

    def slow_name_key(arr):       # the first two calls wait for each other: both saw no keys
        if next(calls) < 2:
            gate.wait(timeout=30)
        return name_key(arr)

    memo, results = Distinct(slow_name_key, direct_above=1.0), {}
    first, second = MESSY[:25] + MESSY[:5], MESSY[15:] + [None]
    threads = [threading.Thread(target=lambda b=b: results.setdefault(len(results), (b, memo(b))))
               for b in (pa.array(first, pa.string()), pa.array(second, pa.string()))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for batch, got in results.values():
        assert_same(got, name_key(batch))
    assert sorted(memo._keys.to_pylist(), key=str) == sorted(set(MESSY), key=str)
    everything = pa.array(list(reversed(MESSY)) * 2, pa.string())
    assert_same(memo(everything), name_key(everything))     # answered from the merged memo


def ipc_bytes(arrays: list[pa.Array]) -> bytes:
    """The arrays as one Arrow IPC batch: what a hand-off file holds of them, byte for byte."""
    batch = pa.RecordBatch.from_arrays(arrays, names=[str(i) for i in range(len(arrays))])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_many_arrays_at_once_give_what_one_memo_per_array_gives(name):
    """Several columns looked up together (conform's date columns) give, value for value and
    byte for byte, what a memo per column gives: nulls, blanks, invalid and full-width values,
    an all-null and an empty column among them."""
    rng = random.Random(3)
    fn = FUNCTIONS[name]
    together, apart = Distinct(fn), None
    alone: list[Distinct] = []
    for size in (300, 1, 700, 40):
        arrays = [pa.array([rng.choice(MESSY) for _ in range(size)], pa.string()).slice(1) for _ in range(3)]
        arrays += [pa.nulls(size, pa.string()), pa.array([], pa.string())]
        alone = alone or [Distinct(fn) for _ in arrays]
        got = together.many(arrays)
        apart = [memo(a) for memo, a in zip(alone, arrays)]
        for g, a, arr in zip(got, apart, arrays, strict=True):
            assert_same(g, a)
            assert_same(g, fn(arr))
            assert ipc_bytes(parts(g)) == ipc_bytes(parts(a))
    assert len(together._keys) == len(pc.unique(together._keys)) <= len(MESSY)   # each value once


def test_many_after_giving_up_takes_the_direct_path_per_array():
    memo = Distinct(code_key, min_rows=100)
    unique = [pa.array([f" {i:06d}ab{j} " for i in range(300)]) for j in range(2)]
    for got, arr in zip(memo.many(unique), unique, strict=True):
        assert_same(got, code_key(arr))
    assert memo.direct
    again = [pa.array(["x", None]), pa.nulls(2, pa.string())]
    for got, arr in zip(memo.many(again), again, strict=True):
        assert_same(got, code_key(arr))
