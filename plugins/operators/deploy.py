"""Deploy a gated model: to the local model server, or (planned here) to a SageMaker endpoint.

Two backends, one result shape (the *deployment* dict), so nothing downstream can tell them
apart::

    {"backend": "local" | "sagemaker", "model": "rec", "pathspec": "RecFlow/12",
     "model_version": "RecFlow/12", "endpoint_name": "skiff-rec",
     "endpoint_config_name": "skiff-rec-recflow-12-20260101t1200",
     "previous_endpoint_config_name": "skiff-rec-recflow-9-..." | None,
     "model_name": ..., "model_uri": <bundle folder>, "artifact_uri": <what the endpoint serves>,
     "operation": "create" | "update", "status": "InService" | "Planned"}

- local: :class:`LocalModelDeployOperator` copies the bundle into the local control plane and
  swaps it into the running model server (:class:`~hooks.model_server.LocalModelServerHook`);
- SageMaker: :class:`SageMakerDeployPlanOperator` uploads the bundle's tarball to S3 and hands
  the Amazon provider's ``SageMakerModelOperator`` → ``SageMakerEndpointConfigOperator`` →
  ``SageMakerEndpointOperator`` their configs through XCom; they run as they are.

:func:`resolve_bundle` finds the bundle of the gate's candidate run. Then
:class:`~operators.smoke_test.PredictSmokeTestOperator` asks the new model through the very
Lambda handler, and :mod:`operators.promote` records the champion or rolls the endpoint back;
:func:`taskgroups.release.release_tasks` wires the lot in a task group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from hooks.metaflow_runner import candidate_pathspec
from hooks.model_server import LocalDeployFailed, LocalModelServerHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from hooks.sagemaker_endpoint import SageMakerEndpointHook
    from skiff.config import ServingConfig

__all__ = [
    "LocalModelDeployOperator",
    "SageMakerDeployPlanOperator",
    "resolve_bundle",
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


def resolve_bundle(pathspec: str, model_dir: str | None) -> str:
    """The bundle folder of a run: ``model_dir`` if given, else from the run's artifacts.

    Reads the run through :class:`~hooks.metaflow_runner.MetaflowHook`: the bundle folder the
    flow wrote (``model_uri["bundle_path"]``) when this machine has it, else the run's
    ``bundle_tar`` artifact (a run on Batch, whose folder stayed in its container) unpacked
    under ``$SKIFF_HOME/models/<flow>/<run>/bundle``.
    """
    if model_dir:
        return str(model_dir)
    from hooks.metaflow_runner import MetaflowHook
    from skiff.serve import unpack_bundle
    from skiff.train import models_dir

    data = MetaflowHook().client.Run(pathspec).data
    uri = getattr(data, "model_uri", None)
    bundle = uri.get("bundle_path") if isinstance(uri, dict) else None
    if bundle and (Path(bundle) / "code").is_dir():
        return str(bundle)
    packed = getattr(data, "bundle_tar", None)
    if not packed:
        raise AirflowException(f"Run {pathspec} recorded no model bundle (model_uri={uri!r}, no "
                               "bundle_tar artifact): its flow must call "
                               "skiff.train.glue.store_model, or pass model_dir.")
    return str(unpack_bundle(packed, models_dir(*pathspec.split("/")) / "bundle"))


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

    def _bundle(self) -> tuple[str, str, dict[str, Any]]:
        from skiff.exceptions import ModelLoadError
        from skiff.serve import read_bundle_meta

        pathspec = candidate_pathspec(self.candidate)
        bundle = resolve_bundle(pathspec, self.model_dir)
        try:
            meta = read_bundle_meta(bundle)
        except ModelLoadError as exc:
            raise AirflowException(str(exc)) from None
        if meta.get("kind") != self.model:
            raise AirflowException(f"{bundle} holds a {meta.get('kind')!r} model, "
                                   f"not {self.model!r}.")
        return pathspec, bundle, meta


class LocalModelDeployOperator(_DeployBase):
    """Deploy a bundle to the local model server (the embedded default of the deploy stage).

    Creates a local endpoint config (a copy of the bundle), swaps it into the running
    ``skiff serve`` (which refuses a model that does not load, leaving the old one serving),
    and points the endpoint at it. With no server running, the model is loaded once here to
    prove it works and the server loads it at its next start.

    :param model: ``intent`` or ``rec``.
    :param candidate: the gate's XCom (templated), or a pathspec.
    :param model_dir: the bundle folder (templated); default: the run's ``model_uri``.
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
        pathspec, bundle, meta = self._bundle()
        endpoint = self.serving_config.endpoint(self.model)
        name = resource_name(endpoint, pathspec)
        self.log.info("Deploying %s (%s) to local endpoint %s as %s.", pathspec, bundle,
                      endpoint, name)
        try:
            result = self.hook.deploy(endpoint, bundle, name)
        except LocalDeployFailed as exc:
            raise AirflowException(f"Deploy of {pathspec} failed; {endpoint} keeps serving its "
                                   f"model: {exc}") from None
        return {"backend": "local", "model": self.model, "pathspec": pathspec,
                "model_version": meta["version"], "endpoint_name": endpoint,
                "endpoint_config_name": name,
                "previous_endpoint_config_name": result["previous_endpoint_config_name"],
                "model_name": name, "model_uri": bundle, "artifact_uri": result["model_dir"],
                "operation": "update" if result["previous_endpoint_config_name"] else "create",
                "status": "InService"}


class SageMakerDeployPlanOperator(_DeployBase):
    """Upload the bundle's tarball to S3 and write the configs of the provider's operators.

    Pushes three XComs that ``SageMakerModelOperator``, ``SageMakerEndpointConfigOperator`` and
    ``SageMakerEndpointOperator`` take as their ``config`` (``model_config``,
    ``endpoint_config_config`` and ``endpoint_config``), and returns the deployment dict
    (status ``Planned``) with the endpoint config serving now, the one to roll back to.

    :param model: ``intent`` or ``rec``.
    :param candidate: the gate's XCom (templated), or a pathspec.
    :param model_dir: the bundle folder (templated); default: the run's ``model_uri``.
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
        cfg = self.serving_config
        if not (cfg.bucket and cfg.role_arn):
            raise AirflowException("SageMaker deploys need SKIFF_ARTIFACT_BUCKET and "
                                   "SKIFF_SAGEMAKER_ROLE_ARN.")
        pathspec, bundle, meta = self._bundle()
        endpoint = cfg.endpoint(self.model)
        name = resource_name(endpoint, pathspec)
        current = self.hook.current_config(endpoint)
        key = f"{cfg.prefix}/models/{self.model}/{name}/model.tar.gz"
        self.log.info("Uploading %s to s3://%s/%s.", bundle, cfg.bucket, key)
        self.hook.tar_and_s3_upload(bundle, key, cfg.bucket)
        artifact = f"s3://{cfg.bucket}/{key}"
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
                "model_name": name, "model_uri": bundle, "artifact_uri": artifact,
                "operation": "update" if current else "create", "status": "Planned"}
