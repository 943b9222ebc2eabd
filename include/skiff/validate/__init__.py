"""The validate stage: Great Expectations suites over the interval's raw log and marts.

- :mod:`~skiff.validate.suites`: suites as data, the rows they check, messages and reports.
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "SUITES": "suites", "SuiteSpec": "suites", "RenderedSuite": "suites",
    "ValidationWindow": "suites", "fetch_parameters": "suites", "read_reports": "suites",
    "report_summary": "suites",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
