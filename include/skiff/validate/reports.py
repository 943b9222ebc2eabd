"""Validation results kept: JSON per interval and Data Docs, read back and summarised.

:func:`write_report` keeps a result under ``$SKIFF_HOME/gx`` (the layout is in its
docstring); :func:`read_reports` and :func:`report_summary` are what ``skiff report`` shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from skiff.times import parse_time
from skiff.validate.messages import failures
from skiff.validate.parameters import ValidationWindow
from skiff.validate.suites import SUITES

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )

    from skiff.validate.suites import RenderedSuite

__all__ = ["DATA_DOCS_LIMIT", "Report", "write_report", "read_reports", "report_summary"]

log = logging.getLogger(__name__)

#: Validation results listed on the Data Docs index page (the newest ones).
DATA_DOCS_LIMIT = 500


@dataclass(frozen=True)
class Report:
    """Where a validation result was kept.

    :param result_json: the result as JSON (``<reports_dir>/results/<interval>/<suite>.json``).
    :param data_docs_page: its Data Docs page (HTML), if built.
    :param data_docs_index: the Data Docs index of every kept result, if built.
    """

    result_json: Path
    data_docs_page: Path | None = None
    data_docs_index: Path | None = None

    def lines(self) -> list[str]:
        out = [f"Report: {self.result_json}"]
        if self.data_docs_page:
            out.append(f"Data Docs: {self.data_docs_page}")
        if self.data_docs_index:
            out.append(f"Data Docs index: {self.data_docs_index}")
        return out


def write_report(
    result: ExpectationSuiteValidationResult,
    suite: RenderedSuite,
    window: ValidationWindow,
    reports_dir: Path,
    *,
    data_docs: bool = True,
    label: str | None = None,
) -> Report:
    """Keep a validation result: JSON per interval, and a page in the Data Docs site.

    Layout under ``reports_dir`` (``$SKIFF_HOME/gx``)::

        results/<interval>/<suite>.json     the result, the SQL of its rows, the defects
        data_docs/index.html                the newest results (Great Expectations' Data Docs)
        data_docs/validations/<suite>/<interval>/<run time>/<batch>.html
        store/                              GX's copy of the results the index is built from

    A re-run of an interval replaces its JSON; Data Docs keep every run.

    :param result: the GX result object.
    :param suite: the suite that ran.
    :param window: the data interval.
    :param reports_dir: the report folder (``ValidationConfig.reports_dir``).
    :param data_docs: also render the Data Docs page (about 0.2 s).
    :param label: the folder of the result under ``results/``; default the interval's
        (``window.label``); a range's is ``window.span_label``.
    """
    reports_dir = Path(reports_dir)
    label = label or window.label
    payload = result.to_json_dict()
    path = reports_dir / "results" / label / f"{suite.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "suite": suite.name,
        "table": suite.table,
        "interval": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "validated_at": window.now.isoformat(),
        "success": bool(result.success),
        "defects": sorted({f.defect for f in failures(payload)}),
        "skipped": list(suite.skipped),
        "batch_sql": suite.sql,
        "result": payload,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str))
    tmp.replace(path)
    if not data_docs:
        return Report(path)
    page = _build_data_docs(result, suite, window, reports_dir, label)
    return Report(path, page, reports_dir / "data_docs" / "index.html")


def _build_data_docs(result: ExpectationSuiteValidationResult, suite: RenderedSuite,
                     window: ValidationWindow, reports_dir: Path, label: str) -> Path | None:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
    )
    config.stores["skiff_results"] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(reports_dir / "store")},
    }
    config.validation_results_store_name = "skiff_results"
    config.data_docs_sites = {"skiff": {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(reports_dir / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                               "validation_results_limit": DATA_DOCS_LIMIT},
    }}
    context = gx.get_context(mode="ephemeral", project_config=config)
    run_time = (result.meta.get("run_id") or {})
    run_time = getattr(run_time, "run_time", None) or (
        run_time.get("run_time") if isinstance(run_time, Mapping) else None) or window.now
    batch = next((r.expectation_config.kwargs.get("batch_id") for r in result.results
                  if r.expectation_config is not None), None) or suite.name
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        run_id=RunIdentifier(run_name=label, run_time=run_time),
        batch_identifier=batch,
    )
    context.validation_results_store.set(key, result)
    try:
        context.build_data_docs(site_names=["skiff"], resource_identifiers=[key])
        urls = context.get_docs_sites_urls(resource_identifier=key, site_name="skiff")
    except Exception:  # Data Docs are a convenience: a rendering bug must not hide the result
        log.exception("Could not build the Data Docs page of suite %s.", suite.name)
        return None
    url = urls[0]["site_url"] if urls else None
    return Path(url.removeprefix("file://")) if url else None


def read_reports(reports_dir: Path, interval: str | None = None) -> tuple[str | None, list[dict]]:
    """The kept results of one interval (default: the latest one validated).

    :param reports_dir: ``ValidationConfig.reports_dir``.
    :param interval: an interval label (``2026-11-20T1100Z``), a range's
        (``2026-10-23T0000Z--2026-11-01T0000Z``), or an interval's start time (ISO 8601).
    :return: the interval's label and its result documents (see :func:`write_report`),
        in suite order; ``(None, [])`` when nothing was validated yet.
    """
    results = Path(reports_dir) / "results"
    if interval is not None and not (results / interval).is_dir():
        interval = ValidationWindow.of(interval, parse_time(interval) + timedelta(hours=1)).label
    labels = sorted(p.name for p in results.glob("*") if p.is_dir()) if results.is_dir() else []
    label = interval or (labels[-1] if labels else None)
    if label is None or not (results / label).is_dir():
        return label, []
    order = {name: i for i, name in enumerate(SUITES)}
    docs = [json.loads(p.read_text()) for p in (results / label).glob("*.json")]
    return label, sorted(docs, key=lambda d: (order.get(d["suite"], len(order)), d["suite"]))


def report_summary(reports_dir: Path, label: str | None, documents: list[dict]) -> str:
    """A few lines per suite for the terminal: passed, failed (with each failure), not run."""
    if label is None:
        return f"No validation results under {Path(reports_dir) / 'results'} yet."
    by_suite = {d["suite"]: d for d in documents}
    folder = Path(reports_dir) / "results" / label
    start, _, end = label.partition("--")
    what = f"the range {start} .. {end}" if end else f"the data interval starting {label}"
    lines = [f"validation of {what}: {folder}"]
    for name in [*SUITES, *sorted(set(by_suite) - set(SUITES))]:
        doc = by_suite.get(name)
        if doc is None:
            lines.append(f"  {'not run':<8} {name}")
            continue
        status = "passed" if doc["success"] else "FAILED"
        lines.append(f"  {status:<8} {name:<20} {doc['table']}")
        lines += [f"             - {f}" for f in failures(doc["result"])]
    index = Path(reports_dir) / "data_docs" / "index.html"
    if index.exists():
        lines.append(f"Data Docs: {index}")
    return "\n".join(lines)
