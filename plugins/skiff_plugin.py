"""Skiff's Airflow plugin: the listener that reports a run's progress (``listeners.progress``).

The one file of ``plugins/`` the plugin loader imports (see ``.airflowignore``); it stays
cheap to import, since every Airflow process loads it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from listeners import progress

__all__ = ["SkiffPlugin"]


class SkiffPlugin(AirflowPlugin):
    """Registers :mod:`listeners.progress` (it writes only when ``SKIFF_PROGRESS_FILE`` is set)."""

    name = "skiff"
    listeners = [progress]
