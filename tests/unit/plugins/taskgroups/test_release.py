"""The release task group: its tasks and their wiring, for the local and the SageMaker backend.

Building it runs nothing: the operators' behaviour is tested in
``tests/unit/plugins/test_serving_operators.py``, and the task group in real DAG runs in
``tests/integration/test_release_dag.py`` (local) and ``test_sagemaker_moto.py`` (SageMaker).
"""

from __future__ import annotations

from skiff.config import ServingConfig
from taskgroups.release import release_tasks


def test_release_tasks_local_and_sagemaker_graphs() -> None:
    from airflow.sdk import DAG

    from operators.metaflow_run import MetaflowRunOperator

    with DAG("release_local", schedule=None) as dag:
        train = MetaflowRunOperator(task_id="train_rec", flow_file="x.py")
        release_tasks("rec", train.output, config=ServingConfig())
    tasks = dag.task_dict
    assert set(tasks) == {"train_rec", "gate_rec", "deploy_rec", "smoke_test_rec", "promote_rec",
                          "rollback_rec"}
    assert tasks["gate_rec"].upstream_task_ids == {"train_rec"}
    assert tasks["promote_rec"].upstream_task_ids == {"gate_rec", "smoke_test_rec"}
    assert tasks["rollback_rec"].upstream_task_ids == {"gate_rec", "deploy_rec", "smoke_test_rec",
                                                       "promote_rec"}
    # the gate's teardown, not one_failed (which fires on upstream_failed too): a bad batch
    # must not roll back, and the rollback does not decide the run's state
    assert tasks["rollback_rec"].is_teardown and tasks["gate_rec"].is_setup
    assert tasks["rollback_rec"].trigger_rule == "all_done_setup_success"
    assert tasks["rollback_rec"].watch == ("deploy_rec", "smoke_test_rec", "promote_rec")
    assert tasks["rollback_rec"].check_interval == 30

    aws = ServingConfig(backend="sagemaker", bucket="b", role_arn="arn:aws:iam::1:role/r")
    with DAG("release_aws", schedule=None) as dag:
        train = MetaflowRunOperator(task_id="train_rec", flow_file="x.py")
        release_tasks("rec", train.output, config=aws, deferrable=True, check_interval=5)
    tasks = dag.task_dict
    assert [type(tasks[t]).__name__ for t in ("create_model_rec", "create_endpoint_config_rec",
                                              "deploy_endpoint_rec")] == \
        ["SageMakerModelOperator", "SageMakerEndpointConfigOperator", "SageMakerEndpointOperator"]
    assert tasks["deploy_endpoint_rec"].deferrable is True
    assert tasks["deploy_endpoint_rec"].check_interval == tasks["rollback_rec"].check_interval == 5
    assert tasks["smoke_test_rec"].upstream_task_ids == {"deploy_endpoint_rec", "plan_deploy_rec"}
    assert tasks["rollback_rec"].upstream_task_ids == {
        "gate_rec", "plan_deploy_rec", "create_model_rec", "create_endpoint_config_rec",
        "deploy_endpoint_rec", "smoke_test_rec", "promote_rec"}
