"""Metrics pushed down to DuckDB, judged by GX, give GX's own pandas result, field for field.

One small table holds the values where the two engines could part: NULL and NaN, a final
newline, Unicode whitespace, text in a number column, a composite key with NULLs, missing
timestamps in a pair. Every expectation type the pushdown supports runs on it both ways: the
hourly way (the rows read into a DataFrame, validated by GX's pandas engine) and pushed down
(:func:`skiff.validate.pushdown.validate_in_warehouse`); the results must be equal.
"""

from __future__ import annotations

import re
import sys

import duckdb
import pytest
from gx_results import assert_same_results, gx_pandas_result

from skiff.exceptions import SkiffConfigError
from skiff.validate.pushdown import validate_in_warehouse
from skiff.validate.sql_checks import PY_WHITESPACE, SUPPORTED, compile_check, re2_pattern
from skiff.validate.suites import RenderedSuite

ROWS = [
    # s, f, n, a, b, k
    ("abc", 1.0, 10, "2026-01-01", "2026-01-01", "x"),
    ("abc\n", "nan", 20, "2026-01-02", "2026-01-01", "x"),
    (None, 3.0, None, None, "2026-01-03", None),
    ("\u00a0abc", 11.0, 40, "2026-01-01", None, None),
    ("xyz", None, 50, "2026-01-05", "2026-01-06", "y"),
    ("abc", 2.0, 60, "2026-01-01", "2026-01-02", "y"),
    ("ab", 2.0, 70, None, None, "x"),
    ("e\u0301\u2003", 2.0, 80, "2026-01-07", "2026-01-07", "z"),
]
EXPECTATIONS = [
    ("expect_column_values_to_not_be_null", {"column": "s"}),
    ("expect_column_values_to_not_be_null", {"column": "n"}),
    ("expect_column_values_to_be_null", {"column": "k"}),
    ("expect_column_values_to_match_regex", {"column": "s", "regex": "^abc$"}),
    ("expect_column_values_to_not_match_regex", {"column": "s", "regex": r"^\s|\s$"}),
    ("expect_column_value_lengths_to_equal", {"column": "s", "value": 3}),
    ("expect_column_values_to_be_in_set", {"column": "f", "value_set": [1.0, 2.0, 3.0]}),
    ("expect_column_values_to_be_in_set", {"column": "s", "value_set": ["abc", "xyz", 1]}),
    ("expect_column_values_to_be_between",
     {"column": "f", "min_value": 1, "max_value": 3, "strict_max": True}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 15, "mostly": 0.5}),
    ("expect_column_values_to_be_between", {"column": "s", "min_value": 1}),
    ("expect_column_values_to_be_unique", {"column": "s", "mostly": 0.5}),
    ("expect_column_values_to_be_unique", {"column": "f"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["f", "k"]}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "a", "column_B": "b", "or_equal": True,
      "ignore_row_if": "either_value_is_missing"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "a", "column_B": "b"}),
    ("expect_column_mean_to_be_between", {"column": "f", "min_value": 0, "max_value": 2}),
    ("expect_column_mean_to_be_between", {"column": "n", "min_value": 0, "max_value": 100}),
    ("expect_column_distinct_values_to_equal_set", {"column": "k", "value_set": ["x", "y", "w"]}),
    ("expect_column_values_to_not_be_null", {"column": "absent"}),
]
SQL = "select * from t"


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    con.execute("create table t (s varchar, f double, n bigint, a timestamp, b timestamp, "
                "k varchar)")
    con.executemany("insert into t values (?, cast(? as double), ?, ?, ?, ?)", ROWS)
    yield con
    con.close()


def _suite(expectations) -> RenderedSuite:
    return RenderedSuite(
        name="t", table="t", sql=SQL,
        expectations=tuple({"type": kind, "kwargs": kwargs,
                            "meta": {"defect": f"d{i}", "problem": kind}}
                           for i, (kind, kwargs) in enumerate(expectations)))


def test_every_supported_type_is_covered() -> None:
    assert {kind for kind, _ in EXPECTATIONS} == set(SUPPORTED)


def test_pushed_down_results_equal_gx_pandas_results(con) -> None:
    suite = _suite(EXPECTATIONS)
    assert_same_results(validate_in_warehouse(con, suite).to_json_dict(),
                        gx_pandas_result(con, suite))


def test_suite_statistics_and_verdict(con) -> None:
    result = validate_in_warehouse(con, _suite(EXPECTATIONS[:1]), batch_id="b1")
    assert result.success is False  # one null s
    assert result.statistics["evaluated_expectations"] == 1
    assert result.results[0].expectation_config.kwargs["batch_id"] == "b1"
    passing = validate_in_warehouse(con, _suite([("expect_column_values_to_be_null",
                                                  {"column": "absent_too"})]))
    assert passing.success is False  # a missing column fails, it never passes


@pytest.mark.parametrize("pattern", [
    pytest.param(r"^[0-9a-f]{64}$", id="hex"),
    pytest.param(r"^\s|\s$", id="whitespace"),
    pytest.param(r"^\[-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?(, -?[0-9]+(\.[0-9]+)?){2}\]$",
                 id="vector"),
    pytest.param(r"^[0-9a-f]{4}(/[0-9a-f]{4})*$", id="path"),
    pytest.param(r"^\d+[$\]x]$", id="digits-and-class"),
    pytest.param(r"a\Z", id="end"),
    pytest.param(r"[a]$|^[]x]|[^]a]$", id="short-classes"),
])
def test_re2_reads_a_pattern_as_python_re_does(pattern) -> None:
    values = ["abcd", "abcd\n", "abcd\n\n", " abcd", "abcd\u00a0", "\u2003", "\x1c", "\x0b",
              "ab\ncd", "[1.5, -2, 3e4]", "[1.5, -2, 3e4]\n", "ab12/cd34", "ab12/cd34\n",
              "12$", "٣4x", "12]", "a", "a\n", "]", "]\n", "x]", "b", "b\n", "", "0" * 64,
              "0" * 64 + "\n", "\u0085x"]
    con = duckdb.connect()
    translated = re2_pattern(pattern)
    for value in values:
        (duck,), = con.execute("select regexp_matches(?, ?)", [value, translated]).fetchall()
        assert duck == bool(re.search(pattern, value)), (pattern, value)


def test_python_whitespace_class_is_str_isspace() -> None:
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert max(map(ord, spaces)) < 0x3100
    found = duckdb.connect().execute(
        "select list(c) from (select unnest(?) as c) where regexp_matches(c, ?)",
        [[chr(c) for c in range(0x3100)], f"^[{PY_WHITESPACE}]$"]).fetchall()[0][0]
    assert sorted(found) == spaces


@pytest.mark.parametrize("pattern", [r"\w+", r"\bx", r"(a)\1", r"(?i)abc", r"(?=a)"])
def test_patterns_re2_reads_otherwise_are_refused(pattern) -> None:
    with pytest.raises(SkiffConfigError, match="regex"):
        re2_pattern(pattern)


def test_unsupported_expectation_type_is_refused() -> None:
    with pytest.raises(SkiffConfigError, match="expect_table_row_count_to_equal is not pushed"):
        compile_check({"type": "expect_table_row_count_to_equal", "kwargs": {"value": 3}},
                      {"s": "VARCHAR"})


def test_grouping_by_key_spills_past_the_memory_limit(tmp_path) -> None:
    """750k 64-character keys, each twice (~200 MB of groups), under a 48 MB limit: DuckDB
    spills to disk and the counts stay exact (forbidden to spill, it runs out of memory)."""
    con = duckdb.connect(str(tmp_path / "big.duckdb"))
    con.execute(f"set temp_directory = '{tmp_path / 'spill'}'")
    con.execute("create table t as select sha256(cast(i % 750000 as varchar)) as k, i "
                "from range(1500000) r(i)")
    con.execute("set memory_limit = '48MB'")
    suite = _suite([("expect_column_values_to_be_unique", {"column": "k"}),
                    ("expect_column_values_to_match_regex", {"column": "k",
                                                             "regex": "^[0-9a-f]{64}$"})])
    result = validate_in_warehouse(con, suite)
    unique, regex = result.results
    assert unique.result["unexpected_count"] == 1_500_000  # every row: each key is there twice
    assert unique.result["partial_unexpected_index_list"] == list(range(20))
    assert regex.success and regex.result["unexpected_count"] == 0
    con.execute("set max_temp_directory_size = '0KB'")  # the temporary tables were dropped
    with pytest.raises(duckdb.OutOfMemoryException):
        validate_in_warehouse(con, suite)
    con.close()
