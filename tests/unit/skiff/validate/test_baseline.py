"""The event_mix suite: shares from the contract, their SQL on DuckDB, bounds from the baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from skiff.config import SkiffConfig, ValidationConfig
from skiff.data import DuckDBWarehouse
from skiff.data.contract import BROWSING, EVENT_TYPES, PRODUCT_ACTIONS
from skiff.exceptions import SkiffConfigError
from skiff.validate.baseline import (
    METRICS,
    MIX_SUITE,
    ShareBound,
    baseline_parameters,
    share_bounds,
    shares_sql,
    uses_baseline,
)
from skiff.validate.parameters import fetch_parameters
from skiff.validate.suites import SuiteSpec

HOUR = 3_600_000
CFG = ValidationConfig()
BY_NAME = {m.name: m for m in METRICS}


def _hours(metric: str, shares: list[float], rows: int = 2_000) -> list[dict]:
    return [{"event_rows": rows, metric: s} for s in shares]


def _bound(metric: str, shares: list[float], n: int = 2_000,
           config: ValidationConfig = CFG) -> ShareBound:
    return share_bounds(_hours(metric, shares), {f"{metric}_n": n}, config)[metric]


def _passes(bound: ShareBound, share: float) -> bool:
    return (bound.lower is None or share >= bound.lower) and share <= bound.upper


def test_metrics_follow_the_contract() -> None:
    names = set(BY_NAME)
    assert {f"event_type_{v}_share" for v in EVENT_TYPES} <= names
    assert {f"product_action_{v}_share" for v in PRODUCT_ACTIONS} <= names
    # a field the contract lets be empty on any row (a missing SKU on a product event fails
    # browsing_train row by row)
    optional = {c.name for c in BROWSING.fields if not c.required and not c.required_if}
    assert {n.removesuffix("_null_share") for n in names if n.endswith("_null_share")} == optional
    assert {"unknown_sku_share", "duplicate_share"} <= names
    for metric in METRICS:
        mix = metric.defect == "mix_shift"
        assert metric.direction == ("both" if mix else "upper"), metric.name
        assert f"{{{metric.name}_median:.2%}}" in metric.problem, metric.name
    assert BY_NAME["product_action_add_share"].denominator == "event_type in ('event_product')"
    assert BY_NAME["hashed_url_null_share"].denominator == ""


def test_a_sudden_defect_under_the_absolute_cap_fails() -> None:
    """A share stable around 0.2 % for a day fails at 3 % and 8 %, under the 10 % cap."""
    history = [0.002, 0.0015, 0.0025, 0.002, 0.001, 0.003] * 4
    bound = _bound("unknown_sku_share", history)
    assert bound.median == pytest.approx(0.002) and bound.lower is None
    assert _passes(bound, 0.004)
    assert not _passes(bound, 0.03) and not _passes(bound, 0.08)
    assert 0.08 < CFG.max_unknown_sku_share


def test_a_catalogue_that_always_misses_skus_passes() -> None:
    """12 % of the SKUs unknown every hour is this shop's normal, above the 10 % cap."""
    history = [0.12, 0.115, 0.125, 0.118, 0.122, 0.13, 0.11, 0.12] * 3
    bound = _bound("unknown_sku_share", history)
    assert _passes(bound, 0.12) and _passes(bound, 0.135)
    assert 0.12 > CFG.max_unknown_sku_share
    assert not _passes(bound, 0.20)  # and a sudden rise from there still fails


def test_the_mix_is_bounded_both_ways_defects_upwards_only() -> None:
    history = [0.50, 0.49, 0.51, 0.505, 0.495, 0.50] * 4
    bound = _bound("event_type_pageview_share", history)
    assert bound.lower is not None and bound.lower < 0.5 < bound.upper
    assert _passes(bound, 0.52) and _passes(bound, 0.47)
    assert not _passes(bound, 0.30) and not _passes(bound, 0.70)
    nulls = _bound("hashed_url_null_share", [0.0] * 24)
    assert nulls.lower is None and _passes(nulls, 0.0) and not _passes(nulls, 0.03)


def test_a_small_interval_gets_its_sampling_noise() -> None:
    """The same history, an interval of 50 product events: a few events more are chance."""
    history = [0.02] * 24
    big, small = (_bound("product_action_purchase_share", history, n=n) for n in (5_000, 50))
    assert big.upper < small.upper
    assert _passes(small, 4 / 50)  # 4 purchases out of 50 where 1 is usual: chance
    assert not _passes(big, 0.08)


def test_without_enough_history_there_is_no_bound(config: SkiffConfig) -> None:
    few = CFG.baseline_min_hours - 1
    assert _bound("duplicate_share", [0.001] * few) == ShareBound(hours=few)
    assert _bound("duplicate_share", []) == ShareBound()
    # hours without rows, or without the share's rows, are no history
    hours = _hours("duplicate_share", [0.001] * 24, rows=0)
    assert share_bounds(hours, {"duplicate_share_n": 100}, CFG)["duplicate_share"].upper is None
    # an interval without the share's rows has nothing to bound
    assert _bound("duplicate_share", [0.001] * 24, n=0).upper is None
    spec = SuiteSpec.load(MIX_SUITE, config.validation.suites_dir)
    values = {**_params(config), **baseline_parameters({})}
    rendered = spec.render(values)
    assert rendered.expectations == () and len(rendered.skipped) == len(METRICS)


def _params(config: SkiffConfig) -> dict:
    from datetime import UTC, datetime

    from skiff.validate.parameters import ValidationWindow, suite_parameters

    return suite_parameters(config, ValidationWindow(datetime(2026, 11, 20, 11, tzinfo=UTC),
                                                     datetime(2026, 11, 20, 12, tzinfo=UTC)))


def test_bounds_render_into_the_suite(config: SkiffConfig) -> None:
    bounds = {"unknown_sku_share": _bound("unknown_sku_share", [0.002] * 24),
              "event_type_pageview_share": _bound("event_type_pageview_share", [0.5] * 24)}
    values = {**_params(config), **baseline_parameters(bounds)}
    spec = SuiteSpec.load(MIX_SUITE, config.validation.suites_dir)
    rendered = spec.render(values)
    kwargs = {e["kwargs"]["column"]: e for e in rendered.expectations}
    assert set(kwargs) == set(bounds)
    sku = kwargs["unknown_sku_share"]
    assert sku["kwargs"] == {"column": "unknown_sku_share",
                             "max_value": bounds["unknown_sku_share"].upper}
    assert sku["meta"]["defect"] == "unknown_skus"
    assert f"({0.002:.2%}; at most {bounds['unknown_sku_share'].upper:.2%}" in \
        sku["meta"]["problem"]
    assert set(kwargs["event_type_pageview_share"]["kwargs"]) == {
        "column", "min_value", "max_value"}
    assert uses_baseline(spec.parameters) and not uses_baseline({"volume_min_events"})


def test_settings_are_checked() -> None:
    with pytest.raises(SkiffConfigError, match="SKIFF_BASELINE_MIN_HOURS=30 must be at most"):
        dataclasses.replace(CFG, baseline_min_hours=30)


# --------------------------------------------------------------------------- the SQL, on DuckDB


def _log(path: Path, hours: dict[int, list[tuple]]) -> DuckDBWarehouse:
    """A raw log: ``(session, type, action, sku, url)`` rows arriving in each epoch hour; the
    catalogue holds ``k1`` and ``k2``."""
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_raw_tables()
    with warehouse.connect() as con:
        con.execute("insert into raw.sku_to_content (product_sku_hash) "
                    "values ('k1'), ('k2'), ('k2')")
        for hour, rows in hours.items():
            for i, (session, kind, action, sku, url) in enumerate(rows):
                ts = hour * HOUR + i * 1000 if session != "dup" else hour * HOUR
                con.execute(
                    "insert into raw.browsing_train (session_id_hash, event_type, product_action,"
                    " product_sku_hash, server_timestamp_epoch_ms, hashed_url, arrival_ts_ms) "
                    "values (?, ?, ?, ?, ?, ?, ?)",
                    [session, kind, action, sku, ts - 5_000, url, hour * HOUR + i * 1000])
    return warehouse


ROWS = [  # 8 rows: 4 product events (1 without SKU, 1 unknown SKU), 2 copies of one pageview
    ("s", "event_product", "detail", "k1", "u"), ("s", "event_product", "add", "k9", "u"),
    ("s", "event_product", "detail", None, "u"), ("s", "event_product", "detail", "k2", None),
    ("s", "pageview", None, None, "u"), ("s", "pageview", None, None, None),
    ("dup", "pageview", None, None, "u"), ("dup", "pageview", None, None, "u"),
]


def test_shares_of_an_interval_and_per_hour(tmp_path: Path) -> None:
    h = 500_000
    warehouse = _log(tmp_path / "w.duckdb", {h: ROWS, h + 1: ROWS[:2], h + 3: ROWS[4:]})
    names = ["event_rows"] + [c for m in METRICS for c in (m.name, f"{m.name}_n")]
    (row,) = warehouse.records(shares_sql("raw", h * HOUR, (h + 1) * HOUR))
    got = dict(zip(names, row, strict=True))
    assert got["event_rows"] == 8
    assert got["event_type_event_product_share"] == 0.5
    assert got["product_action_detail_share"] == 0.75 and got["product_action_detail_share_n"] == 4
    assert got["hashed_url_null_share"] == 0.25
    assert got["unknown_sku_share"] == pytest.approx(1 / 3)  # k9, of the 3 with a SKU
    assert got["unknown_sku_share_n"] == 3
    assert got["duplicate_share"] == 1 / 8
    hours = warehouse.records(shares_sql("raw", h * HOUR, (h + 5) * HOUR, by_hour=True))
    by_hour = {r[0]: dict(zip(names, r[1:], strict=True)) for r in hours}
    assert set(by_hour) == {h, h + 1, h + 3} and by_hour[h] == got
    assert by_hour[h + 3]["product_action_add_share"] is None  # no product events
    assert by_hour[h + 3]["product_action_add_share_n"] == 0


def test_fetch_parameters_compares_the_interval_with_the_hours_before(
        config: SkiffConfig, tmp_path: Path) -> None:
    from skiff.validate.parameters import ValidationWindow
    from skiff.times import from_epoch_ms

    h = 500_000
    clean = [r for r in ROWS if r[3] != "k9"]
    log = {h - i: clean for i in range(1, 8)} | {h - 30: ROWS}  # before the baseline: ignored
    warehouse = _log(tmp_path / "w.duckdb", log | {h: ROWS})
    window = ValidationWindow(from_epoch_ms(h * HOUR), from_epoch_ms((h + 1) * HOUR))
    spec = SuiteSpec.load(MIX_SUITE, config.validation.suites_dir)
    values = fetch_parameters(spec, config, window, warehouse)
    assert values["baseline_hours"] == 7
    assert values["unknown_sku_share_median"] == 0.0
    assert values["event_type_pageview_share_median"] == pytest.approx(4 / 7)
    # 3 product events with a SKU: one unknown of them may be chance, any share passes
    assert values["unknown_sku_share_max"] == 1.0
    assert values["duplicate_share_max"] < 1.0


def test_without_enough_history_the_interval_is_not_counted(
        config: SkiffConfig, tmp_path: Path) -> None:
    """Over a range starting at the log's start (the whole log) nothing bounds a share: the
    interval's own shares, a scan of the whole range, are not counted, and the parameters are
    those the full computation gives."""
    from skiff.times import from_epoch_ms
    from skiff.validate.baseline import baseline_parameters, fetch_baseline, interval_bounds
    from skiff.validate.parameters import ValidationWindow

    h = 500_000
    warehouse = _log(tmp_path / "w.duckdb", {h - 2: ROWS, h - 1: ROWS, h: ROWS})  # 2 hours
    window = ValidationWindow(from_epoch_ms(h * HOUR), from_epoch_ms((h + 1) * HOUR))
    queries: list[str] = []

    def records(sql: str) -> list:
        queries.append(sql)
        return warehouse.records(sql)

    values = fetch_baseline(records, "raw", window, config.validation)
    assert len(queries) == 1  # the history only
    assert values == baseline_parameters(
        interval_bounds(warehouse.records, "raw", window, config.validation)[1])
    assert values["baseline_hours"] == 2 and values["unknown_sku_share_max"] is None
