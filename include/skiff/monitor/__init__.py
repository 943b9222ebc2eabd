"""The monitor stage: what the models do in production, as the Skiff page and skiff_monitor see it.

- :mod:`~skiff.monitor.snapshot`: the monitoring marts' recent hours and the champion
  registry (champions, promotions, gate decisions) as one JSON document, written by
  skiff_monitor for the page, and the breaches of the configured thresholds in it.
- :mod:`~skiff.monitor.page`: that document as the Skiff page (HTML with inline SVG charts,
  no script, nothing fetched from elsewhere).
- :mod:`~skiff.monitor.marts`: the monitoring marts' names and columns, as dbt builds them
  (``include/dbt/models/monitoring``).
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "MONITOR_TABLES": "marts", "MonitorMart": "marts",
    "build_snapshot": "snapshot", "write_snapshot": "snapshot", "read_snapshot": "snapshot",
    "breaches": "snapshot", "thresholds": "snapshot", "SNAPSHOT_FILE": "snapshot",
    "render_page": "page", "line_chart": "page",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
