"""Run a Metaflow flow as an Airflow task."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from hooks.metaflow_runner import MetaflowHook, MetaflowRunFailed
from hooks.warehouse import SkiffWarehouseHook
from triggers.metaflow_run import MetaflowRunTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["MetaflowRunOperator"]


class MetaflowRunOperator(BaseOperator):
    """Run a Metaflow flow (locally or on AWS Batch, by configuration) and push its results.

    Blocking mode runs the flow with the Runner API and streams its output into the task
    log. Deferrable mode starts the run detached, then hands the wait to
    :class:`~triggers.metaflow_run.MetaflowRunTrigger`, so a long GPU job holds no worker slot.
    A task stopped by hand (mark failed, clear) stops the run: :meth:`on_kill` while blocking,
    the trigger's ``on_kill`` while deferred.
    Either way the task returns ``{"pathspec", "metrics", "bundle"}`` (to XCom; ``bundle``:
    where the run's model bundle is, a :class:`skiff.serve.BundleRef` as a dict, None for a
    flow storing none), never the model, and fails with the flow's error when the flow fails.

    :param flow_file: path of the flow file.
    :param flow_params: the flow's parameters (templated), e.g. the data interval.
    :param run_tags: Metaflow tags of the run (templated).
    :param deferrable: defer while the run is going; default ``[operators] default_deferrable``.
    :param poll_interval: seconds between polls when deferred; default from the training config.
    :param run_timeout: seconds a run may take; default from the training config.
    """

    template_fields: Sequence[str] = ("flow_params", "run_tags")
    template_fields_renderers = {"flow_params": "json"}
    ui_color = "#fff1e0"

    def __init__(
        self,
        *,
        flow_file: str,
        flow_params: dict[str, Any] | None = None,
        run_tags: list[str] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        run_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.flow_file = flow_file
        self.flow_params = flow_params or {}
        self.run_tags = run_tags or []
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.run_timeout = run_timeout

    @cached_property
    def hook(self) -> MetaflowHook:
        return MetaflowHook()

    def execute(self, context: Context) -> dict[str, Any]:
        SkiffWarehouseHook.release_dbt_duckdb()  # the flow opens the warehouse from its own process
        launch = self.hook.launch(self.flow_file, self.flow_params, self.run_tags)
        self.log.info("Launching %s on %s: %s", self.flow_file, self.hook.config.train_on, " ".join(launch.argv()[1:]))
        if not self.deferrable:
            try:
                pathspec = self.hook.run(launch, log=lambda line: self.log.info("%s", line.rstrip()))
            except MetaflowRunFailed as exc:
                raise AirflowException(str(exc)) from None
            return self._summary(pathspec)
        pathspec = self.hook.start(launch)
        timeout = self.run_timeout or self.hook.config.timeout_s
        self.defer(
            trigger=MetaflowRunTrigger(
                pathspec=pathspec,
                env=launch.env,
                flow_file=str(launch.flow_file),
                launcher_pid=self.hook.pid,
                launcher_host=socket.gethostname(),
                poll_interval=self.poll_interval or self.hook.config.poll_interval_s,
                timeout_s=timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout + 300),
        )

    def on_kill(self) -> None:
        """The task was stopped while running the flow (blocking mode): stop the run too, its
        local processes and its Batch jobs. A deferred run is stopped by its trigger's
        ``on_kill``."""
        if self.hook.pid is not None or self.hook.pathspec is not None:
            self.hook.kill(self.flow_file, self.hook.pathspec, self.hook.pid)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "success":
            raise AirflowException(f"Metaflow run {event.get('pathspec')} {event.get('status')}: {event.get('message')}")
        return self._summary(event["pathspec"])

    def _summary(self, pathspec: str) -> dict[str, Any]:
        from skiff.exceptions import ModelLoadError

        metrics = self.hook.metrics(pathspec)
        try:
            bundle = self.hook.bundle(pathspec)
        except ModelLoadError as exc:
            raise AirflowException(f"Run {pathspec}: {exc}") from None
        self.log.info("Run %s done; metrics: %s; bundle: %s", pathspec, metrics, bundle)
        return {"pathspec": pathspec, "metrics": metrics,
                "bundle": bundle.to_dict() if bundle else None}
