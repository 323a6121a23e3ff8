"""Quarantine reasons in words: what is wrong, what the source should fix, the expectation beside."""
from __future__ import annotations

from quality import reasons
from schemas.types import get_type


def test_a_reason_says_what_is_wrong_and_what_to_fix():
    t = get_type("business_licence")
    assert reasons.explain("expect_column_values_to_be_valid_uscc(holder_code)", t) == (
        "持证主体代码不是有效的统一社会信用代码（校验位或字符错误），请源部门核对并更正该代码 "
        "(expect_column_values_to_be_valid_uscc: holder_code)")
    assert reasons.explain("expect_column_pair_values_a_to_be_greater_than_b(valid_to,issue_date)", t) == (
        "有效期截止日期应晚于（大于）颁证日期，请源部门核对这两项 "
        "(expect_column_pair_values_a_to_be_greater_than_b: valid_to, issue_date)")
    assert reasons.explain("expect_column_values_to_be_parsable_dates(issue_date)", t).startswith(
        "颁证日期不是可识别的真实日期")
    en = reasons.explain("expect_column_values_to_not_be_null(licence_name)", t, "en")
    assert en == ("licence_name is missing: the source should fill it in "
                  "(expect_column_values_to_not_be_null: licence_name)")


def test_unknown_expectations_and_columns_still_read():
    assert reasons.explain("expect_column_values_to_match_regex(zzz)") == \
        "zzz的格式不符合要求，请源部门按规定格式填写 (expect_column_values_to_match_regex: zzz)"
    assert reasons.explain("expect_something_new(a)").startswith("a未通过校验规则")
    assert reasons.explain("free text") == "字段未通过校验规则，请源部门核对该项 (free text)"
    assert reasons.described("expect_column_values_to_be_unique(licence_number)") == {
        "reason": "expect_column_values_to_be_unique(licence_number)",
        "expectation": "expect_column_values_to_be_unique", "columns": ["licence_number"],
        "text": "licence_number在本批数据中重复，请源部门核对并去除重复记录 "
                "(expect_column_values_to_be_unique: licence_number)"}
