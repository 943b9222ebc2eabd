"""Validate one table's rows of the data interval with its Great Expectations suite.

:class:`MonitorValidateOperator` does the same for skiff_monitor, on the hours before its run.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException
from great_expectations_provider.common.errors import GXValidationFailed
from great_expectations_provider.operators.validate_batch import GXValidateBatchOperator

from hooks.gx_warehouse import GXWarehouseHook

if TYPE_CHECKING:
    from airflow.sdk import Context
    from great_expectations import ExpectationSuite
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext

    from skiff.config import SkiffConfig
    from skiff.validate import RenderedSuite, SuiteSpec, ValidationWindow
    from skiff.validate.reports import Report

    from hooks.model_registry import ModelRegistryHook

__all__ = ["GXValidateIntervalOperator", "GXIntervalValidationFailed", "MonitorValidateOperator",
           "WINDOW_START", "WINDOW_END"]

#: The checks' window: the ``SKIFF_MONITOR_WINDOW_HOURS`` before the run (an asset-triggered
#: run has no data interval of its own).
WINDOW_START = ("{{ (dag_run.run_after - macros.timedelta(hours=params.window_hours))"
                ".isoformat() }}")
WINDOW_END = "{{ dag_run.run_after.isoformat() }}"


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _flag(value: bool | str) -> bool:
    """A boolean, or its text as a template renders it (``True``, ``false``, ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise ValueError(f"whole_log={value!r} is neither true nor false")
    return text in _TRUE


class GXIntervalValidationFailed(GXValidationFailed, AirflowFailException):
    """A suite failed on the interval's data: the task fails at once, without retries.

    Bad data is not a transient error; retrying would only delay the alert. The message
    names the table, the interval, each failed expectation with its defect, counts and
    examples of the bad rows, and the report. ``defects`` lists the defect names.
    """

    def __init__(self, message: str, *, result: dict[str, Any], task_id: str,
                 defects: Sequence[str] = ()) -> None:
        super().__init__(validation_result_dict=result, task_id=task_id, message=message)
        self.defects = tuple(defects)


class GXValidateIntervalOperator(GXValidateBatchOperator):
    """Validate the rows one suite guards, for the run's data interval.

    A thin layer over the Great Expectations provider's ``GXValidateBatchOperator``: at
    execute time it reads the suite from ``include/gx/suites`` (:mod:`skiff.validate`),
    fills in the interval and the thresholds of ``ValidationConfig``, and hands the
    provider a batch definition from :class:`~hooks.gx_warehouse.GXWarehouseHook` (a DataFrame of
    the interval's slice on DuckDB, a query asset of GX's Snowflake datasource on
    Snowflake). The provider runs the validation and pushes its result to XCom.

    With ``whole_log`` on (a full-refresh run, whose dbt models were rebuilt from the whole
    raw log), the suite covers the whole log up to the interval's end instead: on DuckDB it
    is validated inside the warehouse (:meth:`GXWarehouseHook.validate_in_warehouse
    <hooks.gx_warehouse.GXWarehouseHook.validate_in_warehouse>`: GX's metrics by SQL,
    judged by GX, in bounded memory), on Snowflake by the same query asset over the longer
    range. The messages and the report are an hourly run's, with counts over the whole log.

    Every result is kept under ``$SKIFF_HOME/gx`` (JSON per interval, and Data Docs). A failed
    suite raises :class:`GXIntervalValidationFailed`, whose message says what is wrong
    with which rows; the task fails without retrying, so nothing downstream runs and the
    failure callback fires.

    .. seealso:: ``include/gx/README.md`` for the suites; the README's "Validation" section.

    :param suite: the suite's name, e.g. ``fct_sessions`` (templated).
    :param interval_start: the data interval's start, ISO 8601 (templated); default
        ``{{ data_interval_start }}``.
    :param interval_end: its end, exclusive (templated); default ``{{ data_interval_end }}``.
    :param whole_log: validate from the log's first hour to the interval's end instead of the
        interval (templated; ``True``/``False`` or their text, e.g. ``{{ params.full_refresh
        }}``). Default ``False``.
    :param data_docs: also render the result's Data Docs page (about 0.2 s). Default ``True``.
    :param result_format: GX result format; ``SUMMARY`` (default) keeps counts and up to 20
        unexpected values per expectation.
    """

    template_fields: Sequence[str] = ("suite", "interval_start", "interval_end", "whole_log")
    ui_color = "#fdf3e7"

    def __init__(
        self,
        *,
        suite: str,
        interval_start: str = "{{ data_interval_start.isoformat() }}",
        interval_end: str = "{{ data_interval_end.isoformat() }}",
        whole_log: bool | str = False,
        data_docs: bool = True,
        result_format: str = "SUMMARY",
        **kwargs: Any,
    ) -> None:
        if result_format not in ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"):
            raise ValueError(f"result_format={result_format!r} is not a GX result format")
        if not (isinstance(whole_log, bool) or "{{" in whole_log):
            _flag(whole_log)  # a literal must be a boolean's text; a template is read in execute
        super().__init__(
            configure_batch_definition=self._configure_batch_definition,
            configure_expectations=self._configure_expectations,
            result_format=result_format,
            **kwargs,
        )
        self.suite = suite
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.whole_log = whole_log
        self.data_docs = data_docs
        self._rendered: RenderedSuite | None = None
        self._gx_context: AbstractDataContext | None = None

    @cached_property
    def config(self) -> SkiffConfig:
        from skiff.config import SkiffConfig

        return SkiffConfig.from_env()

    @cached_property
    def hook(self) -> GXWarehouseHook:
        return GXWarehouseHook(self.config.warehouse)

    # -- the provider's callables: they run inside its execute, on its GX context

    def _configure_batch_definition(self, gx_context: AbstractDataContext) -> BatchDefinition:
        self._gx_context = gx_context
        return self.hook.batch_definition(gx_context, self.rendered.name, self.rendered.sql)

    def _configure_expectations(self, gx_context: AbstractDataContext) -> ExpectationSuite:
        return gx_context.suites.add_or_update(self.rendered.to_gx())

    @property
    def rendered(self) -> RenderedSuite:
        if self._rendered is None:
            raise RuntimeError("the suite is rendered in execute(); nothing to validate yet")
        return self._rendered

    # --

    def execute(self, context: Context) -> None:
        from skiff.validate import (
            SuiteSpec,
            ValidationWindow,
            allow_duplicates,
            fetch_parameters,
            write_report,
        )

        # Airflow runs a copy of the operator made after __init__: point the provider's
        # callables at this copy, which holds the rendered suite and the GX context.
        self.configure_batch_definition = self._configure_batch_definition
        self.configure_expectations = self._configure_expectations
        interval = ValidationWindow.of(self.interval_start, self.interval_end)
        window = self._whole_log(interval) if _flag(self.whole_log) else interval
        spec = SuiteSpec.load(self.suite, self.config.validation.suites_dir)
        if window is not interval and self.hook.backend == "duckdb":
            self._validate_in_warehouse(context, spec, window, interval.label)
            return
        parameters = {**fetch_parameters(spec, self.config, window, self.hook.warehouse),
                      **self.more_parameters()}
        if "duplicate_mostly" in spec.parameters:  # a share, with a floor for small batches
            sql = spec.render(parameters).sql
            ((rows,),) = self.hook.records(f"select count(*) from ({sql}) as batch")
            parameters = allow_duplicates(parameters, int(rows), self.config.validation)
        self._rendered = spec.render(parameters)
        self.log.info("Validating %s for %s with suite %s; rows:\n%s",
                      self.rendered.table, window, self.suite, self.rendered.sql)
        self.batch_parameters = self.hook.batch_parameters(self.rendered.sql)
        failure: GXValidationFailed | None = None
        try:
            super().execute(context)
        except GXValidationFailed as exc:
            failure = exc
        result = self._validation_result()
        self._remove_temporary_docs_site()
        report = write_report(result, self.rendered, window, self.config.validation.reports_dir,
                              data_docs=self.data_docs, label=interval.label)
        self._conclude(result, window, report, failure)

    def more_parameters(self) -> dict[str, Any]:
        """Parameters a subclass adds to the suite's (e.g. from the registry); none here."""
        return {}

    def _whole_log(self, interval: ValidationWindow) -> ValidationWindow:
        """The range from the log's first hour to the interval's end."""
        from skiff.validate import ValidationWindow
        from skiff.validate.whole_log import log_span

        first, _ = log_span(self.hook, self.config)
        return ValidationWindow(min(first, interval.start), interval.end, interval.now)

    def _validate_in_warehouse(self, context: Context, spec: SuiteSpec, window: ValidationWindow,
                               label: str) -> None:
        """DuckDB, a range too long for a DataFrame: validated where the rows are."""
        outcome = self.hook.validate_in_warehouse(spec, self.config, window, label=label,
                                                  data_docs=self.data_docs)
        self._rendered = outcome.suite
        context["ti"].xcom_push(key="return_value", value=outcome.result.describe_dict())
        self._conclude(outcome.result, window, outcome.report, None)

    def _conclude(self, result: ExpectationSuiteValidationResult, window: ValidationWindow,
                  report: Report, failure: GXValidationFailed | None) -> None:
        """Raise the failure's message, or log the success."""
        from skiff.validate import failure_message, failures, success_message

        payload = result.to_json_dict()
        if failure is not None or not result.success:
            message = failure_message(self.rendered, window, payload, report)
            raise GXIntervalValidationFailed(
                message,
                result=result.describe_dict(),
                task_id=self.task_id,
                defects=sorted({f.defect for f in failures(payload)}),
            ) from failure
        self.log.info(success_message(self.rendered, window, payload))
        for line in report.lines():
            self.log.info(line)

    def _remove_temporary_docs_site(self) -> None:
        """The provider's ephemeral GX context makes an (unused) temporary Data Docs folder."""
        import os
        import tempfile

        sites = getattr(getattr(self._gx_context, "config", None), "data_docs_sites", None) or {}
        for site in sites.values():
            folder = ((site or {}).get("store_backend") or {}).get("base_directory")
            if folder and os.path.dirname(os.path.abspath(folder)) == tempfile.gettempdir():
                try:
                    os.rmdir(folder)  # only when empty
                except OSError:
                    pass

    def _validation_result(self) -> ExpectationSuiteValidationResult:
        """The full result (with each expectation's meta) from the provider's GX context."""
        store = self._gx_context.validation_results_store if self._gx_context else None
        keys = store.list_keys() if store is not None else []
        if len(keys) != 1:
            raise RuntimeError(
                f"expected one validation result in the GX context, found {len(keys)}")
        return store.get(keys[0])


#: The mart each of skiff_monitor's suites checks.
_MONITOR_MARTS = {"mon_serving": "mon_serving_hourly", "mon_quality": "mon_quality_hourly",
                  "mon_drift": "mon_drift_hourly"}


class MonitorValidateOperator(GXValidateIntervalOperator):
    """Check one monitoring mart over the last hours with its Great Expectations suite.

    :class:`~operators.validate.GXValidateIntervalOperator` on a window ending at the run
    (``SKIFF_MONITOR_WINDOW_HOURS`` long, from the DAG's ``window_hours`` param), with the
    thresholds of ``MonitorConfig`` and the rec champion's offline hit rate@20 from the
    registry (the online quality's reference). A breach fails the task at once with the
    suite's message (which hours, models and features), so the failure alert carries it.
    While the mart does not exist (no prediction log built yet) the task is skipped.

    :param suite: ``mon_serving``, ``mon_quality`` or ``mon_drift``.
    """

    template_fields: Sequence[str] = GXValidateIntervalOperator.template_fields

    def __init__(self, *, suite: str, **kwargs: Any) -> None:
        if suite not in _MONITOR_MARTS:
            raise ValueError(f"suite={suite!r}: use mon_serving, mon_quality or mon_drift")
        kwargs.setdefault("interval_start", WINDOW_START)
        kwargs.setdefault("interval_end", WINDOW_END)
        super().__init__(suite=suite, **kwargs)

    @cached_property
    def registry_hook(self) -> ModelRegistryHook:
        from hooks.model_registry import ModelRegistryHook

        return ModelRegistryHook(self.config.serving)

    def execute(self, context: Context) -> None:
        """Validate; skip (nothing to check) while the mart does not exist yet."""
        from airflow.sdk.exceptions import AirflowSkipException

        schema, table = self.config.warehouse.marts_schema, _MONITOR_MARTS[self.suite]
        ((found,),) = self.hook.records(
            "select count(*) from information_schema.tables where lower(table_schema) = "
            f"'{schema.lower()}' and lower(table_name) = '{table}'")
        if not found:
            raise AirflowSkipException(f"{schema}.{table} does not exist yet (the monitoring "
                                       "marts are built from the prediction log): nothing to "
                                       "check.")
        super().execute(context)

    def more_parameters(self) -> dict[str, Any]:
        """The thresholds, with the rec champion's offline hit rate@20 and its floor."""
        from skiff.monitor.snapshot import offline_value
        from skiff.validate.parameters import monitor_parameters

        champion = self.registry_hook.champion("rec")
        offline = offline_value(champion.to_dict() if champion else None, "hit_rate_at_20")
        return monitor_parameters(self.config, offline)
