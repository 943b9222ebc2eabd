"""Three scheduled intervals in a row, green: a real scheduler on live shoppers (``make soak``'s short form).

``airflow standalone`` on 127.0.0.1 with the job schedule on and ``SKIFF_SCHEDULE`` every few
minutes; the collector and the live emitter feed the landing zone; nothing is backfilled or
triggered by hand. Slow (about half an hour): ``make test-all`` or ``pytest -m slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import soak

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.integration]


@pytest.mark.timeout(3600)
def test_three_scheduled_intervals_green_on_live_shoppers(tmp_path: Path) -> None:
    report = soak(3, 6, faults=False, quick=True, home=tmp_path / "soak", progress=False)
    assert report["intervals_run"] >= 3
    runs = report["per_interval"][:3]
    assert [r["state"] for r in runs] == ["success"] * 3, runs
    starts = [r["interval"][0] for r in runs]
    assert [r["interval"][1] for r in runs[:-1]] == starts[1:]  # consecutive, none skipped
    assert report["alerts"] == {"posted": 0, "refused_while_slack_down": 0}
    events = report["events"]
    assert events["posted_distinct"] > 0 and events["missing"] == 0, events
    assert events["raw_not_posted"] == 0, events
