"""The monitor snapshot (marts + registry -> JSON) and the Skiff page rendered from it.

The marts are real DuckDB tables with the monitoring marts' columns (``tests/monitor_marts.py``);
the registry a local folder with two promotions and a rejected challenger.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor_marts import MonitorMarts, registry_with_history
from skiff.config import MonitorConfig
from skiff.data import DuckDBWarehouse
from skiff.monitor import breaches, build_snapshot, read_snapshot, render_page, write_snapshot

NOW = datetime(2026, 11, 27, 12, 5, tzinfo=UTC)
CONFIG = MonitorConfig(snapshot_dir=Path("/unused"), window_hours=3, history_days=2)


@pytest.fixture
def marts(tmp_path: Path) -> MonitorMarts:
    marts = MonitorMarts(tmp_path / "warehouse.duckdb")
    marts.calm(NOW.replace(minute=0) - timedelta(hours=3), hours=20)
    return marts


def snapshot(marts: MonitorMarts, tmp_path: Path) -> dict:
    registry = registry_with_history(tmp_path / "registry")
    return build_snapshot(DuckDBWarehouse(marts.path).records, registry, CONFIG,
                          schema="marts", now=NOW)


def test_snapshot_holds_the_registry_and_the_hours_of_the_history(marts, tmp_path) -> None:
    doc = snapshot(marts, tmp_path)
    rec = doc["models"]["rec"]
    assert rec["champion"]["model_version"] == "RecFlow/2"
    assert rec["champion"]["shown_metrics"] == {"mrr@20": 0.25, "hit_rate@20": 0.4}
    assert [h["model_version"] for h in rec["history"]] == ["RecFlow/2", "RecFlow/1"]
    assert [(d["pathspec"], d["promote"]) for d in rec["decisions"]] == [
        ("RecFlow/3", False), ("RecFlow/2", True), ("RecFlow/1", True)]
    assert "not above margin" in rec["decisions"][0]["reason"]
    # 20 calm hours ending 3 h before now, 2 days kept: all 20, oldest first
    assert len(rec["serving"]) == 20 and rec["serving"][-1]["hour"] == "2026-11-27T08:00:00+00:00"
    assert rec["serving"][0]["requests"] == 200 and rec["serving"][0]["versions"] == ["RecFlow/2"]
    assert {q["metric"] for q in rec["quality"]} == {"hit_rate_at_20"}
    assert rec["quality"][0]["offline_value"] == 0.4  # the champion's hit_rate@20
    assert {d["feature"] for d in rec["drift"]} == {"session_length", "event_type_mix",
                                                     "sku_popularity"}
    assert doc["models"]["intent"]["quality"][0]["metric"] == "calibration_error"
    assert doc["errors"] == [] and rec["breaches"] == []
    json.dumps(doc)  # JSON-ready


def test_breaches_of_the_window_only_and_over_enough_requests(marts, tmp_path) -> None:
    last = NOW.replace(minute=0) - timedelta(hours=1)
    marts.hour(last, psi=0.45, drift_feature="session_length", error_rate=0.2, p99_ms=900,
               hit_rate=0.1)
    marts.hour(last - timedelta(hours=1), model="intent", version="IntentFlow/1",
               calibration_error=0.4)
    marts.hour(last, model="intent", version="IntentFlow/1", requests=5, psi=0.9)  # too few
    doc = snapshot(marts, tmp_path)
    rec, intent = doc["models"]["rec"], doc["models"]["intent"]
    assert [b.split(" ", 1)[1].split(":")[0] for b in rec["breaches"]] == [
        "errors", "latency", "quality", "drift"]
    assert "drift: PSI of session_length 0.45 > 0.2" in rec["breaches"][3]
    assert "online hit_rate_at_20 0.100 < 0.50 x offline 0.400" in rec["breaches"][2]
    assert intent["breaches"] == ["2026-11-27T10:00:00+00:00 quality: calibration error 0.400 "
                                  "> 0.15"]
    # the same drift 4 h ago is out of the 3 h window
    part = {"drift": [{"hour": (NOW - timedelta(hours=4)).isoformat(), "feature": "x",
                       "psi": 0.9, "served_sessions": 500}]}
    assert breaches(part, CONFIG, NOW) == []


def test_missing_marts_are_noted_and_the_registry_still_shown(tmp_path) -> None:
    DuckDBWarehouse(tmp_path / "empty.duckdb").records("select 1")
    doc = build_snapshot(DuckDBWarehouse(tmp_path / "empty.duckdb").records,
                         registry_with_history(tmp_path / "registry"), CONFIG, schema="marts",
                         now=NOW)
    assert len(doc["errors"]) == 3 and "marts.mon_serving_hourly" in doc["errors"][0]
    assert doc["models"]["rec"]["champion"]["pathspec"] == "RecFlow/2"
    assert "marts.mon_drift_hourly" in render_page(doc)


def test_write_and_read_the_snapshot(marts, tmp_path) -> None:
    folder = tmp_path / "monitor"
    assert read_snapshot(folder) is None
    doc = snapshot(marts, tmp_path)
    write_snapshot(doc, folder)
    assert read_snapshot(folder) == json.loads(json.dumps(doc))
    assert [p.name for p in folder.iterdir()] == ["snapshot.json"]  # no temporary left
    (folder / "snapshot.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a Skiff monitor snapshot"):
        read_snapshot(folder)


def test_page_shows_models_history_decisions_and_charts(marts, tmp_path) -> None:
    marts.hour(NOW.replace(minute=0) - timedelta(hours=1), psi=0.5, drift_feature="sku_popularity")
    doc = snapshot(marts, tmp_path)
    doc["models"]["rec"]["decisions"][0]["reason"] = "<script>alert(1)</script>"
    page = render_page(doc)
    body = page.split("<body>", 1)[1]
    assert "<script>" not in page and "&lt;script&gt;" in page  # escaped
    assert "src=" not in page and "href=" not in page  # nothing fetched
    for text in ("Model: rec", "Model: intent", "RecFlow/2", "RecFlow/1", "keep champion",
                 "2026-11-27 08:00 UTC", "drift: PSI of sku_popularity 0.50 &gt; 0.2",
                 "Requests per hour", "Latency", "Online vs offline: hit_rate_at_20",
                 "Online vs offline: calibration_error", "Drift (PSI)", "threshold 0.20"):
        assert text in body, text
    svgs = [s.split("</svg>")[0] for s in page.split("<svg")[1:]]
    assert len(svgs) == 2 * 5
    for svg in svgs:  # each chart is well-formed XML with points to draw
        root = ET.fromstring("<svg" + svg + "</svg>")
        assert root.findall(".//{*}polyline") or root.findall(".//{*}rect") \
            or root.findall(".//{*}circle"), svg[:200]


def test_page_before_the_first_snapshot() -> None:
    assert "No monitor snapshot yet" in render_page(None)
