"""The validate stage's plain Python: suite files, parameters, volume reference, messages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from skiff.config import SkiffConfig, ValidationConfig
from skiff.data import DEFECTS
from skiff.exceptions import SkiffConfigError
from skiff.data import TABLES
from skiff.validate.suites import (
    SUITES,
    ExpectationSpec,
    Report,
    SuiteSpec,
    ValidationWindow,
    VolumeReference,
    failure_message,
    failures,
    raw_contract_columns,
    render_suite,
    suite_parameters,
    volume_history_sql,
    volume_reference,
)

START = datetime(2026, 11, 20, 11, tzinfo=UTC)
END = START + timedelta(hours=1)
NOW = datetime(2026, 11, 25, 8, tzinfo=UTC)
WINDOW = ValidationWindow(START, END, NOW)
HOUR = 3_600_000

#: Every defect the issue lists, by the name the suites give it.
ISSUE_DEFECTS = {
    "duplicate_events", "duplicate_session_ids", "empty_sessions", "null_session_ids",
    "malformed_session_ids", "null_timestamps", "bad_event_types", "bad_actions",
    "future_timestamps", "ancient_timestamps", "out_of_order_events", "unknown_skus",
    "bad_prices", "schema_drift", "empty_hour", "volume_drop", "volume_spike", "label_rate",
}


@pytest.fixture(scope="module")
def config() -> SkiffConfig:
    return SkiffConfig()


@pytest.fixture(scope="module")
def specs(config) -> dict[str, SuiteSpec]:
    return {name: SuiteSpec.load(name, config.validation.suites_dir) for name in SUITES}


def _params(config, volume=VolumeReference(24, 1000.0), window=WINDOW):
    return suite_parameters(config, window, volume)


def test_one_suite_file_per_guarded_table(config, specs) -> None:
    files = {p.stem for p in config.validation.suites_dir.glob("*.yml")}
    assert files == set(SUITES)
    for name, spec in specs.items():
        assert spec.expectations, name
        assert all(e.defect and e.problem for e in spec.expectations), name
        assert spec.parameters <= set(_params(config)), name


def test_every_defect_of_the_issue_has_an_expectation(specs) -> None:
    named = {e.defect for spec in specs.values() for e in spec.expectations}
    assert ISSUE_DEFECTS <= named, ISSUE_DEFECTS - named


def test_every_bad_batch_names_a_defect_of_its_task_suite(specs) -> None:
    suite_of = {"validate_raw_schema": "raw_schema", "validate_raw_events": "browsing_train",
                "validate_volume": "volume", "validate_session_events": "int_session_events",
                "validate_sessions": "fct_sessions", "validate_products": "dim_products"}
    for defect in DEFECTS.values():
        defects = {e.defect for e in specs[suite_of[defect.task_id]].expectations}
        assert defect.expect in defects, defect.name


def test_thresholds_come_from_the_configuration(specs) -> None:
    custom = SkiffConfig(validation=ValidationConfig(
        label_rate_min=0.05, label_rate_max=0.42, max_duplicate_share=0.03,
        max_unknown_sku_share=0.2, max_event_gap_minutes=45, max_future_skew_minutes=30,
        earliest_event_time=datetime(2019, 1, 1, tzinfo=UTC), volume_min_ratio=0.5,
        volume_max_ratio=3.0, max_out_of_order_share=0.1))
    params = _params(custom)
    kwargs = {(name, e["meta"]["defect"]): e["kwargs"]
              for name, spec in specs.items() for e in spec.render(params).expectations}
    assert kwargs[("fct_sessions", "label_rate")] == {
        "column": "add_label", "min_value": 0.05, "max_value": 0.42}
    assert kwargs[("browsing_train", "duplicate_events")]["mostly"] == pytest.approx(0.97)
    assert kwargs[("int_session_events", "unknown_skus")]["mostly"] == pytest.approx(0.8)
    assert kwargs[("int_session_events", "duplicate_session_ids")]["max_value"] == 45 * 60
    assert kwargs[("fct_sessions", "out_of_order_events")]["mostly"] == pytest.approx(0.9)
    assert kwargs[("browsing_train", "future_timestamps")]["max_value"] == int(
        (NOW + timedelta(minutes=30)).timestamp() * 1000)
    assert kwargs[("browsing_train", "ancient_timestamps")]["min_value"] == int(
        datetime(2019, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert kwargs[("volume", "volume_drop")]["min_value"] == 500
    assert kwargs[("volume", "volume_spike")]["max_value"] == 3000


def test_batches_select_the_interval_slice(config, specs) -> None:
    params = _params(config)
    for name, spec in specs.items():
        sql = spec.render(params).sql
        assert sql.lower().startswith("select"), name
        if name not in ("raw_schema", "dim_products"):  # the schema, and the small catalogue
            assert str(params["start_ms"]) in sql or params["start_ts"] in sql, name
    raw = specs["browsing_train"].render(params).sql
    assert f"server_timestamp_epoch_ms >= {WINDOW.start_ms}" in raw
    assert f"server_timestamp_epoch_ms < {WINDOW.end_ms}" in raw
    assert "batch_id in" in raw and "ingested_at >=" in raw  # broken rows of the delivery


def test_future_cutoff_is_the_later_of_now_and_the_interval_end(config) -> None:
    early = ValidationWindow(START, END, now=START)  # a run before its interval ended (clock skew)
    cutoff = suite_parameters(config, early)["future_cutoff_ms"]
    assert cutoff == early.end_ms + 10 * 60_000
    assert suite_parameters(config, WINDOW)["future_cutoff_ms"] == int(
        (NOW + timedelta(minutes=10)).timestamp() * 1000)


def test_volume_reference_counts_empty_hours_but_not_the_time_before_the_log() -> None:
    first = WINDOW.start_ms // HOUR - 5
    rows = [(first, 100), (first + 1, 120), (first + 3, 80), (first + 4, 110)]  # first + 2: empty
    reference = volume_reference(rows, WINDOW)
    assert reference == VolumeReference(hours=5, median=100.0)
    assert volume_reference([], WINDOW) == VolumeReference(0, None)
    sql = volume_history_sql("raw", WINDOW, 24)
    assert f">= {WINDOW.start_ms - 24 * HOUR}" in sql and f"< {WINDOW.start_ms}" in sql


def test_without_a_volume_reference_only_an_empty_hour_fails(config, specs) -> None:
    rendered = specs["volume"].render(_params(config, volume=None))
    assert [e["meta"]["defect"] for e in rendered.expectations] == ["empty_hour"]
    assert rendered.skipped == ("volume_drop", "volume_spike")
    tiny = specs["volume"].render(_params(config, volume=VolumeReference(3, 4.0)))
    assert "volume_drop" in tiny.skipped  # a floor of one event is the empty-hour check


def test_raw_contract_columns_follow_the_contract() -> None:
    columns = raw_contract_columns()
    assert len(columns) == sum(len(t.log_schema) for t in TABLES)
    assert "browsing_train.server_timestamp_epoch_ms integer" in columns
    assert "sku_to_content.price_bucket float" in columns
    assert "search_train.ingested_at timestamp" in columns


def test_render_rejects_unknown_parameters_and_drops_empty_ones() -> None:
    spec = SuiteSpec("t", "{raw_schema}.t", "", "select 1", (
        ExpectationSpec("expect_column_values_to_be_between", {"column": "x", "min_value": 1,
                        "max_value": {"$PARAMETER": "cap"}}, "d", "over {cap}"),
    ))
    rendered = render_suite(spec, {"raw_schema": "raw", "cap": None})
    assert rendered.expectations[0]["kwargs"] == {"column": "x", "min_value": 1}
    assert rendered.expectations[0]["meta"] == {"defect": "d", "problem": "over n/a"}
    with pytest.raises(SkiffConfigError, match="unknown parameters \\['cap'\\]"):
        render_suite(spec, {"raw_schema": "raw"})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("name: x\ntable: t\nbatch: select 1\nexpectations: []\n", "declares name",
                     id="wrong-name"),
        pytest.param("name: bad\ntable: t\nexpectations: []\n", "not a valid suite",
                     id="no-batch"),
        pytest.param("name: bad\ntable: t\nbatch: with a as (select 1) select * from a\n"
                     "expectations: []\n", "one SELECT", id="cte"),
        pytest.param("name: bad\ntable: t\nbatch: select 1\nexpectations:\n"
                     "  - {type: expect_x, kwargs: {}}\n", "meta.defect", id="no-meta"),
    ],
)
def test_invalid_suite_files_are_refused(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.yml").write_text(text)
    with pytest.raises(SkiffConfigError, match=match):
        SuiteSpec.load("bad", tmp_path)
    with pytest.raises(SkiffConfigError, match="No suite 'absent'"):
        SuiteSpec.load("absent", tmp_path)


def test_window_is_aware_and_ordered() -> None:
    assert WINDOW.label == "2026-11-20T1100Z"
    assert str(WINDOW) == "2026-11-20 11:00 UTC .. 2026-11-20 12:00 UTC"
    assert ValidationWindow.of("2026-11-20T11:00:00", "2026-11-20T12:00:00Z", NOW) == WINDOW
    with pytest.raises(ValueError, match="after its start"):
        ValidationWindow(END, START, NOW)


# --------------------------------------------------------------------------- messages

RESULT = {
    "success": False,
    "statistics": {"evaluated_expectations": 4, "successful_expectations": 1},
    "results": [
        {"success": True, "expectation_config": {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "session_id_hash", "batch_id": "b"},
            "meta": {"defect": "null_session_ids", "problem": "events without a session id"}},
         "result": {"element_count": 2000, "unexpected_count": 0}},
        {"success": False, "expectation_config": {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "event_type", "value_set": ["event_product", "pageview"]},
            "meta": {"defect": "bad_event_types", "problem": "event types outside the contract"}},
         "result": {"element_count": 2000, "unexpected_count": 100, "unexpected_percent": 5.0,
                    "partial_unexpected_counts": [{"value": "click", "count": 20}]}},
        {"success": False, "expectation_config": {
            "type": "expect_column_distinct_values_to_equal_set",
            "kwargs": {"column": "column_spec", "value_set": ["t.a integer", "t.b string"]},
            "meta": {"defect": "schema_drift", "problem": "columns differ"}},
         "result": {"observed_value": ["t.a string", "t.b string"]}},
        {"success": False, "expectation_config": {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "add_label", "min_value": 0.01, "max_value": 0.5},
            "meta": {"defect": "label_rate", "problem": "label rate outside its band"}},
         "result": {"observed_value": 0.987654}},
        {"success": False, "expectation_config": {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "event_key"},
            "meta": {"defect": "duplicate_events", "problem": "events logged twice"}},
         "exception_info": {"raised_exception": True, "exception_message": "boom"},
         "result": {}},
    ],
}


def test_failures_explain_counts_examples_and_observed_values() -> None:
    found = {f.defect: f for f in failures(RESULT)}
    assert set(found) == {"bad_event_types", "schema_drift", "label_rate", "duplicate_events"}
    assert found["bad_event_types"].detail == "100 of 2,000 rows (5.0%), e.g. 'click' (x20)"
    assert found["bad_event_types"].expectation == "expect_column_values_to_be_in_set(event_type)"
    assert found["schema_drift"].detail == "missing ['t.a integer']; unexpected ['t.a string']"
    assert found["label_rate"].detail == "observed 0.9877, expected min_value=0.01, max_value=0.5"
    assert found["duplicate_events"].detail == "could not be evaluated: boom"


def test_failure_message_names_table_interval_defects_and_report(config, specs) -> None:
    suite = specs["browsing_train"].render(_params(config))
    message = failure_message(suite, WINDOW, RESULT, Report(Path("/r/x.json"), Path("/d/p.html")))
    first, *rest = message.splitlines()
    assert first == ("Data validation failed: raw.browsing_train, data interval 2026-11-20 11:00 "
                     "UTC .. 2026-11-20 12:00 UTC (suite browsing_train, 2,000 rows checked): "
                     "4 of 4 expectations failed.")
    assert rest[0].startswith("  - [bad_event_types] event types outside the contract: 100 of")
    assert "Defects: bad_event_types, duplicate_events, label_rate, schema_drift." in rest
    assert "Report: /r/x.json" in rest and "Data Docs: /d/p.html" in rest


def test_long_values_are_shortened_in_examples() -> None:
    key = "a" * 64 + "|1795590026393|event_product|detail|" + "b" * 64
    result = {"results": [{"success": False, "expectation_config": {
        "type": "expect_column_values_to_be_unique", "kwargs": {"column": "event_key"},
        "meta": {"defect": "duplicate_events", "problem": "dups"}},
        "result": {"element_count": 10, "unexpected_count": 2, "unexpected_percent": 20.0,
                   "partial_unexpected_list": [key, key]}}]}
    (failure,) = failures(result)
    shown = "'aaaaaaaaaaaa…|1795590026393|event_product|detail|bbbbbbbbbbbb…'"
    assert failure.detail.endswith(f"e.g. {shown}")


def test_config_objects_are_frozen(config) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.validation.label_rate_max = 1.0  # type: ignore[misc]


def test_counts_leave_out_rows_without_a_value() -> None:
    result = {"results": [{"success": False, "expectation_config": {
        "type": "expect_column_values_to_be_in_set", "kwargs": {"column": "sku_check"},
        "meta": {"defect": "unknown_skus", "problem": "unknown SKUs"}},
        "result": {"element_count": 2000, "missing_count": 900, "unexpected_count": 330,
                   "unexpected_percent": 30.0,
                   "partial_unexpected_counts": [{"value": "f" * 64, "count": 3}]}}]}
    (failure,) = failures(result)
    assert failure.detail == "330 of 1,100 rows with a value (30.0%), e.g. 'ffffffffffff…' (x3)"
