"""How a Metaflow flow is launched: command line and environment, local or on AWS Batch.

Pure functions of :class:`~skiff.config.TrainingConfig`, so the Batch launch is tested
without AWS. Locally a flow runs on Metaflow's local runtime with a local datastore under
``$SKIFF_HOME/metaflow``, or the S3 datastore (``SKIFF_TRAIN_DATASTORE=s3``). With
``SKIFF_TRAIN_ON=batch`` every step runs on AWS Batch (``--with batch:image=…,queue=…``) with
the S3 datastore, and the training steps' own ``@resources`` ask for the GPUs and memory of
the config: nothing in the flow changes. The metadata stays local either way
(``METAFLOW_DEFAULT_METADATA=local``, under ``METAFLOW_DATASTORE_SYSROOT_LOCAL``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.config import TrainingConfig

__all__ = ["PACKAGE_SUFFIXES", "FlowLaunch", "flow_launch", "metaflow_env"]

#: Files of the code package besides Python: ``skiff/data/contract.toml``.
PACKAGE_SUFFIXES = ".py,.toml"


def metaflow_env(config: TrainingConfig) -> dict[str, str]:
    """``METAFLOW_*`` (and related) variables a flow run and the Metaflow client both need.

    Metaflow reads them at import time: set them before importing ``metaflow``.
    """
    env = {
        "USERNAME": os.environ.get("USERNAME") or os.environ.get("USER") or "skiff",
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(config.metaflow_root),
        "METAFLOW_DEFAULT_DATASTORE": config.datastore,
        "SKIFF_BATCH_GPU": str(config.batch_gpu if config.train_on == "batch" else 0),
        "SKIFF_BATCH_MEMORY": str(config.batch_memory),
    }
    if config.datastore == "s3":
        env["METAFLOW_DATASTORE_SYSROOT_S3"] = config.s3_root
    if config.train_on == "batch":
        env.update(
            METAFLOW_BATCH_JOB_QUEUE=config.batch_queue,
            METAFLOW_BATCH_CONTAINER_IMAGE=config.batch_image,
            METAFLOW_ECS_S3_ACCESS_IAM_ROLE=config.batch_job_role,
        )
    return env


def _native(value: Any) -> Any:
    """A templated parameter (Airflow renders text) back to the number or boolean it spells."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, (bool, int, float)):
            return parsed
    return value


@dataclass(frozen=True)
class FlowLaunch:
    """Everything needed to start one flow run.

    :param flow_file: the flow's Python file.
    :param top_level: options before ``run`` (Runner keyword arguments): datastore, ``--with``.
    :param run_args: options after ``run``: the flow's parameters and ``tags``.
    :param env: environment added to the current one.
    """

    flow_file: Path
    top_level: dict[str, Any] = field(default_factory=dict)
    run_args: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, run_id_file: Path | None = None) -> list[str]:
        """The equivalent command line, ``python flow.py [top-level] run [params]``."""
        argv = [sys.executable, str(self.flow_file), "--no-pylint"]
        for key, value in self.top_level.items():
            if key == "pylint":
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            flag = "--with" if key == "decospecs" else "--" + key.replace("_", "-")
            for item in values:
                argv += [flag, str(item)]
        argv.append("run")
        for key, value in self.run_args.items():
            values = value if key == "tags" else [value]
            flag = "--tag" if key == "tags" else f"--{key}"
            for item in values:
                argv += [flag, str(item)]
        if run_id_file is not None:
            argv += ["--run-id-file", str(run_id_file)]
        return argv


def flow_launch(
    flow_file: str | Path,
    params: dict[str, Any] | None,
    config: TrainingConfig,
    tags: list[str] | tuple[str, ...] = (),
) -> FlowLaunch:
    """The launch of ``flow_file`` with ``params`` where ``config`` says (local or Batch).

    :param flow_file: path of the flow file.
    :param params: the flow's parameters (``None`` values are left out, so defaults apply).
    :param config: training settings.
    :param tags: Metaflow tags for the run (e.g. the data interval).
    """
    # the code package (what a Batch step runs from) is the flows' folder, symlinked
    # ``skiff/`` included, with the files of these suffixes (contract.toml is data skiff reads)
    top_level: dict[str, Any] = {"pylint": False, "package_suffixes": PACKAGE_SUFFIXES}
    if config.datastore == "s3":
        top_level["datastore"] = "s3"
    if config.train_on == "batch":
        top_level["decospecs"] = [f"batch:image={config.batch_image},queue={config.batch_queue},"
                                  f"iam_role={config.batch_job_role}"]
    run_args = {k: _native(v) for k, v in (params or {}).items() if v is not None}
    if tags:
        run_args["tags"] = list(tags)
    return FlowLaunch(Path(flow_file).resolve(), top_level, run_args, metaflow_env(config))
