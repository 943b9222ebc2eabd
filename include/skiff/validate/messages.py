"""A validation result in words: its failed expectations explained, the task's messages.

:func:`failures` turns a Great Expectations result into :class:`Failure` items (defect, what
it means, counts and examples of the bad rows); :func:`failure_message` is what a failed
task raises, :func:`success_message` what a passed one logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skiff.validate.parameters import ValidationWindow
    from skiff.validate.reports import Report
    from skiff.validate.suites import RenderedSuite

__all__ = ["Failure", "failures", "failure_message", "success_message"]

_EXAMPLES = 5  # unexpected values shown per failed expectation


@dataclass(frozen=True)
class Failure:
    """A failed expectation, explained.

    :param defect: the defect it catches.
    :param problem: what the failure means.
    :param expectation: the expectation, e.g. ``expect_column_values_to_not_be_null(session_id)``.
    :param detail: counts and examples of the bad rows, or the observed value.
    """

    defect: str
    problem: str
    expectation: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.defect}] {self.problem}: {self.detail}  ({self.expectation})"


def failures(result: Mapping[str, Any]) -> list[Failure]:
    """The failed expectations of a GX suite validation result, in suite order.

    :param result: ``ExpectationSuiteValidationResult.to_json_dict()``.
    """
    out = []
    for item in result.get("results", []):
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        meta = config.get("meta") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        out.append(Failure(
            defect=meta.get("defect", "unknown"),
            problem=meta.get("problem", config.get("type", "expectation failed")),
            expectation=_describe_expectation(config.get("type", "?"), kwargs),
            detail=_describe_detail(item, kwargs),
        ))
    return out


def _describe_expectation(kind: str, kwargs: Mapping[str, Any]) -> str:
    target = kwargs.get("column") or kwargs.get("column_list")
    if target is None and "column_A" in kwargs:
        target = f"{kwargs['column_A']}, {kwargs['column_B']}"
    if isinstance(target, list):
        target = ", ".join(target)
    return f"{kind}({target})" if target else kind


def _describe_detail(item: Mapping[str, Any], kwargs: Mapping[str, Any]) -> str:
    info = item.get("exception_info") or {}
    if "raised_exception" not in info:  # GX keys an error computing a metric by the metric
        info = next((v for v in info.values() if isinstance(v, Mapping)), {})
    if info.get("raised_exception"):
        return f"could not be evaluated: {info.get('exception_message')}"
    res = item.get("result") or {}
    if res.get("unexpected_count") is not None:
        bad, total = int(res["unexpected_count"]), res.get("element_count")
        share = f" ({res['unexpected_percent']:.1f}%)" if res.get("unexpected_percent") else ""
        missing = int(res.get("missing_count") or 0)
        if total is None:
            text = f"{bad:,} rows{share}"
        elif missing:  # nulls are not checked by most expectations
            text = f"{bad:,} of {int(total) - missing:,} rows with a value{share}"
        else:
            text = f"{bad:,} of {int(total):,} rows{share}"
        examples = _examples(res)
        return f"{text}, e.g. {examples}" if examples else text
    observed = res.get("observed_value")
    if "value_set" in kwargs and isinstance(observed, list):
        expected, seen = set(kwargs["value_set"]), set(observed)
        parts = []
        if expected - seen:
            parts.append(f"missing {sorted(expected - seen)}")
        if seen - expected:
            parts.append(f"unexpected {sorted(seen - expected)}")
        return "; ".join(parts) or f"observed {observed}"
    bounds = [f"{k}={kwargs[k]}" for k in ("min_value", "max_value") if k in kwargs]
    if isinstance(observed, float):
        observed = round(observed, 4)
    return f"observed {observed}" + (f", expected {', '.join(bounds)}" if bounds else "")


def _examples(res: Mapping[str, Any]) -> str:
    counted = res.get("partial_unexpected_counts") or []
    if counted:
        shown = [f"{_short(c['value'])} (x{c['count']})" if c.get("count", 1) > 1
                 else _short(c["value"]) for c in counted[:_EXAMPLES]]
    else:
        values = []
        for value in res.get("partial_unexpected_list") or []:
            if value not in values:
                values.append(value)
        shown = [_short(v) for v in values[:_EXAMPLES]]
    return ", ".join(shown)


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(_short(v) for v in value.values()) + ")"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, str) and "|" in value:  # a composite key: shorten each part
        return repr("|".join(_clip(part) for part in value.split("|")))
    return repr(_clip(value)) if isinstance(value, str) else repr(value)


def _clip(text: str, width: int = 16) -> str:
    return text[: width - 4] + "…" if len(text) > width else text


def _rows_checked(result: Mapping[str, Any]) -> int | None:
    counts = [(r.get("result") or {}).get("element_count") for r in result.get("results", [])]
    counts = [int(c) for c in counts if c is not None]
    return max(counts) if counts else None


def failure_message(suite: RenderedSuite, window: ValidationWindow,
                    result: Mapping[str, Any], report: Report | None = None) -> str:
    """The message a failed validation raises: table, interval, each failed expectation with
    its defect, counts and examples of bad rows, and where the report is.

    :param suite: the suite that ran.
    :param window: the data interval.
    :param result: ``ExpectationSuiteValidationResult.to_json_dict()``.
    :param report: where the result was written, if it was.
    """
    failed = failures(result)
    stats = result.get("statistics") or {}
    rows = _rows_checked(result)
    lines = [
        f"Data validation failed: {suite.table}, data interval {window} "
        f"(suite {suite.name}{f', {rows:,} rows checked' if rows is not None else ''}): "
        f"{len(failed)} of {stats.get('evaluated_expectations', len(suite.expectations))} "
        f"expectations failed.",
        *(f"  - {f}" for f in failed),
        f"Defects: {', '.join(sorted({f.defect for f in failed}))}.",
    ]
    if report is not None:
        lines += report.lines()
    lines.append("Nothing downstream runs for this interval; the raw log is unchanged, so the "
                 "interval can be re-run once the data is fixed.")
    return "\n".join(lines)


def success_message(suite: RenderedSuite, window: ValidationWindow,
                    result: Mapping[str, Any]) -> str:
    """One line for a passed validation."""
    rows = _rows_checked(result)
    stats = result.get("statistics") or {}
    skipped = f"; skipped without a reference: {', '.join(suite.skipped)}" if suite.skipped else ""
    return (f"{suite.table}, data interval {window}: all {stats.get('evaluated_expectations')} "
            f"expectations of suite {suite.name} passed"
            f"{f' on {rows:,} rows' if rows is not None else ''}{skipped}.")
