"""Suite files: one per guarded table, each defect named, rendered with a run's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_batches import TASK_SUITES

from skiff.data import DEFECTS
from skiff.exceptions import SkiffConfigError
from skiff.validate.parameters import VolumeReference
from skiff.validate.suites import (
    MONITOR_SUITES,
    SUITES,
    ExpectationSpec,
    SuiteSpec,
    render_suite,
)

#: Every defect the issue lists, by the name the suites give it.
ISSUE_DEFECTS = {
    "duplicate_events", "duplicate_session_ids", "empty_sessions", "missing_session_id_hash",
    "malformed_session_id_hash", "missing_server_timestamp_epoch_ms", "unknown_event_type",
    "unknown_product_action",
    "future_timestamps", "ancient_timestamps", "out_of_order_events", "unknown_skus",
    "bad_prices", "schema_drift", "empty_hour", "volume_drop", "volume_spike", "label_rate",
}


def test_one_suite_file_per_guarded_table(config, specs, params) -> None:
    files = {p.stem for p in config.validation.suites_dir.glob("*.yml")}
    assert files == set(SUITES) | set(MONITOR_SUITES)
    monitor = {name: SuiteSpec.load(name, config.validation.suites_dir) for name in MONITOR_SUITES}
    for name, spec in {**specs, **monitor}.items():
        assert spec.expectations, name
        assert all(e.defect and e.problem for e in spec.expectations), name
        assert spec.parameters <= set(params()), name


def test_every_defect_of_the_issue_has_an_expectation(specs) -> None:
    named = {e.defect for spec in specs.values() for e in spec.expectations}
    assert ISSUE_DEFECTS <= named, ISSUE_DEFECTS - named


def test_every_bad_batch_names_a_defect_of_its_task_suite(specs) -> None:
    for defect in DEFECTS.values():
        defects = {e.defect for e in specs[TASK_SUITES[defect.task_id]].expectations}
        assert defect.expect in defects, defect.name


def test_batches_select_the_interval_slice(specs, params, window) -> None:
    values = params()
    for name, spec in specs.items():
        sql = spec.render(values).sql
        assert sql.lower().startswith("select"), name
        if name not in ("raw_schema", "dim_products"):  # the schema, and the small catalogue
            assert str(values["start_ms"]) in sql or values["start_ts"] in sql, name
    raw = specs["browsing_train"].render(values).sql
    # the rows that arrived in the interval: what the run's dbt models rebuild from
    assert f"where (arrival_ts_ms >= {window.start_ms} and arrival_ts_ms < {window.end_ms})" in raw
    assert "batch_id in" in raw and "ingested_at >=" in raw  # broken rows of the delivery


def test_without_a_volume_reference_only_an_empty_hour_fails(specs, params) -> None:
    rendered = specs["volume"].render(params(volume=None))
    assert [e["meta"]["defect"] for e in rendered.expectations] == ["empty_hour"]
    assert rendered.skipped == ("volume_drop", "volume_spike")
    tiny = specs["volume"].render(params(volume=VolumeReference(3, 4.0)))
    assert "volume_drop" in tiny.skipped  # a floor of one event is the empty-hour check


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
