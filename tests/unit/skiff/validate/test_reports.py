"""Results kept per interval, read back by ``skiff report`` and summarised for the terminal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from skiff.validate.parameters import ValidationWindow
from skiff.validate.reports import read_reports, report_summary, write_report

FAILED = {"success": False, "results": [{"success": False, "expectation_config": {
    "type": "expect_column_values_to_be_in_set", "kwargs": {"column": "event_type"},
    "meta": {"defect": "bad_event_types", "problem": "event types outside the contract"}},
    "result": {"element_count": 10, "unexpected_count": 1, "unexpected_percent": 10.0,
               "partial_unexpected_list": ["click"]}}]}
PASSED = {"success": True, "results": []}


@dataclass
class Result:
    """What :func:`write_report` reads of a GX result when it builds no Data Docs."""

    payload: dict[str, Any]

    @property
    def success(self) -> bool:
        return self.payload["success"]

    def to_json_dict(self) -> dict[str, Any]:
        return self.payload


def test_reports_are_kept_per_interval_and_read_back_in_suite_order(
        specs, params, window, tmp_path: Path) -> None:
    later = ValidationWindow(window.end, window.end + timedelta(hours=1), window.now)
    for win, suite, payload in ((window, "fct_sessions", PASSED), (window, "browsing_train", FAILED),
                                (later, "volume", PASSED)):
        report = write_report(Result(payload), specs[suite].render(params(win=win)), win,
                              tmp_path, data_docs=False)
        assert report.result_json == tmp_path / "results" / win.label / f"{suite}.json"
        assert report.data_docs_page is None

    label, documents = read_reports(tmp_path)  # the latest interval
    assert label == later.label and [d["suite"] for d in documents] == ["volume"]
    label, documents = read_reports(tmp_path, "2026-11-20T11:00:00Z")  # by its start time
    assert label == window.label
    assert [d["suite"] for d in documents] == ["browsing_train", "fct_sessions"]
    failed = documents[0]
    assert failed["defects"] == ["bad_event_types"] and failed["success"] is False
    assert failed["table"] == "raw.browsing_train" and failed["batch_sql"].startswith("select")
    assert failed["interval"] == {"start": window.start.isoformat(), "end": window.end.isoformat()}
    assert read_reports(tmp_path, window.label)[1] == documents
    assert read_reports(tmp_path / "none") == (None, [])


def test_summary_lists_every_suite_with_its_failures(specs, params, window, tmp_path) -> None:
    write_report(Result(FAILED), specs["browsing_train"].render(params()), window, tmp_path,
                 data_docs=False)
    write_report(Result(PASSED), specs["volume"].render(params()), window, tmp_path,
                 data_docs=False)
    lines = report_summary(tmp_path, *read_reports(tmp_path)).splitlines()
    assert lines[0] == ("validation of the data interval starting 2026-11-20T1100Z: "
                        f"{tmp_path / 'results' / window.label}")
    assert lines[1] == "  not run  raw_schema"
    assert lines[2].split() == ["FAILED", "browsing_train", "raw.browsing_train"]
    assert lines[3].strip().startswith("- [bad_event_types] event types outside the contract: 1 of 10")
    assert [line.split() for line in lines[4:7]] == [
        ["not", "run", "search_train"], ["not", "run", "sku_to_content"],
        ["passed", "volume", "raw.browsing_train"]]
    assert report_summary(tmp_path / "none", None, []).startswith("No validation results under")


def test_a_range_is_kept_in_its_own_folder_and_summarised_as_a_range(
        specs, params, window, tmp_path) -> None:
    whole = ValidationWindow(window.start - timedelta(days=30), window.end, window.now)
    assert whole.span_label == "2026-10-21T1100Z--2026-11-20T1200Z"
    write_report(Result(PASSED), specs["volume"].render(params(win=whole)), window, tmp_path,
                 data_docs=False)  # the hourly run of the range's last hour
    report = write_report(Result(FAILED), specs["browsing_train"].render(params(win=whole)),
                          whole, tmp_path, data_docs=False, label=whole.span_label)
    assert report.result_json == tmp_path / "results" / whole.span_label / "browsing_train.json"

    label, documents = read_reports(tmp_path, whole.span_label)
    assert label == whole.span_label and [d["suite"] for d in documents] == ["browsing_train"]
    assert documents[0]["interval"]["start"] == whole.start.isoformat()
    lines = report_summary(tmp_path, label, documents).splitlines()
    assert lines[0] == ("validation of the range 2026-10-21T1100Z .. 2026-11-20T1200Z: "
                        f"{tmp_path / 'results' / whole.span_label}")
    assert read_reports(tmp_path)[0] == window.label  # the latest interval is still the hour's
