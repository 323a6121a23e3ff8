"""Custom Great Expectations for what the built-ins cannot say.

Imported only inside tasks (GX takes seconds to import), never at DAG parse time.
"""
from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute  # noqa: E402,F401
from great_expectations import expectations as gx_expectations  # noqa: E402
from great_expectations.core.suite_parameters import SuiteParameterDict  # noqa: E402
from great_expectations.execution_engine import PandasExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import ColumnMapExpectation  # noqa: E402
from great_expectations.expectations.metrics import (  # noqa: E402
    ColumnMapMetricProvider,
    column_condition_partial,
)

from schemas.identifiers import ric_valid, uscc_valid  # noqa: E402
from schemas.normalize import is_blank  # noqa: E402


def _mask(values: pa.BooleanArray, index) -> pd.Series:
    return pd.Series(values.to_numpy(zero_copy_only=False), index=index)


def _strings(column: pd.Series) -> pa.Array:
    return pa.array(column, type=pa.string(), from_pandas=True)


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_uscc"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return _mask(uscc_valid(_strings(column)), column.index)


class ExpectColumnValuesToBeValidUscc(ColumnMapExpectation):
    """Unified social credit codes (GB 32100): alphabet and weighted MOD 31 check character."""
    map_metric = "column_values.valid_uscc"
    success_keys = ("mostly",)


class ColumnValuesValidRic(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_ric"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return _mask(ric_valid(_strings(column)), column.index)


class ExpectColumnValuesToBeValidRic(ColumnMapExpectation):
    """Resident identity numbers (GB 11643): MOD 11-2 check and a real birth date."""
    map_metric = "column_values.valid_ric"
    success_keys = ("mostly",)


class ExpectColumnValuesToBeParsableDates(gx_expectations.ExpectColumnValuesToBeNull):
    """Dates in a form silos use (schemas.normalize.FORMS: 20200102, 2020-01-02, 2020/1/2,
    2020年1月2日, 二〇二〇年一月二日) and real.
    Runs on `_unparsed_<field>`, where conforming kept the text it could not parse."""


class ColumnValuesNotInFuture(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_in_future"
    condition_value_keys = ("today",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, today=None, **kwargs):
        return column <= pd.Timestamp(today)


class ExpectColumnValuesToNotBeInTheFuture(ColumnMapExpectation):
    """A date (issue date, birth date …) no later than the run's day."""
    map_metric = "column_values.not_in_future"
    success_keys = ("mostly", "today")
    today: str | SuiteParameterDict   # usually {"$PARAMETER": "today"}, bound per run


class ColumnValuesNotBlankNormalised(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_blank_normalised"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        return _mask(pa.compute.invert(is_blank(_strings(column))), column.index)


class ExpectColumnValuesToNotBeBlankWhenNormalised(ColumnMapExpectation):
    """A required value that is not blank once NFKC-normalised: not only whitespace or
    invisible characters, not a null marker (NULL, N/A, #N/A, 无, 空 …), not without any letter
    or digit (schemas.normalize.is_blank)."""
    map_metric = "column_values.not_blank_normalised"
    success_keys = ("mostly",)
