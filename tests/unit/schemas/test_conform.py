"""Conforming: silo columns onto the canonical type, originals kept, keys normalised."""
from __future__ import annotations

import tomllib
from datetime import date

import pyarrow as pa

import registration
from schemas.conform import ROW, conform, conformed_schema
from schemas.identifiers import uscc_check_char
from tests.conftest import ROOT

REG = registration.parse(tomllib.loads(
    (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")), "demo")
USCC = "91330106" + "MA2B3C4D5"
USCC += uscc_check_char(USCC)


def silo_batch(**overrides) -> pa.RecordBatch:
    row = {"ID": "1", "ZCH": "330106000123456", "TYSHXYDM": USCC, "QYMC": "杭州示例科技有限公司",
           "FDDBR": "张三", "ZCZB": "500", "QYLX": "有限责任公司", "ZS": "杭州市西湖区",
           "JYFW": "软件开发", "CLRQ": "2019-05-06", "FZRQ": "2020年1月2日", "YYQXZ": "2020/1/2",
           "YYQXZHI": "长期", "DJJG": "杭州市西湖区市场监督管理局", "DJJGDM": "330106001",
           "XZQHDM": "330106", "DJZT": "存续", "GXSJ": "2024-01-01T00:00:00"}
    row.update(overrides)
    cols = {k: pa.array([v], pa.string()) for k, v in row.items()}
    cols[ROW] = pa.array([1], pa.int64())
    return pa.RecordBatch.from_pydict(cols)


def one(batch) -> dict:
    return conform(batch, REG.source_map).to_pylist()[0]


def test_maps_columns_and_fills_type_constants():
    out = one(silo_batch())
    assert conform(silo_batch(), REG.source_map).schema == conformed_schema(REG.ctype)
    assert out["licence_number"] == "330106000123456"
    assert out["holder_code"] == out["holder_key"] == USCC
    assert out["holder_code_type"] == "001"
    assert out["licence_name"] == "营业执照"
    assert out["licence_type_code"] == REG.ctype.type_code
    assert out["status"] == "valid"
    assert out["issue_date"] == date(2020, 1, 2) and out["valid_from"] == date(2020, 1, 2)
    assert out["valid_to"] is None                        # 长期: open-ended, not an error
    assert out["_unparsed_valid_to"] is None and out["_unparsed_issue_date"] is None


def test_codes_are_normalised_and_names_keep_their_original_text():
    full_width = USCC.lower().translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    out = one(silo_batch(TYSHXYDM=f" {full_width}\u200b", QYMC=" 杭州示例科技有限公司\u3000"))
    assert out["holder_code"] == USCC
    assert out["holder_name"] == "杭州示例科技有限公司"
    trad = one(silo_batch(QYMC="杭州示例科技有限公司（臺灣）"))
    simp = one(silo_batch(QYMC="杭州示例科技有限公司(台湾)"))
    assert trad["holder_name"].endswith("（臺灣）"), "the original spelling is kept"
    assert trad["holder_name_key"] == simp["holder_name_key"]


def test_unparsable_dates_keep_their_text_for_the_quality_step():
    out = one(silo_batch(FZRQ="2021-02-30"))
    assert out["issue_date"] is None and out["_unparsed_issue_date"] == "2021-02-30"
    # "长期" (open-ended) only where the field may be empty: not for a required issue date
    assert one(silo_batch(FZRQ="长期"))["_unparsed_issue_date"] == "长期"
    assert one(silo_batch(CLRQ="长期"))["_unparsed_established_date"] is None


def test_dates_in_chinese_numerals_are_dates_not_quarantined():
    from datetime import date

    out = one(silo_batch(FZRQ="二〇一八年三月九日", YYQXZ="二零一八年三月九日", YYQXZHI="二〇三八年十二月三十一日",
                         CLRQ="二〇一七年二月廿八日"))
    assert (out["issue_date"], out["valid_from"], out["valid_to"], out["established_date"]) == (
        date(2018, 3, 9), date(2018, 3, 9), date(2038, 12, 31), date(2017, 2, 28))
    assert out["_unparsed_issue_date"] is None and out["_unparsed_valid_to"] is None
    bad = one(silo_batch(FZRQ="二〇一八年二月三十日"))
    assert bad["issue_date"] is None and bad["_unparsed_issue_date"] == "二〇一八年二月三十日"


def test_unmapped_status_codes_are_kept_as_written():
    assert one(silo_batch(DJZT="吊销"))["status"] == "revoked"
    assert one(silo_batch(DJZT="歇业"))["status"] == "歇业"


def test_a_missing_mapped_column_names_the_source_and_the_column():
    import pytest

    from base.errors import DataError
    batch = silo_batch().drop_columns(["QYMC"])
    with pytest.raises(DataError, match="QYMC") as exc:
        conform(batch, REG.source_map)
    assert "smr_business_licence" in str(exc.value)


def test_a_runs_memo_gives_what_the_direct_path_gives():
    import random

    from schemas.conform import Conformer
    from schemas.distinct import Distinct

    rng = random.Random(5)
    dates = ["2020-02-30", "20200230", "２０２０年１月２日", "2020/1/2", " 2020 - 01 - 02 ", "长期",
             "長期", "", " ", None, "abc", "2021-02-29", "2020-01-02 08:30:00", "2020\u200b0102",
             "二〇一八年三月九日", "二〇一八年二月三十日", "二零二〇年十二月廿一日"]
    names = ["杭州示例科技有限公司（臺灣）", "杭州示例科技有限公司(台湾)", " 張　三\u3000", "", None, "\u200b"]
    codes = [USCC, f" {USCC.lower()}\u200b".translate(str.maketrans("0123", "０１２３")), "", None,
             "110101199003071234", "abc"]
    pools = {"CLRQ": dates, "FZRQ": dates, "YYQXZ": dates, "YYQXZHI": dates, "QYMC": names,
             "FDDBR": names, "TYSHXYDM": codes, "ZCH": codes + ["330106000123456"],
             "DJJGDM": codes + ["330106001", " 330106001 "], "DJZT": ["存续", "吊销", "歇业", " 注销 ", None]}
    memo, direct = Conformer(REG.source_map), Conformer(REG.source_map)
    for d in [*direct.fields.values(), direct._dates, direct.holder_code_type, direct.name_key]:
        if isinstance(d, Distinct):
            d.direct = True
    for size in (200, 1, 500, 50):
        rows = [silo_batch(**{c: rng.choice(pool) for c, pool in pools.items()}) for _ in range(size)]
        batch = pa.Table.from_batches(rows).combine_chunks().to_batches()[0]
        batch = batch.set_column(batch.schema.get_field_index(ROW), ROW, pa.array(range(1, size + 1)))
        got, want = memo(batch), direct(batch)
        assert got.schema == want.schema == conformed_schema(REG.ctype)
        for name in got.schema.names:
            assert got.column(name).equals(want.column(name)), name
        assert got.equals(conform(batch, REG.source_map))
    assert any(d._keys is not None for d in memo.fields.values() if isinstance(d, Distinct))


def test_date_columns_conformed_together_as_each_alone():
    """The date columns go through one memo together (each distinct text parsed once): the
    conformed dates and kept texts are byte for byte what a memo per column of _one_date_field gives,
    required (valid_from: 长期 and blanks apart) or not, batch after batch."""
    import functools
    import random

    from schemas.conform import Conformer, Dated, raw_name
    from schemas.distinct import Distinct

    rng = random.Random(9)
    dates = ["2020-02-30", "20200230", "２０２０年１月２日", "2020/1/2", " 2020 - 01 - 02 ", "长期",
             "長期", "", " ", "N/A", "-", None, "abc", "2021-02-29", "2020-01-02 08:30:00",
             "2020\u200b0102", "二〇一八年三月九日", "二〇一八年二月三十日", "１９９９．１２．３１"]
    fields = [f for f in REG.ctype.fields if f.type == "date" and f.name in REG.mapping]
    assert {f.required for f in fields} == {True, False}
    memo = Conformer(REG.source_map)
    alone = {f.name: Distinct(functools.partial(_one_date_field, Dated, required=f.required)) for f in fields}
    for size in (300, 1, 900, 20):
        rows = [silo_batch(**{REG.mapping[f.name]: rng.choice(dates) for f in fields}) for _ in range(size)]
        batch = pa.Table.from_batches(rows).combine_chunks().to_batches()[0]
        got = memo(batch)
        for f in fields:
            want = alone[f.name](batch.column(REG.mapping[f.name]))
            for name, w in ((f.name, want.dates), (raw_name(f.name), want.unparsed)):
                g = got.column(name)
                assert g.equals(w), name
                assert ipc(g) == ipc(w), name


def ipc(arr: pa.Array) -> bytes:
    batch = pa.RecordBatch.from_arrays([arr], names=["a"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _one_date_field(dated, col: pa.Array, required: bool):
    """One date field conformed alone, the form the shared memo replaced: the text is kept where
    it is not a date ("长期" too where the field is required; a blank required one is missing)."""
    import pyarrow.compute as pc

    from schemas.normalize import clean_text, is_blank, parse_dates

    parsed = parse_dates(col)
    bad = parsed.invalid if not required else pc.and_not(pc.or_(parsed.invalid, parsed.open_ended),
                                                          is_blank(col))
    return dated(parsed.dates, pc.if_else(bad, clean_text(col), pa.scalar(None, pa.string())))
