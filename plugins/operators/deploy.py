"""Deploy a gated model: to the local model server, or (planned here) to a SageMaker endpoint.

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
branch uses too. The deploy dict's ``bundle`` is read by the smoke test and the promote.

- local: :class:`LocalModelDeployOperator` copies the bundle into the local control plane and
  swaps it into the running model server (:class:`~hooks.model_server.LocalModelServerHook`);
- SageMaker: :class:`SageMakerDeployPlanOperator` copies the run's tarball to S3 and hands
  the Amazon provider's ``SageMakerModelOperator`` → ``SageMakerEndpointConfigOperator`` →
  ``SageMakerEndpointOperator`` their configs through XCom; they run as they are.

:func:`candidate_bundle` says where the gate's candidate's bundle is. Then
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

from hooks.metaflow_runner import MetaflowHook, candidate_pathspec
from hooks.model_server import LocalDeployFailed, LocalModelServerHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from hooks.sagemaker_endpoint import SageMakerEndpointHook
    from skiff.config import ServingConfig
    from skiff.serve import BundleRef

__all__ = [
    "LocalModelDeployOperator",
    "SageMakerDeployPlanOperator",
    "candidate_bundle",
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
