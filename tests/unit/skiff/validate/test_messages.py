"""A validation result in words: failed expectations with counts and examples, messages."""

from __future__ import annotations

from pathlib import Path

from skiff.validate.messages import failure_message, failures, success_message
from skiff.validate.reports import Report

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


def test_an_error_computing_a_metric_is_explained() -> None:
    # GX keys such an error by the metric it could not compute (a column missing, say)
    missing = 'Error: The column "hashed_url" in BatchData does not exist.'
    item = {"success": False, "result": {}, "expectation_config": {
                "type": "expect_column_values_to_not_be_null", "kwargs": {"column": "hashed_url"},
                "meta": {"defect": "missing_hashed_url", "problem": "events without hashed_url"}},
            "exception_info": {"MetricConfigurationID(metric_name='column_values.nonnull')": {
                "raised_exception": True, "exception_traceback": "...",
                "exception_message": missing}}}
    (failure,) = failures({"results": [item]})
    assert failure.detail == ('could not be evaluated: Error: The column "hashed_url" in '
                              "BatchData does not exist.")


def test_failure_message_names_table_interval_defects_and_report(specs, params, window) -> None:
    suite = specs["browsing_train"].render(params())
    message = failure_message(suite, window, RESULT, Report(Path("/r/x.json"), Path("/d/p.html")))
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


def test_counts_leave_out_rows_without_a_value() -> None:
    result = {"results": [{"success": False, "expectation_config": {
        "type": "expect_column_values_to_be_in_set", "kwargs": {"column": "sku_check"},
        "meta": {"defect": "unknown_skus", "problem": "unknown SKUs"}},
        "result": {"element_count": 2000, "missing_count": 900, "unexpected_count": 330,
                   "unexpected_percent": 30.0,
                   "partial_unexpected_counts": [{"value": "f" * 64, "count": 3}]}}]}
    (failure,) = failures(result)
    assert failure.detail == "330 of 1,100 rows with a value (30.0%), e.g. 'ffffffffffff…' (x3)"


def test_success_message_counts_rows_and_names_skipped_checks(specs, params, window) -> None:
    suite = specs["volume"].render(params(volume=None))
    result = {"statistics": {"evaluated_expectations": 1},
              "results": [{"success": True, "result": {"element_count": 1}}]}
    assert success_message(suite, window, result) == (
        "raw.browsing_train, data interval 2026-11-20 11:00 UTC .. 2026-11-20 12:00 UTC: all 1 "
        "expectations of suite volume passed on 1 rows; skipped without a reference: "
        "volume_drop, volume_spike.")
