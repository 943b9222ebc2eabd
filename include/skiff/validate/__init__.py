"""The validate stage: Great Expectations suites over the interval's raw log and marts.

- :mod:`~skiff.validate.suites`: suite files read, and rendered with one run's parameters.
- :mod:`~skiff.validate.parameters`: the data interval, the thresholds, the volume reference.
- :mod:`~skiff.validate.baseline`: the interval's event shares against the recent hours'.
- :mod:`~skiff.validate.messages`: a result explained: failed expectations, the task's messages.
- :mod:`~skiff.validate.reports`: results kept (JSON, Data Docs), read back and summarised.
- :mod:`~skiff.validate.whole_log`: a long range (the whole log) validated inside the
  warehouse: :mod:`~skiff.validate.pushdown` (GX's metrics by SQL, judged by GX) and
  :mod:`~skiff.validate.sql_checks` (the expectations as SQL).
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "SUITES": "suites", "MONITOR_SUITES": "suites", "SuiteSpec": "suites",
    "RenderedSuite": "suites",
    "ValidationWindow": "parameters", "fetch_parameters": "parameters",
    "allow_duplicates": "parameters",
    "METRICS": "baseline", "mix_suite": "baseline", "mix_suite_yaml": "baseline",
    "failure_message": "messages", "failures": "messages", "success_message": "messages",
    "write_report": "reports", "read_reports": "reports", "report_summary": "reports",
    "log_span": "whole_log", "validate_range": "whole_log", "validate_in_warehouse": "pushdown",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
