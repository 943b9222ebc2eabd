"""Glue the training flows share: read the validated marts, store models, size the steps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.config import WarehouseConfig, skiff_home
from skiff.train.datasets import Marts, read_marts
from skiff.times import naive_utc

if TYPE_CHECKING:
    from skiff.serve import BundleRef

__all__ = ["open_marts", "read_training_data", "store_model", "step_resources", "models_dir"]


def open_marts(config: WarehouseConfig, *, until: str | None = None, max_sessions: int = 0) -> Marts:
    """Read the marts the DAG just validated, from DuckDB or Snowflake as configured.

    :param config: the warehouse settings (Snowflake's connection: ``SKIFF_SNOWFLAKE_CONNECT``,
        set by the task that launches the flow).
    :param until: only sessions that started before this time (the data interval's end).
    :param max_sessions: keep only the latest this many sessions (0 = all): the run's sample size.
    """
    from skiff.data import warehouse_from_config

    warehouse = warehouse_from_config(config)
    end = naive_utc(until)
    since = (warehouse.latest_sessions_start(config.marts_schema, max_sessions, until=end)
             if max_sessions else None)
    return read_marts(warehouse, schema=config.marts_schema, since=since, until=end)


def read_training_data(*, interval_start: str, interval_end: str, max_sessions: int,
                       holdout: float) -> tuple[Marts, dict[str, Any], Any]:
    """What a flow's ``start`` step reads: the marts up to the interval, their version, the split.

    :param interval_start: the DAG's data interval start (recorded for lineage), or ``""``.
    :param interval_end: sessions starting before it are read, or ``""`` for all.
    :param max_sessions: the latest this many sessions (0 = all).
    :param holdout: share of the latest sessions held out.
    :return: ``(marts, data_version as a dict, time cutoff of the held-out sessions)``.
    """
    from skiff.train import datasets

    marts = open_marts(WarehouseConfig.from_env(), until=interval_end or None, max_sessions=max_sessions)
    version = datasets.data_version(marts, interval_start=interval_start or None,
                                    interval_end=interval_end or None)
    return marts, version.as_dict(), datasets.time_cutoff(marts.sessions["session_start_at"], holdout)


def models_dir(flow: str, run_id: str) -> Path:
    """Where a run's exported models live locally: ``$SKIFF_HOME/models/<flow>/<run_id>``."""
    return skiff_home() / "models" / flow / str(run_id)


def store_model(model: Any, flow: str, run_id: str, *, kind: str, vocabulary: Any, max_len: int,
                k: int = 20, popular: dict[str, list] | None = None,
                extra: dict[str, Any] | None = None, publish_to: str | None = None,
                s3_client: Any = None) -> tuple[Path, BundleRef]:
    """Save a fitted model as ``model.keras`` and as the servable bundle the deploy ships.

    The bundle (:func:`skiff.serve.bundle.write_bundle`: SavedModel, ``code/inference.py`` and
    the request metadata) is written under :func:`models_dir` and packed as SageMaker's
    ``model.tar.gz`` beside it. A run whose disk does not outlive it (AWS Batch) also puts
    the tarball under ``publish_to``, so the deploy and later runs' champion branch reach it
    from any machine.

    :param model: the fitted Keras model.
    :param flow: the flow's name (``current.flow_name``).
    :param run_id: the run's id; the bundle's version is ``<flow>/<run_id>``.
    :param kind: ``intent`` or ``rec``.
    :param vocabulary: the vocabulary the model's ids come from.
    :param max_len: ids the model reads (the latest).
    :param k: list length of a ``rec`` export.
    :param popular: a ``rec`` bundle's popular items, its answer to a session with no known
        SKU (:func:`skiff.train.next_item.popular_items`).
    :param extra: more metadata for the bundle (data version ...).
    :param publish_to: an ``s3://`` prefix; the tarball goes to
        ``<publish_to>/<flow>/<run_id>/model.tar.gz`` (None: it stays a local file).
    :param s3_client: a boto3 S3 client for ``publish_to``; default boto3's.
    :return: ``(model.keras path, the bundle)``.
    """
    from skiff.serve import BundleRef, bundle
    from skiff.train import models

    folder = models_dir(flow, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    keras_path = models.save_keras(model, folder / "model.keras")
    written = bundle.write_bundle(model, folder / "bundle", kind=kind, vocabulary=vocabulary,
                                  version=f"{flow}/{run_id}", max_len=max_len, k=k,
                                  popular=popular, extra=extra)
    packed = bundle.pack_bundle(written, folder / bundle.TARBALL)
    ref = BundleRef(f"{flow}/{run_id}", str(written), str(packed))
    if publish_to:
        uri = f"{publish_to.rstrip('/')}/{flow}/{run_id}/{bundle.TARBALL}"
        ref = bundle.upload(ref, uri, folder, s3_client=s3_client)
    return Path(keras_path), ref


def step_resources() -> dict[str, int]:
    """``@resources`` of a training step: GPUs and memory set by the launch (0 GPUs locally)."""
    return {"gpu": int(os.environ.get("SKIFF_BATCH_GPU", "0")),
            "memory": int(os.environ.get("SKIFF_BATCH_MEMORY", "16000"))}
