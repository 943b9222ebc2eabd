"""Skiff: an hourly ML pipeline for e-commerce browsing sessions.

This package is plain Python (no Airflow imports): configuration, the data
contract, the synthetic generator, the warehouse loader, and later features,
models and metrics. Airflow code lives in ``dags/`` and ``plugins/``.
"""

__version__ = "0.1.0"
