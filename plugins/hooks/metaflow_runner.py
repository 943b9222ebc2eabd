"""Hook running Metaflow flows (Runner API) and reading their runs back (client API).

:func:`candidate_pathspec` reads the run out of what the tasks after training pass on (the
training task's ``{"pathspec", "metrics", "bundle"}``, the gate's decision, or a bare pathspec).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException
from airflow.sdk.bases.hook import BaseHook

from hooks.warehouse import SkiffWarehouseHook

if TYPE_CHECKING:
    from skiff.config import ServingConfig, TrainingConfig
    from skiff.serve import BundleRef
    from skiff.train import FlowLaunch

__all__ = ["MetaflowHook", "MetaflowRunFailed", "candidate_pathspec"]

#: Variables of :attr:`MetaflowHook.run_env` holding credentials (masked in task logs).
_SECRET_NAMES = frozenset({"SKIFF_SNOWFLAKE_CONNECT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                           "AWS_SESSION_TOKEN", "WANDB_API_KEY"})
#: The AWS connection's keys: a run's launcher uses them, a Batch job uses its own role.
_AWS_KEYS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
#: Settings naming this host's files or processes: meaningless in a Batch container.
_LOCAL_ONLY = frozenset({"SKIFF_HOME"})


def candidate_pathspec(candidate: Any) -> str:
    """The run pathspec of a candidate: a pathspec, or a dict with ``pathspec`` (XCom)."""
    pathspec = candidate.get("pathspec") if isinstance(candidate, dict) else candidate
    if not isinstance(pathspec, str) or "/" not in pathspec:
        raise AirflowException(f"The candidate must be a Metaflow run pathspec ('Flow/run_id') or "
                               f"a dict with one; got {candidate!r:.200}.")
    return pathspec


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetaflowRunFailed(RuntimeError):
    """A flow run failed; the message carries the run's pathspec and its error output."""


class MetaflowHook(BaseHook):
    """Start flows, wait for them, and describe their runs.

    All Metaflow I/O of Skiff's Airflow code goes through this hook: the blocking
    :meth:`run` (Runner API, output streamed to a callback), the detached :meth:`start`
    used by deferrable tasks (the run outlives the worker), and :meth:`describe` /
    :meth:`metrics` through the Metaflow client.

    A run reads the marts itself, outside Airflow: it gets the warehouse's connection
    (:meth:`SkiffWarehouseHook.connect_env`, on Snowflake) in its environment only, not in
    the launch the operator logs and hands to its trigger.

    :param config: training settings; default :meth:`TrainingConfig.from_env`.
    :param env: ``METAFLOW_*`` variables to use instead of the config's (a trigger passes
        the ones its run was launched with).
    """

    default_conn_name = "skiff_metaflow"
    hook_name = "Metaflow"
    RUNNING, SUCCESSFUL, FAILED = "running", "successful", "failed"

    def __init__(self, config: TrainingConfig | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__()
        from skiff.config import TrainingConfig

        self.config = config or TrainingConfig.from_env()
        self._env = env
        #: the run this hook started last (pathspec) and its launcher process, for :meth:`kill`
        self.pathspec: str | None = None
        self.pid: int | None = None

    @cached_property
    def env(self) -> dict[str, str]:
        from skiff.train import metaflow_env

        return dict(self._env) if self._env is not None else metaflow_env(self.config)

    @cached_property
    def warehouse_env(self) -> dict[str, str]:
        """The warehouse connection a run gets on top of :attr:`FlowLaunch.env` (a secret)."""
        return SkiffWarehouseHook().connect_env()

    @cached_property
    def run_env(self) -> dict[str, str]:
        """Everything a run gets on top of :attr:`FlowLaunch.env`, resolved here at launch.

        The warehouse connection (:attr:`warehouse_env`), the AWS connection
        (:meth:`aws_env`), the W&B API key (:meth:`wandb_env`) and the Skiff settings of this
        process; ``SKIFF_RUN_ENV`` names them all, and the flows' ``forward_run_env`` hands
        them to every step, on AWS Batch too (but the AWS keys: a Batch job acts with its own
        role, ``SKIFF_BATCH_JOB_ROLE_ARN``). Each secret is registered with Airflow's
        secrets masker, so a task log shows ``***`` in its place. Never part of the launch
        the operator logs and its trigger stores.
        """
        from airflow.sdk.log import mask_secret

        from skiff.config import settings

        secrets = {**self.warehouse_env, **self.aws_env(), **self.wandb_env()}
        for name, value in secrets.items():
            if name in _SECRET_NAMES:
                mask_secret(value)
        settings_env = {s.env: os.environ[s.env] for s in settings()
                        if s.env in os.environ and s.env not in _LOCAL_ONLY
                        and not s.env.startswith("METAFLOW_")}
        settings_env.update({n: os.environ[n] for n in ("WANDB_MODE", "WANDB_PROJECT") if n in os.environ})
        if self.config.train_on == "batch":
            # the training image has what Metaflow's Batch bootstrap would pip-install (boto3,
            # requests): no install at each task start, none from a subnet without internet
            settings_env["METAFLOW_SKIP_INSTALL_DEPENDENCIES"] = "1"
        env = {**settings_env, **secrets}
        # a Batch job has its role (SKIFF_BATCH_JOB_ROLE_ARN) for AWS: the connection's keys
        # serve the launcher (Batch client, S3 datastore) and stay out of the job's environment
        forwarded = [n for n in env if not (self.config.train_on == "batch" and n in _AWS_KEYS)]
        return {**env, "SKIFF_RUN_ENV": ",".join(sorted(forwarded))}

    def aws_env(self) -> dict[str, str]:
        """The AWS connection (``SKIFF_AWS_CONN_ID``) as the standard ``AWS_*`` variables, for
        the S3 datastore (a Batch launch's included) or an ``s3://`` registry (nothing
        otherwise): Metaflow's S3 datastore and Batch client in the run, the bundle's upload
        and the champion's registry reads use these credentials."""
        from skiff.config import ServingConfig

        serving = ServingConfig.from_env()
        if self.config.datastore != "s3" and not serving.registry.startswith("s3://"):
            return {}
        return self._aws_connection_env(serving)

    @staticmethod
    def _aws_connection_env(serving: ServingConfig | None = None) -> dict[str, str]:
        """The AWS connection of ``serving`` (default from env) as ``AWS_*`` variables."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from skiff.config import ServingConfig

        serving = serving or ServingConfig.from_env()
        hook = AwsBaseHook(aws_conn_id=serving.aws_conn_id, client_type="s3")
        env = {"AWS_DEFAULT_REGION": hook.conn_region_name or serving.region}
        if hook.conn_config.endpoint_url:
            env["AWS_ENDPOINT_URL"] = hook.conn_config.endpoint_url
        credentials = hook.get_credentials()
        if credentials is not None and credentials.access_key:
            env.update(AWS_ACCESS_KEY_ID=credentials.access_key,
                       AWS_SECRET_ACCESS_KEY=credentials.secret_key)
            if credentials.token:
                env["AWS_SESSION_TOKEN"] = credentials.token
        return env

    def wandb_env(self) -> dict[str, str]:
        """``WANDB_API_KEY`` from the password of the connection ``SKIFF_WANDB_CONN_ID``;
        nothing when that connection does not exist (W&B offline, or a key set otherwise)."""
        from airflow.exceptions import AirflowNotFoundException

        try:
            password = self.get_connection(self.config.wandb_conn_id).password
        except AirflowNotFoundException:
            return {}
        return {"WANDB_API_KEY": password} if password else {}

    def launch(self, flow_file: str | Path, params: dict[str, Any] | None = None,
               tags: list[str] | tuple[str, ...] = ()) -> FlowLaunch:
        """The command and environment of a run (see :func:`skiff.train.launch.flow_launch`).

        :raises AirflowException: a Batch launch on the DuckDB warehouse (the file is on this
            host, never in a Batch container).
        """
        from skiff.config import WarehouseConfig
        from skiff.train import flow_launch

        if self.config.train_on == "batch" and WarehouseConfig.from_env().backend == "duckdb":
            raise AirflowException("SKIFF_TRAIN_ON=batch needs SKIFF_WAREHOUSE=snowflake: a step on "
                                   "AWS Batch cannot open the DuckDB file of the Airflow host.")
        return flow_launch(flow_file, params, self.config, tags)

    @cached_property
    def client(self) -> Any:
        """The ``metaflow`` module, imported with this hook's datastore settings, global namespace.

        On the S3 datastore the AWS connection (``SKIFF_AWS_CONN_ID``, as :meth:`aws_env`
        gives it to a run) goes into this process's environment as well: the client reads a
        run's artifacts from S3 through boto3 sessions and ``s3op`` worker processes of its
        own, which take credentials, region and endpoint from the environment only. An
        Airflow task runs in a process of its own; in the triggerer (a Batch run's trigger)
        the variables are the process's, for every trigger in it.
        """
        for key, value in self.env.items():
            os.environ.setdefault(key, value)
        if self.env.get("METAFLOW_DEFAULT_DATASTORE") == "s3":
            os.environ.update(self._aws_connection_env())
        import metaflow

        metaflow.namespace(None)
        return metaflow

    # -- running -----------------------------------------------------------------------------

    def run(self, launch: FlowLaunch, log: Callable[[str], None] = print) -> str:
        """Run a flow to the end with the Runner API, streaming its output to ``log``.

        :return: the run's pathspec, ``Flow/run_id``.
        :raises MetaflowRunFailed: the run failed; the message holds the end of its output.
        """
        return asyncio.run(self._run(launch, log))

    async def _run(self, launch: FlowLaunch, log: Callable[[str], None]) -> str:
        cwd = self._workdir()
        env = {**launch.env, **self.run_env}
        with self.client.Runner(str(launch.flow_file), show_output=False, env=env, cwd=cwd,
                                **launch.top_level) as runner:
            executing = await runner.async_run(**launch.run_args)
            self.pathspec, self.pid = executing.run.pathspec, executing.command_obj.process.pid
            async for _, line in executing.stream_log("stdout"):
                log(line)
            await executing.wait()
            pathspec = executing.run.pathspec
            if executing.status != self.SUCCESSFUL:
                state = self.describe(pathspec)
                if state["status"] != self.FAILED:  # died before a task could record its error
                    state["message"] = "\n".join(executing.stderr.strip().splitlines()[-30:])
                raise MetaflowRunFailed(f"Metaflow run {pathspec} {executing.status}: {state['message']}")
        return pathspec

    def start(self, launch: FlowLaunch, log_dir: Path | None = None, wait_s: float = 120) -> str:
        """Start a run in its own session, detached from this process, and return its pathspec.

        The run survives the worker that started it (a deferred task's worker exits at once);
        its output goes to ``<log_dir>/<Flow>-<run_id>.log``.

        :param wait_s: how long to wait for the run to get its id, in seconds.
        """
        log_dir = Path(log_dir or self.config.metaflow_root / "logs")
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"{os.getpid()}-{time.time_ns()}"
        run_id_file = log_dir / f"run-id-{stamp}"
        log_path = log_dir / f"launch-{stamp}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                launch.argv(run_id_file), env={**os.environ, **launch.env, **self.run_env},
                stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                cwd=self._workdir(),
            )
        deadline = time.monotonic() + wait_s
        while not (run_id_file.exists() and run_id_file.read_text().strip()):
            if proc.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                raise MetaflowRunFailed(f"{launch.flow_file.name} exited with {proc.returncode} before starting:\n{tail}")
            if time.monotonic() > deadline:
                raise MetaflowRunFailed(f"{launch.flow_file.name} got no run id within {wait_s}s; see {log_path}")
            time.sleep(0.2)
        run_id = run_id_file.read_text().strip()
        run_id_file.unlink()
        flow_name = self._flow_name(launch.flow_file)
        self.pathspec, self.pid = f"{flow_name}/{run_id}", proc.pid
        final_log = log_dir / f"{flow_name}-{run_id}.log"
        log_path.rename(final_log)  # the child keeps writing to the renamed file
        self.log.info("Started %s/%s (pid %s), output in %s", flow_name, run_id, proc.pid, final_log)
        return f"{flow_name}/{run_id}"

    def kill(self, flow_file: str | Path, pathspec: str | None, pid: int | None = None,
             own_session: bool = False, grace_s: float = 5) -> None:
        """Stop a run: its launcher process and the step processes under it, and on AWS Batch
        its jobs (Metaflow's ``flow.py batch kill --run-id``, which terminates the run's
        unfinished jobs; a killed Batch task is never retried).

        :param flow_file: the flow's file.
        :param pathspec: the run, ``Flow/run_id`` (None: nothing started on Batch yet).
        :param pid: the launcher's process id on this host, if known.
        :param own_session: the launcher leads its own process group (:meth:`start`): the
            whole group is signalled; else the launcher and its children (Runner API).
        :param grace_s: seconds between SIGTERM and SIGKILL, for the local processes.
        """
        if pid is not None:
            self.log.info("Stopping the launcher of %s (pid %s)", pathspec, pid)
            if own_session:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(pid, sig)
                    except ProcessLookupError:
                        break
                    if sig == signal.SIGTERM:
                        time.sleep(grace_s)
            else:
                from metaflow.runner.subprocess_manager import kill_processes_and_descendants

                kill_processes_and_descendants([str(pid)], grace_s)
        if self.config.train_on == "batch" and pathspec:
            argv = [sys.executable, str(flow_file), "--no-pylint", "--datastore", "s3", "batch",
                    "kill", "--run-id", pathspec.split("/", 1)[1]]
            done = subprocess.run(argv, env={**os.environ, **self.env, **self.aws_env()},
                                  capture_output=True, text=True, timeout=300, cwd=self._workdir())
            self.log.info("batch kill of %s exited %s: %s", pathspec, done.returncode,
                          (done.stdout + done.stderr).strip()[-2000:])
            if done.returncode != 0:
                raise MetaflowRunFailed(f"Could not kill the Batch jobs of {pathspec}: "
                                        f"{done.stderr.strip()[-2000:]}")

    def _workdir(self) -> str:
        """Runs start in the local datastore root: Metaflow's cards (found from the working
        directory) then land beside the runs, not in whatever folder Airflow runs in."""
        root = Path(self.env["METAFLOW_DATASTORE_SYSROOT_LOCAL"])
        (root / ".metaflow").mkdir(parents=True, exist_ok=True)
        return str(root)

    @staticmethod
    def _flow_name(flow_file: Path) -> str:
        import ast

        tree = ast.parse(Path(flow_file).read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                getattr(b, "id", getattr(b, "attr", "")) == "FlowSpec" for b in node.bases
            ):
                return node.name
        raise MetaflowRunFailed(f"No FlowSpec class in {flow_file}")

    # -- reading runs back -------------------------------------------------------------------

    def describe(self, pathspec: str) -> dict[str, Any]:
        """Status of a run from the Metaflow client: ``running``, ``successful`` or ``failed``.

        :return: ``{"pathspec", "status", "message"}``; the message names the failed step and
            ends with its error output.
        """
        run = self.client.Run(pathspec)
        if run.finished:
            status = self.SUCCESSFUL if run.successful else self.FAILED
            return {"pathspec": pathspec, "status": status, "message": f"{pathspec} {status}"}
        for step in run:
            for task in step:
                if task.exception is not None:  # the latest attempt raised (retries exhausted)
                    tail = "\n".join(str(task.exception).strip().splitlines()[-20:])
                    return {"pathspec": pathspec, "status": self.FAILED,
                            "message": f"{task.pathspec} failed:\n{tail}"}
        return {"pathspec": pathspec, "status": self.RUNNING, "message": f"{pathspec} running"}

    def metrics(self, pathspec: str) -> dict[str, Any]:
        """The run's ``metrics`` artifact, JSON-safe for XCom (NaN, e.g. an AUC on a slice
        with one class, becomes ``None``); empty when the flow records none."""
        data = self.client.Run(pathspec).data
        return _json_safe(dict(getattr(data, "metrics", None) or {}))

    def bundle(self, pathspec: str) -> BundleRef | None:
        """The model bundle the run stored (its ``bundle`` artifact), None when it stored none.

        :raises ModelLoadError: the artifact is not a bundle reference.
        """
        from skiff.serve import BundleRef

        doc = getattr(self.client.Run(pathspec).data, "bundle", None)
        return BundleRef.from_dict(doc) if doc is not None else None
