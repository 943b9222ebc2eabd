"""Whole-log validation on a real log: every suite over the whole range, validated inside
DuckDB, gives what GX gives on the whole range read into pandas, result for result and
message for message; defects spread over hours count once over the range.

The log is ``tests/bad_batches.py``'s (8 hours, 1,500 sessions) with defects planted in
several hours: the last hour delivered with 20 % of its sessions reusing earlier session ids
(``duplicate_session_ids``), copies of 10 % of the events of four hours earlier re-delivered
in the last hour (duplicates whose copies arrive hours apart: no hourly run sees both), and
events of type ``click`` in an early hour. ``skiff validate`` and a full-refresh run's
operator run on it too.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from bad_batches import END, SEED, SPAN_HOURS, START, TASK_SUITES, interval_data, make_log, ms
from bad_batches import make_source
from environ import environ
from gx_results import assert_same_results, gx_pandas_result

from skiff.cli import main
from skiff.config import SkiffConfig
from skiff.data import build_bad_batch
from skiff.validate import SUITES, SuiteSpec, ValidationWindow, failure_message
from skiff.validate.whole_log import log_span, render_for_range, validate_range

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
#: Events of the hour four hours before the last one, re-delivered in the last hour.
REDELIVERED_FROM = ms(START) - 4 * HOUR_MS


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    source = make_source(tmp_path_factory.mktemp("source"))
    work = tmp_path_factory.mktemp("whole")
    log = make_log(work, source, build_bad_batch("duplicate_session_ids", interval_data(source),
                                                 seed=SEED))
    with log.warehouse.connect() as con:
        # copies of 10 % of an earlier hour's events, arriving in the last hour
        con.execute(f"""
            insert into raw.browsing_train
            select * replace ('redelivered' as batch_id,
                              arrival_ts_ms + {ms(START) - REDELIVERED_FROM} as arrival_ts_ms)
            from raw.browsing_train
            where arrival_ts_ms >= {REDELIVERED_FROM}
                and arrival_ts_ms < {REDELIVERED_FROM + HOUR_MS}
                and server_timestamp_epoch_ms % 10 = 0""")
        # unknown event types in an early hour
        con.execute(f"""
            insert into raw.browsing_train
            select * replace ('click' as event_type, 'clicks' as batch_id)
            from raw.browsing_train
            where arrival_ts_ms >= {ms(START) - 6 * HOUR_MS}
                and arrival_ts_ms < {ms(START) - 5 * HOUR_MS}
                and server_timestamp_epoch_ms % 25 = 1""")
    log.build_marts(work)
    return log


@pytest.fixture(scope="module")
def config(log, tmp_path_factory):
    with environ(SKIFF_DUCKDB_PATH=str(log.path),
                 SKIFF_GX_DIR=str(tmp_path_factory.mktemp("gx"))):
        yield SkiffConfig.from_env()


@pytest.fixture(scope="module")
def window(log, config):
    start, end = log_span(log.warehouse, config)
    return ValidationWindow(start, end)


def test_the_log_span_is_its_whole_hours(log, config) -> None:
    start, end = log_span(log.warehouse, config)
    assert start == END - timedelta(hours=SPAN_HOURS)
    # the catalogue was loaded (arrival) when the log was made: the span reaches that hour
    assert end > END and end.minute == 0


@pytest.mark.parametrize("suite", [pytest.param(s, id=s) for s in SUITES])
def test_each_suite_over_the_range_equals_gx_on_the_whole_range(suite, log, config, window):
    spec = SuiteSpec.load(suite, config.validation.suites_dir)
    rendered = render_for_range(spec, config, window, log.warehouse)
    (outcome,) = validate_range(config, window, log.warehouse, suites=[suite], data_docs=False)
    assert outcome.suite == rendered
    got = outcome.result.to_json_dict()
    with log.warehouse.connect() as con:
        expected = gx_pandas_result(con, rendered)
    assert_same_results(got, expected)
    assert failure_message(rendered, window, got) == failure_message(rendered, window, expected)
    # the planted defects fail these (so failures, counts and examples are compared too)
    assert expected["success"] is (suite not in ("browsing_train", "int_session_events"))
    document = json.loads(outcome.report.result_json.read_text())
    assert outcome.report.result_json.parent.name == window.span_label
    assert document["success"] == expected["success"]


def test_duplicates_arriving_hours_apart_are_counted_over_the_range(log, config, window):
    with log.warehouse.connect() as con:
        ((copies,),) = con.execute("select count(*) from raw.browsing_train "
                                   "where batch_id = 'redelivered'").fetchall()
    assert copies > 100
    (whole,) = validate_range(config, window, log.warehouse, suites=["browsing_train"],
                              data_docs=False)
    (duplicates,) = [r for r in whole.result.results
                     if r.expectation_config.meta["defect"] == "duplicate_events"]
    assert not duplicates.success
    assert duplicates.result["unexpected_count"] == 2 * copies  # the original and its copy
    # an hourly run of either hour sees one copy of each: no duplicate
    for hour_start in (START, START - timedelta(hours=4)):
        hour = ValidationWindow(hour_start, hour_start + timedelta(hours=1))
        (one,) = validate_range(config, hour, log.warehouse, suites=["browsing_train"],
                                data_docs=False)
        (hourly,) = [r for r in one.result.results
                     if r.expectation_config.meta["defect"] == "duplicate_events"]
        assert hourly.result["unexpected_count"] == 0


def test_cli_validates_the_whole_log_and_exits_1_on_a_failure(log, config, window, capsys):
    with environ(SKIFF_DUCKDB_PATH=str(log.path), SKIFF_GX_DIR=str(config.validation.reports_dir)):
        status = main(["validate", "--all", "--no-data-docs"])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    folder = config.validation.reports_dir / "results" / window.span_label
    start, end = window.span_label.split("--")
    assert lines[0] == f"validation of the range {start} .. {end}: {folder}"
    assert lines[1].split()[:2] == ["passed", "raw_schema"]
    assert lines[2].split()[:2] == ["FAILED", "browsing_train"]
    assert any("[duplicate_events]" in line for line in lines)
    assert any("[unknown_event_type]" in line and "'click'" in line for line in lines)
    assert "not run" not in out  # every suite ran
    # progress per suite and per query, on stderr
    assert re.search(r"^browsing_train: FAILED in [0-9.]+ s$", err, re.M)
    assert re.search(r"^  counted over the rows: \d+ metrics \([0-9.]+ s\)$", err, re.M)


def test_cli_quiet_selected_suites_and_bad_ranges(log, config, capsys):
    env = {"SKIFF_DUCKDB_PATH": str(log.path), "SKIFF_GX_DIR": str(config.validation.reports_dir)}
    with environ(**env):
        status = main(["validate", "--all", "-q", "--suite", "raw_schema", "--suite", "volume",
                       "--no-data-docs"])
        out, err = capsys.readouterr()
        assert status == 0 and err == ""
        assert [line.split()[0] for line in out.splitlines()[1:]] == \
            ["passed", "not", "not", "not", "passed", "not", "not", "not", "not"]

        start = START - timedelta(hours=2)
        assert main(["validate", "--start", START.isoformat(), "--end", start.isoformat()]) == 2
        assert "must be after --start" in capsys.readouterr().err
        assert main(["validate"]) == 2
        assert "give the range: --all" in capsys.readouterr().err
    with environ(**env, SKIFF_WAREHOUSE="snowflake"):
        assert main(["validate", "--all"]) == 2
        assert "on Snowflake, trigger skiff_hourly with full_refresh" in capsys.readouterr().err


def test_a_full_refresh_run_checks_the_marts_of_the_whole_log(log, config, window):
    from bad_batches import FakeTI
    from operators.validate import GXIntervalValidationFailed, GXValidateIntervalOperator

    results = {}
    for task_id in ("validate_session_events", "validate_sessions"):
        operator = GXValidateIntervalOperator(
            task_id=task_id, suite=TASK_SUITES[task_id], interval_start=START.isoformat(),
            interval_end=END.isoformat(), whole_log="True", data_docs=False)
        ti = FakeTI()
        error = None
        with environ(SKIFF_DUCKDB_PATH=str(log.path),
                     SKIFF_GX_DIR=str(config.validation.reports_dir)):
            try:
                operator.execute({"ti": ti, "params": {}})
            except GXIntervalValidationFailed as exc:
                error = exc
        results[task_id] = (error, ti)

    error, ti = results["validate_session_events"]
    assert error is not None and "duplicate_session_ids" in error.defects
    whole_log = ValidationWindow(window.start, END)
    assert str(error).startswith(f"Data validation failed: intermediate.int_session_events, "
                                 f"data interval {whole_log} (suite int_session_events, ")
    assert ti.xcom["return_value"]["success"] is False
    # kept with the run's other results, in its interval's folder
    report = config.validation.reports_dir / "results" / ValidationWindow(START, END).label
    document = json.loads((report / "int_session_events.json").read_text())
    assert document["interval"]["start"] == window.start.isoformat()
    # the same counts as a whole-log validation of the same range
    (direct,) = validate_range(config, whole_log, log.warehouse, suites=["int_session_events"],
                               data_docs=False)
    assert [r["result"] for r in document["result"]["results"]] == \
        [r["result"] for r in direct.result.to_json_dict()["results"]]
    error, ti = results["validate_sessions"]
    assert ti.xcom["return_value"]["statistics"]["evaluated_expectations"] == 7


def test_dag_checks_the_whole_log_after_a_full_refresh_only_for_the_marts() -> None:
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag
    from operators.validate import _flag

    dags = Path(__file__).resolve().parents[2] / "dags"
    dag = DagBag(dag_folder=str(dags)).dags["skiff_hourly"]
    for task_id in TASK_SUITES:
        task = dag.get_task(task_id)
        marts = task_id in ("validate_session_events", "validate_sessions", "validate_products")
        assert task.whole_log == ("{{ params.full_refresh }}" if marts else False), task_id
        for full_refresh in (True, False):  # the param as the run's template renders it
            rendered = task.render_template(task.whole_log, {"params": {
                "full_refresh": full_refresh}})
            assert _flag(rendered) is (full_refresh and marts)
