"""The end of a release: promote the smoke-tested model to champion, or roll back to the champion.

:class:`ChampionPromoteOperator` records the deployed model in the registry once its smoke
test passed; :class:`EndpointRollbackOperator` (``trigger_rule="one_failed"``) points the
endpoint back at the champion's endpoint config when the deploy or the smoke test failed.
The registry's champion is the model both agree on: the last one that passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from hooks.model_registry import ModelRegistryHook
from hooks.model_server import LocalDeployFailed, LocalModelServerHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from skiff.config import ServingConfig

__all__ = ["ChampionPromoteOperator", "EndpointRollbackOperator"]


class ChampionPromoteOperator(BaseOperator):
    """Record the deployed, smoke-tested model as the champion in the registry.

    :param gate: the gate's XCom (templated): pathspec, metrics, reason, the champion it beat.
    :param deployment: the smoke test's XCom (templated).
    :param config: serving settings; default from env.
    :return: the champion record.
    """

    template_fields: Sequence[str] = ("gate", "deployment")
    template_fields_renderers = {"gate": "json", "deployment": "json"}
    ui_color = "#e6f4ea"

    def __init__(self, *, gate: Any, deployment: Any, config: ServingConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.deployment = deployment
        self.config = config

    @cached_property
    def serving_config(self) -> ServingConfig:
        from skiff.config import ServingConfig

        return self.config or ServingConfig.from_env()

    @cached_property
    def hook(self) -> ModelRegistryHook:
        return ModelRegistryHook(self.serving_config)

    def execute(self, context: Context) -> dict[str, Any]:
        from skiff.exceptions import RegistryError
        from skiff.serve import BundleRef, ChampionRecord

        gate, deployment = dict(self.gate), dict(self.deployment)
        record = ChampionRecord(
            model=deployment["model"], pathspec=deployment["pathspec"],
            metrics=dict(gate.get("metrics") or {}),
            bundle=BundleRef.from_dict(deployment["bundle"]),
            artifact_uri=deployment["artifact_uri"], endpoint_name=deployment["endpoint_name"],
            endpoint_config_name=deployment["endpoint_config_name"],
            model_version=deployment["model_version"], backend=deployment["backend"],
            reason=gate.get("reason", ""))
        try:
            written = self.hook.promote(record, expected_previous=gate.get("champion_pathspec"))
        except RegistryError as exc:
            raise AirflowException(str(exc)) from None
        return written.to_dict()


class EndpointRollbackOperator(BaseOperator):
    """After this run's deploy, smoke test or promote failed, point the endpoint back at the
    champion's config.

    The champion in the registry is the last model that passed its smoke test, so its
    endpoint config is the known-good one; if the endpoint serves it already (the update
    never took), nothing changes. With no champion (a first deploy failed) there is nothing
    to go back to. It reads no XCom, so it works whichever task failed.

    Wire it after the ``watch`` tasks as the teardown of the gate (``as_teardown(setups=gate)``,
    as :func:`taskgroups.release.release_tasks` does): when the gate did not run (a data
    problem upstream: every release task ``upstream_failed``) it does not run either, so a bad
    batch never touches the endpoints (``one_failed`` would fire on ``upstream_failed`` too),
    and the run's state stays that of the release. Without a setup, its default trigger rule
    ``all_done_min_one_success`` with the gate upstream does the first part. When it runs, it
    asks Airflow for the states of ``watch`` in this run and skips itself unless one
    ``failed``.

    :param model: ``intent`` or ``rec``.
    :param watch: task ids of this run whose failure calls for a rollback (deploy tasks,
        smoke test, promote).
    :param config: serving settings; default from env.
    :param check_interval: seconds between endpoint status polls (SageMaker).
    :return: ``{"endpoint_name", "endpoint_config_name", "changed", ...}``; ``changed`` is
        False when nothing needed (or could) be rolled back.
    """

    ui_color = "#fce8e6"

    def __init__(self, *, model: str, watch: Sequence[str], config: ServingConfig | None = None,
                 check_interval: int = 30, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done_min_one_success")
        super().__init__(**kwargs)
        if not watch:
            raise ValueError("watch: name the release tasks whose failure calls for a rollback.")
        self.model = model
        self.watch = tuple(watch)
        self.config = config
        self.check_interval = check_interval

    @cached_property
    def serving_config(self) -> ServingConfig:
        from skiff.config import ServingConfig

        return self.config or ServingConfig.from_env()

    def _failed(self, context: Context) -> list[str]:
        """The ``watch`` tasks that failed in this run (not ``upstream_failed``)."""
        run_id = context["run_id"]
        states = context["ti"].get_task_states(dag_id=self.dag_id, task_ids=list(self.watch),
                                               run_ids=[run_id])
        return sorted(t for t, state in states.get(run_id, {}).items() if state == "failed")

    def execute(self, context: Context) -> dict[str, Any]:
        failed = self._failed(context)
        if not failed:
            raise AirflowSkipException(f"None of {', '.join(self.watch)} failed in this run: "
                                       "the endpoint keeps what it serves.")
        self.log.info("%s failed in this run: rolling back.", ", ".join(failed))
        cfg = self.serving_config
        champion = ModelRegistryHook(cfg).champion(self.model)
        endpoint = cfg.endpoint(self.model)
        if champion is None:
            self.log.warning("No %s champion yet: nothing to roll %s back to.", self.model,
                             endpoint)
            return {"endpoint_name": endpoint, "changed": False}
        target = champion.endpoint_config_name
        if champion.backend == "sagemaker":
            from hooks.sagemaker_endpoint import SageMakerEndpointHook

            hook = SageMakerEndpointHook(aws_conn_id=cfg.aws_conn_id, region_name=cfg.region)
            return hook.restore(endpoint, target, check_interval=self.check_interval)
        local = LocalModelServerHook(cfg)
        # what the server reports, not what the store says (a deploy that timed out may have
        # finished later); the store when no server runs (it serves the store at its start)
        served = local.served(endpoint)
        if served is not None:
            now, version = served.get("endpoint_config_name"), served.get("model_version")
        else:
            record = local.endpoint(endpoint)
            now, version = (record.endpoint_config_name if record else None), None
        if now == target and (served is None or version == champion.model_version):
            self.log.info("Endpoint %s serves %s (%s) already: nothing to roll back.", endpoint,
                          target, version or champion.model_version)
            return {"endpoint_name": endpoint, "endpoint_config_name": target, "changed": False}
        self.log.info("Endpoint %s serves %s (%s), not the champion %s (%s): restoring it.",
                      endpoint, now, version, target, champion.model_version)
        try:
            result = local.rollback(endpoint, target)
        except LocalDeployFailed as exc:
            raise AirflowException(f"Rollback of {endpoint} to {target} failed: {exc}") from None
        return {**result, "changed": True}
