"""The release task group: gate → deploy → smoke test → promote, or roll back.

:func:`release_tasks` wires the release operators for one model after its training task;
the DAG calls it once per model. It lives apart from the operators so that no operator
module imports another and the DAG takes its wiring from here, not from an operator module.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup

from operators.deploy import LocalModelDeployOperator, SageMakerDeployPlanOperator
from operators.gate import ModelGateOperator
from operators.promote import ChampionPromoteOperator, EndpointRollbackOperator
from operators.smoke_test import PredictSmokeTestOperator
from skiff.config import ServingConfig

__all__ = ["release_tasks"]


def release_tasks(model: str, candidate: Any, *, config: ServingConfig | None = None,
                  group_id: str | None = None, model_dir: str | None = None,
                  deferrable: bool = False, smoke_session: str | None = None,
                  check_interval: int = 30) -> TaskGroup:
    """gate → deploy → smoke test → promote, with a rollback when this run's deploy, smoke
    test or promote fails (never for a failure upstream of the gate).

    Builds only operators (no I/O, no boto3 import for the local backend), so it is cheap at
    DAG parse time. The backend follows ``ServingConfig.backend``.

    :param model: ``intent`` or ``rec``.
    :param candidate: the training task's output (``{"pathspec", "metrics", "bundle"}``), e.g.
        ``train_rec.output``.
    :param config: serving settings; default from env.
    :param group_id: task group id; default ``release_<model>``.
    :param model_dir: the bundle folder (templated); default: the candidate's ``bundle``.
    :param deferrable: wait for SageMaker's ``InService`` in the triggerer.
    :param smoke_session: the smoke test's tokens (templated; text joined by commas);
        default: three of the bundle's vocabulary.
    :param check_interval: seconds between SageMaker endpoint status polls, of the deploy
        (``InService``) and of the rollback.
    :return: the task group (``gate_<model>`` is its root).
    """
    cfg = config or ServingConfig.from_env()
    with TaskGroup(group_id or f"release_{model}", prefix_group_id=False,
                   tooltip=f"gate, deploy, smoke-test and promote the {model} model") as group:
        gate = ModelGateOperator(task_id=f"gate_{model}", model=model, candidate=candidate,
                                 config=config,
                                 doc_md="Beat the champion (first run: the baselines) "
                                        "or stop, green.")
        if cfg.backend == "sagemaker":
            from airflow.providers.amazon.aws.operators.sagemaker import (
                SageMakerEndpointConfigOperator,
                SageMakerEndpointOperator,
                SageMakerModelOperator,
            )

            plan = SageMakerDeployPlanOperator(task_id=f"plan_deploy_{model}", model=model,
                                               candidate=gate.output, model_dir=model_dir,
                                               config=config)
            aws = {"aws_conn_id": cfg.aws_conn_id, "region_name": cfg.region}
            create_model = SageMakerModelOperator(task_id=f"create_model_{model}",
                                                  config=plan.output["model_config"], **aws)
            create_config = SageMakerEndpointConfigOperator(
                task_id=f"create_endpoint_config_{model}",
                config=plan.output["endpoint_config_config"], **aws)
            deploy_endpoint = SageMakerEndpointOperator(
                task_id=f"deploy_endpoint_{model}", config=plan.output["endpoint_config"],
                operation="create", deferrable=deferrable, check_interval=check_interval,
                **aws)
            gate >> plan >> create_model >> create_config >> deploy_endpoint
            deployment, deploy_tasks, last = plan.output, [plan, create_model, create_config,
                                                           deploy_endpoint], deploy_endpoint
        else:
            deploy = LocalModelDeployOperator(task_id=f"deploy_{model}", model=model,
                                              candidate=gate.output, model_dir=model_dir,
                                              config=config)
            gate >> deploy
            deployment, deploy_tasks, last = deploy.output, [deploy], deploy
        smoke = PredictSmokeTestOperator(task_id=f"smoke_test_{model}", deployment=deployment,
                                         session=smoke_session, config=config)
        promote = ChampionPromoteOperator(task_id=f"promote_{model}", gate=gate.output,
                                          deployment=smoke.output, config=config)
        watch = [*deploy_tasks, smoke, promote]
        # the teardown of the gate: it runs once the release is done, only if the gate ran (a
        # data problem upstream leaves the endpoints alone), and, as a teardown, does not
        # decide the run's state: a failed deploy fails the run, rolled back or not (it only
        # rolls back when one of `watch` failed, so the run has failed whenever it works)
        rollback = EndpointRollbackOperator(
            task_id=f"rollback_{model}", model=model, watch=[t.task_id for t in watch],
            config=config, check_interval=check_interval).as_teardown(setups=gate)
        last >> smoke >> promote
        watch >> rollback
    return group
