"""Operating Skiff on this machine: Airflow standalone on loopback and a small REST client.

- :mod:`~skiff.ops.local_airflow`: ``make airflow``'s processes, health waits and credentials.
- :mod:`~skiff.ops.browser`: its UI in headless Chromium (Playwright): login, trigger form.
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "LocalAirflow": "local_airflow", "LocalAirflowError": "local_airflow",
    "free_port": "local_airflow", "sandbox_env": "local_airflow",
    "scheduled_env": "local_airflow",
    "chromium": "browser", "sign_in": "browser", "open_trigger_form": "browser",
    "expand_task_groups": "browser", "BrowserError": "browser",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
