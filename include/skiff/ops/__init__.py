"""Operating Skiff on this machine: Airflow standalone on loopback and a small REST client.

- :mod:`~skiff.ops.local_airflow`: ``make airflow``'s processes, health waits and credentials.
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "LocalAirflow": "local_airflow", "LocalAirflowError": "local_airflow",
    "free_port": "local_airflow", "sandbox_env": "local_airflow",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
