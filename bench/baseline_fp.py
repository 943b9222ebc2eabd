"""False positives and reach of the ``event_mix`` baseline bounds on the embedded shoppers.

The shoppers of ``skiff emit`` (:class:`skiff.data.emitter.Emitter`, at ``make run``'s traffic:
``SKIFF_EMIT_SESSIONS_PER_HOUR``, its daily curve, client retries and late deliveries) deliver
``--warmup`` hours and then ``--hours`` more, per seed, into a DuckDB raw log (rows as the
collector lands them, with ``arrival_ts_ms``; the catalogue once). Each of the ``--hours``
clean hours is then checked as the ``event_mix`` suite checks it: its shares and the
baseline of the hours before it from :func:`skiff.validate.baseline.interval_bounds` (the
suite's own SQL on DuckDB, the configured ``SKIFF_BASELINE_*``), without GX.

Per metric it reports the failures (must be 0), the largest share of the allowed width a
clean hour used (``|share - median| / (bound - median)``), the ``k`` (MADs) that hour would
have needed with ``SKIFF_BASELINE_MIN_DELTA`` (``(|share - median| - delta) / max(sigma,
noise)``), the widest bound above the median (a sudden rise at least that large is caught in
every hour) and the share of hours that catch a sudden +3 and +8 points (a defect-like share
rising from its median, a mix share moving either way). JSON goes to
``bench/results/baseline_fp.json``.

    python -m bench.baseline_fp [--hours 72] [--seeds 42 7] [--warmup 24]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "baseline_fp.json"
#: The first simulated hour (a Monday 00:00 UTC); the shoppers are the same on any day.
FIRST = datetime(2026, 11, 16, tzinfo=UTC)
_HOUR_MS = 3_600_000
SUDDEN = (0.03, 0.08)


def _log(emitter: Any, first_hour: int, hours: int) -> Any:
    """A DuckDB raw log of the emitter's deliveries arriving in ``hours`` hours."""
    import duckdb
    import pyarrow as pa

    from skiff.data.contract import BROWSING, CATALOGUE

    con = duckdb.connect()
    con.execute("create schema raw")
    delivered = pa.concat_tables(emitter.delivered(h).browsing
                                 for h in range(first_hour, first_hour + hours))
    con.register("delivered", delivered)
    con.register("catalogue", emitter.catalogue_table)
    con.execute(f"create table raw.{BROWSING.name} as select * from delivered")
    con.execute(f"create table raw.{CATALOGUE.name} as select * from catalogue")
    return con


def measure(seeds: list[int], warmup: int, hours: int) -> dict[str, Any]:
    """Every clean hour of every seed checked against its baseline (see the module docstring)."""
    from skiff.config import EmitConfig, ValidationConfig
    from skiff.data.emitter import Emitter
    from skiff.validate.baseline import METRICS, interval_bounds
    from skiff.validate.parameters import ValidationWindow
    from skiff.times import from_epoch_ms

    config, emit = ValidationConfig.from_env(), EmitConfig.from_env()
    first_hour = int(FIRST.timestamp() * 1000) // _HOUR_MS
    per_metric: dict[str, dict[str, Any]] = {
        m.name: {"direction": m.direction, "failures": 0, "max_width_used": 0.0,
                 "k_needed": 0.0, "max_width": 0.0, "caught_3pt": 0, "caught_8pt": 0,
                 "checked": 0, "medians": []} for m in METRICS}
    rows_per_hour: list[int] = []
    for seed in seeds:
        emitter = Emitter(seed=seed, sessions_per_hour=emit.sessions_per_hour,
                          products=emit.products, duplicate_share=emit.duplicate_share,
                          late_share=emit.late_share,
                          max_lateness_minutes=emit.max_lateness_minutes)
        con = _log(emitter, first_hour, warmup + hours)

        def records(sql: str, con: Any = con) -> list[tuple[Any, ...]]:
            return con.execute(sql).fetchall()

        for h in range(first_hour + warmup, first_hour + warmup + hours):
            window = ValidationWindow(from_epoch_ms(h * _HOUR_MS),
                                      from_epoch_ms((h + 1) * _HOUR_MS))
            interval, bounds = interval_bounds(records, "raw", window, config)
            rows_per_hour.append(int(interval["event_rows"]))
            for metric in METRICS:
                bound, share = bounds[metric.name], interval[metric.name]
                if bound.upper is None or share is None:
                    continue
                out = per_metric[metric.name]
                out["checked"] += 1
                out["medians"].append(bound.median)
                width = bound.upper - bound.median
                spread = (width - config.baseline_min_delta) / config.baseline_mads \
                    if config.baseline_mads else 0.0  # = max(sigma, noise)
                deviation = share - bound.median
                if metric.direction == "upper":
                    deviation = max(deviation, 0.0)
                fails = share > bound.upper or (bound.lower is not None and share < bound.lower)
                out["failures"] += int(fails)
                out["max_width_used"] = max(out["max_width_used"], abs(deviation) / width)
                if spread > 0:
                    out["k_needed"] = max(
                        out["k_needed"],
                        (abs(deviation) - config.baseline_min_delta) / spread)
                out["max_width"] = max(out["max_width"], width)
                for jump in SUDDEN:
                    out[f"caught_{round(jump * 100)}pt"] += int(bound.median + jump > bound.upper)
    for out in per_metric.values():
        medians = out.pop("medians")
        out["median_share"] = round(sorted(medians)[len(medians) // 2], 5) if medians else None
        for key in ("max_width_used", "k_needed", "max_width"):
            out[key] = round(out[key], 4)
    return {
        "hours_checked_per_seed": hours, "warmup_hours": warmup, "seeds": seeds,
        "sessions_per_hour_at_peak": emit.sessions_per_hour,
        "rows_per_hour": {"min": min(rows_per_hour), "max": max(rows_per_hour)},
        "settings": {"SKIFF_BASELINE_HOURS": config.baseline_hours,
                     "SKIFF_BASELINE_MIN_HOURS": config.baseline_min_hours,
                     "SKIFF_BASELINE_MADS": config.baseline_mads,
                     "SKIFF_BASELINE_MIN_DELTA": config.baseline_min_delta},
        "failures": sum(o["failures"] for o in per_metric.values()),
        "metrics": per_metric,
    }


def table(result: dict[str, Any]) -> str:
    """The result as a text table."""
    head = (f"{'metric':34} {'dir':5} {'median':>8} {'checked':>7} {'fail':>4} "
            f"{'used':>6} {'k_need':>6} {'width':>7} {'+3pt':>6} {'+8pt':>6}")
    lines = [head, "-" * len(head)]
    for name, m in result["metrics"].items():
        n = m["checked"] or 1
        lines.append(
            f"{name:34} {m['direction']:5} {m['median_share'] or 0:8.4f} {m['checked']:7d} "
            f"{m['failures']:4d} {m['max_width_used']:6.2f} {m['k_needed']:6.2f} "
            f"{m['max_width']:7.4f} {m['caught_3pt'] / n:6.0%} {m['caught_8pt'] / n:6.0%}")
    lines.append(f"failures: {result['failures']} over {result['hours_checked_per_seed']} clean "
                 f"hours x {len(result['seeds'])} seeds ({result['rows_per_hour']['min']}-"
                 f"{result['rows_per_hour']['max']} rows/hour); settings {result['settings']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_fp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=72, help="clean hours checked per seed")
    parser.add_argument("--warmup", type=int, default=24, help="hours of history before them")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7], help="shoppers' seeds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON result")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(args.seeds, args.warmup, args.hours)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.out} ({result['seconds']} s)")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
