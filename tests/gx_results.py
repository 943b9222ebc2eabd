"""GX results side by side: the hourly path's (rows read into pandas, GX's pandas engine) and
what else produced one (the pushdown), reduced to what must be equal."""

from __future__ import annotations

import math
from typing import Any

from skiff.validate.suites import RenderedSuite


def gx_pandas_result(con: Any, suite: RenderedSuite) -> dict:
    """``suite`` on its rows read into a DataFrame, validated by GX's pandas engine, as the
    hook and the provider's operator validate an interval: the result as JSON."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("skiff_duckdb").add_dataframe_asset(suite.name)
             .add_batch_definition_whole_dataframe(suite.name))
    result = batch.get_batch(batch_parameters={"dataframe": con.execute(suite.sql).df()}) \
        .validate(context.suites.add(suite.to_gx()), result_format="SUMMARY")
    return result.to_json_dict()


def comparable(result: dict) -> list[dict]:
    """Per expectation, in the result's order: type, kwargs, success, result, error message."""
    out = []
    for item in result["results"]:
        config = item["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        info = item["exception_info"] or {}
        if info and "raised_exception" not in info:  # GX keys a metric's error by the metric
            info = next(iter(info.values()))
        out.append({"type": config["type"], "kwargs": kwargs, "meta": config.get("meta"),
                    "success": item["success"], "result": item["result"],
                    "error": info.get("exception_message") if info.get("raised_exception")
                    else None})
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN and floats to 12 digits (a mean summed in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def assert_same_results(got: dict, expected: dict) -> None:
    """Every expectation's outcome equal, in the same order, and the suite's verdict."""
    mine, theirs = comparable(got), comparable(expected)
    assert [(r["type"], r["kwargs"]) for r in mine] == [(r["type"], r["kwargs"]) for r in theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert same(a, b), f"{a}\n  differs from GX's\n{b}"
    assert got["success"] == expected["success"]
    assert got["statistics"] == expected["statistics"]
