"""GXValidateIntervalOperator: a thin, templated layer over the GX provider's batch operator."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from great_expectations_provider.common.errors import GXValidationFailed
from great_expectations_provider.operators.validate_batch import GXValidateBatchOperator
from operators.validate import GXIntervalValidationFailed, GXValidateIntervalOperator


def test_is_the_providers_batch_operator_with_templated_interval() -> None:
    op = GXValidateIntervalOperator(task_id="validate_sessions", suite="fct_sessions")
    assert isinstance(op, GXValidateBatchOperator)
    assert set(op.template_fields) == {"suite", "interval_start", "interval_end", "whole_log"}
    assert op.interval_start == "{{ data_interval_start.isoformat() }}"
    assert op.interval_end == "{{ data_interval_end.isoformat() }}"
    assert op.result_format == "SUMMARY" and op.context_type == "ephemeral"
    assert op.data_docs is True and op.whole_log is False


@pytest.mark.parametrize("value", [True, "True", "false", " 1 ", "{{ params.full_refresh }}"])
def test_whole_log_takes_a_boolean_its_text_or_a_template(value) -> None:
    op = GXValidateIntervalOperator(task_id="t", suite="fct_sessions", whole_log=value)
    assert op.whole_log == value  # a template is rendered, then read, in execute


def test_whole_log_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="whole_log='sometimes' is neither true nor false"):
        GXValidateIntervalOperator(task_id="t", suite="fct_sessions", whole_log="sometimes")


def test_rejects_unknown_result_format() -> None:
    with pytest.raises(ValueError, match="result_format='ALL'"):
        GXValidateIntervalOperator(task_id="t", suite="fct_sessions", result_format="ALL")


def test_nothing_is_read_before_execute() -> None:
    op = GXValidateIntervalOperator(task_id="t", suite="fct_sessions")
    assert "hook" not in op.__dict__ and "config" not in op.__dict__  # built lazily
    with pytest.raises(RuntimeError, match="rendered in execute"):
        _ = op.rendered


def test_failure_does_not_retry_and_keeps_the_defects() -> None:
    result = {"success": False, "statistics": {"evaluated_expectations": 2},
              "expectations": [{"expectation_type": "expect_column_values_to_not_be_null",
                                "success": False, "kwargs": {}, "result": {}}]}
    error = GXIntervalValidationFailed("Data validation failed: raw.t ...", result=result,
                                       task_id="validate_raw_events", defects=["null_timestamps"])
    assert isinstance(error, AirflowFailException)  # the task fails at once, no retry
    assert isinstance(error, GXValidationFailed)  # what the provider raises
    assert str(error) == "Data validation failed: raw.t ..."
    assert error.defects == ("null_timestamps",)
    assert error.failed_expectation_types == ["expect_column_values_to_not_be_null"]
