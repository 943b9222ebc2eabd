"""Experiment tracking with Weights & Biases: offline by default, online with an API key.

``WANDB_MODE=offline`` (skiff.env) writes ``offline-run-*`` folders under
``$SKIFF_HOME/wandb`` that ``wandb sync`` uploads later; with ``WANDB_API_KEY`` set and
``WANDB_MODE=online`` the same calls log to the W&B service. ``WANDB_PROJECT`` names the
project (default ``skiff``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from skiff.config import skiff_home

__all__ = ["log_training_run"]


def _flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def log_training_run(
    name: str,
    *,
    params: dict[str, Any],
    metrics: dict[str, Any],
    history: dict[str, list[float]] | None = None,
    tags: list[str] | None = None,
    job_type: str = "train",
) -> Path | None:
    """Log one training run: params as config, per-epoch history, final (nested) metrics.

    :param name: the run's name, e.g. the Metaflow pathspec.
    :param params: hyper-parameters and lineage (data version, code version).
    :param metrics: final metrics; nested dicts become ``a/b`` keys.
    :param history: per-epoch series (Keras ``History.history``).
    :param tags: W&B tags.
    :param job_type: W&B job type.
    :return: the local run folder (offline mode), or ``None`` when tracking is disabled.
    """
    if os.environ.get("WANDB_MODE", "offline") == "disabled":
        return None
    import wandb

    root = skiff_home() / "wandb"
    root.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "skiff"),
        name=name.replace("/", "-"),
        dir=str(root),
        config=params,
        tags=tags,
        job_type=job_type,
        reinit="create_new",
    )
    try:
        for epoch, values in enumerate(zip(*(history or {}).values(), strict=True)):
            run.log(dict(zip((history or {}).keys(), values, strict=True)) | {"epoch": epoch})
        run.summary.update(_flatten(metrics))
        return Path(run.dir).parent
    finally:
        run.finish()
