"""Deploy a gated model, smoke-test it through the ``/predict`` handler, promote or roll back.

Two backends, one result shape (the *deployment* dict), so nothing downstream can tell them
apart::

    {"backend": "local" | "sagemaker", "model": "rec", "pathspec": "RecFlow/12",
     "model_version": "RecFlow/12", "endpoint_name": "skiff-rec",
     "endpoint_config_name": "skiff-rec-recflow-12-20260101t1200",
     "previous_endpoint_config_name": "skiff-rec-recflow-9-..." | None,
     "model_name": ..., "artifact_uri": <what the endpoint serves>,
     "bundle": {"pathspec", "folder", "tarball"},  # skiff.serve.BundleRef, as served
     "operation": "create" | "update", "status": "InService" | "Planned"}

The bundle comes from the candidate (the training task's XCom ``bundle``, handed on by the
gate) and is found by :func:`skiff.serve.bundle.resolve`, the resolver the flows' champion
branch uses too.

- local: :class:`LocalModelDeployOperator` copies the bundle into the local control plane and
  swaps it into the running model server (:class:`~hooks.model_server.LocalModelServerHook`);
- SageMaker: :class:`SageMakerDeployPlanOperator` copies the run's tarball to S3 and hands
  the Amazon provider's ``SageMakerModelOperator`` → ``SageMakerEndpointConfigOperator`` →
  ``SageMakerEndpointOperator`` their configs through XCom; they run as they are.

Then :class:`PredictSmokeTestOperator` asks the new model through the very Lambda handler,
:class:`ChampionPromoteOperator` records the champion, and :class:`EndpointRollbackOperator`
(``trigger_rule="one_failed"``) points the endpoint back at the champion's endpoint config
when anything failed. :func:`release_tasks` wires the lot in a task group.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from hooks.model_server import LocalDeployFailed, LocalModelServerHook
from hooks.model_registry import ModelRegistryHook
from operators.gate import candidate_pathspec

if TYPE_CHECKING:
    from airflow.sdk import Context, TaskGroup

    from hooks.sagemaker_endpoint import SageMakerEndpointHook
    from skiff.config import ServingConfig
    from skiff.serve import BundleRef

__all__ = [
    "LocalModelDeployOperator",
    "SageMakerDeployPlanOperator",
    "PredictSmokeTestOperator",
    "ChampionPromoteOperator",
    "EndpointRollbackOperator",
    "release_tasks",
    "resource_name",
]


def resource_name(endpoint_name: str, pathspec: str, now: datetime | None = None) -> str:
    """A unique SageMaker-valid name for a deploy's model and endpoint config.

    ``<endpoint>-<flow>-<run>-<UTC time>``, at most 63 letters, digits and hyphens.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dt%H%M%S")
    run = re.sub(r"[^a-z0-9]+", "-", pathspec.lower()).strip("-")
    room = 63 - len(endpoint_name) - len(stamp) - 2
    return f"{endpoint_name}-{run[-room:].strip('-')}-{stamp}"


def _config(config: ServingConfig | None) -> ServingConfig:
    from skiff.config import ServingConfig

    return config or ServingConfig.from_env()


def candidate_bundle(candidate: Any, pathspec: str, model_dir: str | None = None) -> BundleRef:
    """Where a candidate's bundle is: ``model_dir`` if given, else its XCom's ``bundle``.

    A bare pathspec (or an XCom without a bundle) is looked up in its run's ``bundle``
    artifact through :class:`~hooks.metaflow_runner.MetaflowHook`.

    :raises AirflowException: the run recorded no bundle.
    :raises ModelLoadError: the recorded bundle is malformed.
    """
    from skiff.serve import BundleRef

    if model_dir:
        return BundleRef(pathspec, folder=str(model_dir))
    doc = candidate.get("bundle") if isinstance(candidate, dict) else None
    if doc:
        return BundleRef.from_dict(doc)
    from hooks.metaflow_runner import MetaflowHook

    ref = MetaflowHook().bundle(pathspec)
    if ref is None:
        raise AirflowException(f"Run {pathspec} recorded no model bundle: its flow must store "
                               "one (TrainingFlow.keep_model -> skiff.train.glue.store_model), "
                               "or pass model_dir.")
    return ref


class _DeployBase(BaseOperator):
    """Shared arguments: which model, which candidate (the gate's XCom), which bundle."""

    template_fields: Sequence[str] = ("candidate", "model_dir")
    template_fields_renderers = {"candidate": "json"}

    def __init__(self, *, model: str, candidate: Any, model_dir: str | None = None,
                 config: ServingConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if model not in ("intent", "rec"):
            raise ValueError(f"model={model!r}: use 'intent' or 'rec'.")
        self.model = model
        self.candidate = candidate
        self.model_dir = model_dir
        self.config = config

    @cached_property
    def serving_config(self) -> ServingConfig:
        return _config(self.config)

    @cached_property
    def s3_client(self) -> Any:
        """boto3's S3 client on the config's AWS connection (for bundles on S3)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.serving_config.aws_conn_id).get_conn()

    @staticmethod
    def workdir(pathspec: str) -> Path:
        """Where the deploy unpacks or packs a run's bundle, apart from what the run wrote."""
        from skiff.train import models_dir

        return models_dir(*pathspec.split("/")) / "deploy"

    def _bundle(self) -> tuple[str, BundleRef, dict[str, Any]]:
        """The candidate's pathspec, its bundle (``folder`` on this machine) and metadata."""
        from dataclasses import replace

        from skiff.exceptions import ModelLoadError
        from skiff.serve import bundle, read_bundle_meta

        pathspec = candidate_pathspec(self.candidate)
        try:
            ref = candidate_bundle(self.candidate, pathspec, self.model_dir)
            folder = bundle.resolve(ref, self.workdir(pathspec), s3_client=self.s3_client
                                    if ref.tarball.startswith("s3://") else None)
            meta = read_bundle_meta(folder)
        except ModelLoadError as exc:
            raise AirflowException(str(exc)) from None
        if meta.get("kind") != self.model:
            raise AirflowException(f"{folder} holds a {meta.get('kind')!r} model, "
                                   f"not {self.model!r}.")
        return pathspec, replace(ref, folder=str(folder)), meta


class LocalModelDeployOperator(_DeployBase):
    """Deploy a bundle to the local model server (the embedded default of the deploy stage).

    Creates a local endpoint config (a copy of the bundle), swaps it into the running
    ``skiff serve`` (which refuses a model that does not load, leaving the old one serving),
    and points the endpoint at it. With no server running, the model is loaded once here to
    prove it works and the server loads it at its next start.

    :param model: ``intent`` or ``rec``.
    :param candidate: the gate's XCom (templated), or a pathspec.
    :param model_dir: the bundle folder (templated); default: the candidate's ``bundle``.
    :param config: serving settings; default :meth:`ServingConfig.from_env`.
    :param base_url: model server URL; default the config's host and port.
    :return: the deployment dict (see the module docstring).
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url

    @cached_property
    def hook(self) -> LocalModelServerHook:
        return LocalModelServerHook(self.serving_config, base_url=self.base_url)

    def execute(self, context: Context) -> dict[str, Any]:
        from dataclasses import replace

        pathspec, bundle, meta = self._bundle()
        endpoint = self.serving_config.endpoint(self.model)
        name = resource_name(endpoint, pathspec)
        self.log.info("Deploying %s (%s) to local endpoint %s as %s.", pathspec, bundle.folder,
                      endpoint, name)
        try:
            result = self.hook.deploy(endpoint, bundle.folder, name)
        except LocalDeployFailed as exc:
            raise AirflowException(f"Deploy of {pathspec} failed; {endpoint} keeps serving its "
                                   f"model: {exc}") from None
        return {"backend": "local", "model": self.model, "pathspec": pathspec,
                "model_version": meta["version"], "endpoint_name": endpoint,
                "endpoint_config_name": name,
                "previous_endpoint_config_name": result["previous_endpoint_config_name"],
                "model_name": name, "artifact_uri": result["model_dir"],
                "bundle": replace(bundle, folder=result["model_dir"]).to_dict(),
                "operation": "update" if result["previous_endpoint_config_name"] else "create",
                "status": "InService"}


class SageMakerDeployPlanOperator(_DeployBase):
    """Put the run's tarball in the artifact bucket and write the provider operators' configs.

    The tarball the run packed is uploaded (or copied within S3 when it is there already);
    only a bare bundle folder (``model_dir``) is packed here.

    Pushes three XComs that ``SageMakerModelOperator``, ``SageMakerEndpointConfigOperator`` and
    ``SageMakerEndpointOperator`` take as their ``config`` (``model_config``,
    ``endpoint_config_config`` and ``endpoint_config``), and returns the deployment dict
    (status ``Planned``) with the endpoint config serving now, the one to roll back to.

    :param model: ``intent`` or ``rec``.
    :param candidate: the gate's XCom (templated), or a pathspec.
    :param model_dir: the bundle folder (templated); default: the candidate's ``bundle``.
    :param config: serving settings (bucket, role, image, instance type); default from env.
    :return: the deployment dict.
    """

    ui_color = "#fde9d9"

    @cached_property
    def hook(self) -> SageMakerEndpointHook:
        from hooks.sagemaker_endpoint import SageMakerEndpointHook

        return SageMakerEndpointHook(aws_conn_id=self.serving_config.aws_conn_id,
                                     region_name=self.serving_config.region)

    def execute(self, context: Context) -> dict[str, Any]:
        from skiff.serve import bundle

        cfg = self.serving_config
        if not (cfg.bucket and cfg.role_arn):
            raise AirflowException("SageMaker deploys need SKIFF_ARTIFACT_BUCKET and "
                                   "SKIFF_SAGEMAKER_ROLE_ARN.")
        pathspec, ref, meta = self._bundle()
        endpoint = cfg.endpoint(self.model)
        name = resource_name(endpoint, pathspec)
        current = self.hook.current_config(endpoint)
        artifact = f"s3://{cfg.bucket}/{cfg.prefix}/models/{self.model}/{name}/{bundle.TARBALL}"
        self.log.info("Uploading %s to %s.", ref.tarball or ref.folder, artifact)
        shipped = bundle.upload(ref, artifact, self.workdir(pathspec), s3_client=self.s3_client)
        tags = [{"Key": "skiff:pathspec", "Value": pathspec},
                {"Key": "skiff:model", "Value": self.model}]
        ti = context["ti"]
        ti.xcom_push(key="model_config", value={
            "ModelName": name, "ExecutionRoleArn": cfg.role_arn, "Tags": tags,
            "PrimaryContainer": {"Image": cfg.image, "ModelDataUrl": artifact,
                                 "Environment": {"SKIFF_MODEL_VERSION": meta["version"]}}})
        ti.xcom_push(key="endpoint_config_config", value={
            "EndpointConfigName": name, "Tags": tags,
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name,
                                    "InitialInstanceCount": cfg.instance_count,
                                    "InstanceType": cfg.instance_type}]})
        ti.xcom_push(key="endpoint_config", value={"EndpointName": endpoint,
                                                   "EndpointConfigName": name})
        self.log.info("Planned %s of %s: %s -> %s.", "update" if current else "create",
                      endpoint, current, name)
        return {"backend": "sagemaker", "model": self.model, "pathspec": pathspec,
                "model_version": meta["version"], "endpoint_name": endpoint,
                "endpoint_config_name": name, "previous_endpoint_config_name": current,
                "model_name": name, "artifact_uri": artifact, "bundle": shipped.to_dict(),
                "operation": "update" if current else "create", "status": "Planned"}


class PredictSmokeTestOperator(BaseOperator):
    """Ask the freshly deployed model one question through the ``/predict`` Lambda handler.

    Runs ``include/lambda/handler.py`` in the task with the backend's runtime client (boto3's
    ``sagemaker-runtime``, or the local server's), checks a 200 answer from the deployed
    version, and on SageMaker that the endpoint really serves the new endpoint config (a
    failed update leaves it on the old one). Fails otherwise, so the rollback runs.

    :param deployment: the deploy task's XCom (templated).
    :param session: tokens to ask with; default: three of the bundle's vocabulary.
    :param config: serving settings; default from env.
    :return: the deployment dict with ``status`` ``InService`` and ``smoke`` (the answer).
    """

    template_fields: Sequence[str] = ("deployment", "session")
    template_fields_renderers = {"deployment": "json"}
    ui_color = "#e8f0fe"

    def __init__(self, *, deployment: Any, session: list[str] | None = None,
                 config: ServingConfig | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 1)
        super().__init__(**kwargs)
        self.deployment = deployment
        self.session = session
        self.config = config

    @cached_property
    def serving_config(self) -> ServingConfig:
        return _config(self.config)

    def runtime_client(self, deployment: dict[str, Any]) -> Any:
        """The runtime client of the deployment's backend."""
        if deployment["backend"] == "sagemaker":
            from hooks.sagemaker_endpoint import SageMakerEndpointHook

            hook = SageMakerEndpointHook(aws_conn_id=self.serving_config.aws_conn_id,
                                         region_name=self.serving_config.region)
            serving = hook.describe_endpoint(deployment["endpoint_name"])
            if serving["EndpointConfigName"] != deployment["endpoint_config_name"] or \
                    serving["EndpointStatus"] != "InService":
                raise AirflowException(
                    f"Endpoint {deployment['endpoint_name']} is {serving['EndpointStatus']} on "
                    f"{serving['EndpointConfigName']}, not on {deployment['endpoint_config_name']}"
                    f": the update did not take "
                    f"({serving.get('FailureReason', 'no reason given')}).")
            return hook.runtime
        return LocalModelServerHook(self.serving_config).runtime_client()

    def _session(self, deployment: dict[str, Any]) -> list[str]:
        if self.session:
            return list(self.session)
        if deployment["model"] == "intent":
            return ["view", "detail", "add"]
        from skiff.serve import read_bundle_meta

        return list(read_bundle_meta(deployment["bundle"]["folder"])["vocabulary"][2:5])

    def execute(self, context: Context) -> dict[str, Any]:
        from urllib.parse import urlencode

        from skiff.serve import load_local_adapter

        deployment = dict(self.deployment)
        handler = load_local_adapter().load_handler()
        client = self.runtime_client(deployment)
        settings = handler.Settings({**self.serving_config.lambda_environment()})
        query = urlencode({"session": ",".join(self._session(deployment)),
                           "model": deployment["model"]})
        answer = handler.handle(handler.proxy_event("/predict", query), None, client=client,
                                settings=settings)
        body = answer["body"]
        self.log.info("GET /predict?%s -> %s %s", query, answer["statusCode"], body[:500])
        doc = json.loads(body)
        if answer["statusCode"] != 200:
            raise AirflowException(f"Smoke test of {deployment['endpoint_name']} failed: "
                                   f"{answer['statusCode']} {doc.get('message')}")
        if doc.get("model_version") != deployment["model_version"]:
            raise AirflowException(f"Endpoint {deployment['endpoint_name']} answered with model "
                                   f"{doc.get('model_version')!r}, not the deployed "
                                   f"{deployment['model_version']!r}.")
        return {**deployment, "status": "InService", "smoke": doc}


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
    def hook(self) -> ModelRegistryHook:
        return ModelRegistryHook(_config(self.config))

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
    """After a failed deploy or smoke test, point the endpoint back at the champion's config.

    The champion in the registry is the last model that passed its smoke test, so its
    endpoint config is the known-good one; if the endpoint serves it already (the update
    never took), nothing changes. With no champion (a first deploy failed) there is nothing
    to go back to. Wire it with ``trigger_rule="one_failed"`` after deploy and smoke test; it
    reads no XCom, so it works whichever task failed.

    :param model: ``intent`` or ``rec``.
    :param config: serving settings; default from env.
    :param check_interval: seconds between endpoint status polls (SageMaker).
    :return: ``{"endpoint_name", "endpoint_config_name", "changed", ...}``; ``changed`` is
        False when nothing needed (or could) be rolled back.
    """

    ui_color = "#fce8e6"

    def __init__(self, *, model: str, config: ServingConfig | None = None,
                 check_interval: int = 30, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "one_failed")
        super().__init__(**kwargs)
        self.model = model
        self.config = config
        self.check_interval = check_interval

    @cached_property
    def serving_config(self) -> ServingConfig:
        return _config(self.config)

    def execute(self, context: Context) -> dict[str, Any]:
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
        record = local.endpoint(endpoint)
        if record is not None and record.endpoint_config_name == target:
            self.log.info("Endpoint %s serves %s already: nothing to roll back.", endpoint, target)
            return {"endpoint_name": endpoint, "endpoint_config_name": target, "changed": False}
        try:
            result = local.rollback(endpoint, target)
        except LocalDeployFailed as exc:
            raise AirflowException(f"Rollback of {endpoint} to {target} failed: {exc}") from None
        return {**result, "changed": True}


def release_tasks(model: str, candidate: Any, *, config: ServingConfig | None = None,
                  group_id: str | None = None, model_dir: str | None = None,
                  deferrable: bool = False) -> TaskGroup:
    """gate → deploy → smoke test → promote, with a rollback when deploy or smoke test fails.

    Builds only operators (no I/O, no boto3 import for the local backend), so it is cheap at
    DAG parse time. The backend follows ``ServingConfig.backend``.

    :param model: ``intent`` or ``rec``.
    :param candidate: the training task's output (``{"pathspec", "metrics", "bundle"}``), e.g.
        ``train_rec.output``.
    :param config: serving settings; default from env.
    :param group_id: task group id; default ``release_<model>``.
    :param model_dir: the bundle folder (templated); default: the candidate's ``bundle``.
    :param deferrable: wait for SageMaker's ``InService`` in the triggerer.
    :return: the task group (``gate_<model>`` is its root).
    """
    from airflow.sdk import TaskGroup

    from operators.gate import ModelGateOperator

    cfg = _config(config)
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
                operation="create", deferrable=deferrable, check_interval=30, **aws)
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
                                         config=config)
        promote = ChampionPromoteOperator(task_id=f"promote_{model}", gate=gate.output,
                                          deployment=smoke.output, config=config)
        rollback = EndpointRollbackOperator(task_id=f"rollback_{model}", model=model,
                                            config=config)
        last >> smoke >> promote
        [*deploy_tasks, smoke] >> rollback
    return group
