"""skiff.ops.progress: the follower's reading and wording of the progress records."""

from __future__ import annotations

import io
from pathlib import Path

from skiff.ops.progress import RunProgress, _read_new


def test_a_half_written_line_waits_for_its_end() -> None:
    stream = io.StringIO('{"task": "a", "state": "success"}\n{"task": "b", "sta')
    records, rest = _read_new(stream, "")
    assert records == [{"task": "a", "state": "success"}] and rest == '{"task": "b", "sta'
    stream = io.StringIO('te": "failed"}\nnot json\n')
    records, rest = _read_new(stream, rest)
    assert records == [{"task": "b", "state": "failed"}] and rest == ""


def test_a_retry_shows_one_line_of_its_error_a_failure_the_whole_message() -> None:
    progress = RunProgress()
    retry = progress.add({"task": "t", "state": "up_for_retry", "seconds": 1.25,
                          "error": "OSError: first\nsecond"})
    failed = progress.add({"task": "t", "state": "failed", "seconds": 2.0,
                           "error": "OSError: first\nsecond"})
    assert retry.splitlines() == ["  ↻ up_for_retry     1.2 s  t", "      OSError: first"]
    assert failed.splitlines()[1:] == ["      OSError: first", "      second"]


def test_the_summary_counts_every_task_and_names_those_never_run() -> None:
    progress = RunProgress()
    progress.add({"task": "a", "state": "success", "seconds": 1.0})
    progress.add({"task": "b", "state": "failed", "seconds": 1.0, "error": "boom"})
    assert progress.add({"run": "d", "state": "failed", "tasks": {
        "a": "success", "b": "failed", "c": "upstream_failed", "e": "upstream_failed"}}) is None
    text = progress.summary("d", 12.4, Path("/tmp/run.log"))
    assert text.splitlines() == [
        "==> d: failed in 12 s (2 upstream_failed, 1 success, 1 failed)",
        "    not run: c, e", "    full log: /tmp/run.log"]


def test_a_run_that_never_reported_its_end_says_so() -> None:
    progress = RunProgress()
    progress.add({"task": "a", "state": "success", "seconds": 1.0})
    assert "unknown (the run did not report its end)" in progress.summary("d", 1, Path("x"))
