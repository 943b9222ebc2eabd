"""The gate: does the newly trained model beat the champion? A lost comparison is not a failure."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException
from airflow.providers.common.compat.sdk import SkipMixin
from airflow.sdk import BaseOperator

from hooks.metaflow_runner import MetaflowHook, candidate_pathspec
from hooks.model_registry import ModelRegistryHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from skiff.config import ServingConfig

__all__ = ["ModelGateOperator"]


class ModelGateOperator(BaseOperator, SkipMixin):
    """Compare a newly trained model with the champion; deploy it only if it wins.

    The candidate's metrics come from its Metaflow run
    (:class:`~hooks.metaflow_runner.MetaflowHook`, unless the training task's XCom already
    carries them), the champion's from the registry
    (:class:`~hooks.model_registry.ModelRegistryHook`); :func:`skiff.serve.registry.gate_decision`
    decides, and the decision (either way, with its reason and the run) is kept in the
    registry's ``<model>/decisions/`` for the Skiff page. A win returns the decision and lets
    the deploy tasks run. A loss is a decision, not an error: the task succeeds with the
    reason in its log and XCom, and skips the tasks directly downstream (and so everything
    after them), so the run ends green. Missing or malformed metrics fail the task without
    retries.

    :param model: ``intent`` or ``rec``.
    :param candidate: the training task's result (templated): its XCom dict
        ``{"pathspec", "metrics", "bundle"}`` (e.g. ``train_rec.output``) or a pathspec string.
    :param metric: metric to compare; default ``ServingConfig.gate_metric(model)``.
    :param margin: required improvement, in the metric's units; default ``SKIFF_GATE_MARGIN``.
    :param config: serving settings; default :meth:`ServingConfig.from_env` at execute time.
    :return: ``{"promote", "reason", "model", "pathspec", "metric", "candidate", "champion",
        "margin", "against", "champion_pathspec", "reference", "metrics", "bundle"}``;
        ``bundle`` is the candidate's (None when it carried none), handed on to the deploy.
    """

    template_fields: Sequence[str] = ("candidate", "metric", "margin")
    template_fields_renderers = {"candidate": "json"}
    ui_color = "#fff7d6"

    def __init__(self, *, model: str, candidate: Any, metric: str | None = None,
                 margin: float | None = None, config: ServingConfig | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)  # a decision does not change on retry
        super().__init__(**kwargs)
        if model not in ("intent", "rec"):
            raise ValueError(f"model={model!r}: use 'intent' or 'rec'.")
        self.model = model
        self.candidate = candidate
        self.metric = metric
        self.margin = margin
        self.config = config

    @cached_property
    def serving_config(self) -> ServingConfig:
        from skiff.config import ServingConfig

        return self.config or ServingConfig.from_env()

    @cached_property
    def registry_hook(self) -> ModelRegistryHook:
        return ModelRegistryHook(self.serving_config)

    @cached_property
    def metaflow_hook(self) -> MetaflowHook:
        return MetaflowHook()

    def candidate_metrics(self, pathspec: str) -> dict[str, Any]:
        """The candidate's metrics: from the XCom dict if it has them, else from its run."""
        if isinstance(self.candidate, dict) and self.candidate.get("metrics"):
            return dict(self.candidate["metrics"])
        return self.metaflow_hook.metrics(pathspec)

    def execute(self, context: Context) -> dict[str, Any]:
        from skiff.exceptions import DataContractError, SkiffConfigError
        from skiff.serve import gate_decision

        pathspec = candidate_pathspec(self.candidate)
        metric = self.metric or self.serving_config.gate_metric(self.model)
        margin = float(self.serving_config.gate_margin if self.margin in (None, "")
                       else self.margin)
        metrics = self.candidate_metrics(pathspec)
        champion = self.registry_hook.champion(self.model)
        try:
            outcome = gate_decision(metrics, champion, metric, margin, candidate_pathspec=pathspec)
        except (DataContractError, SkiffConfigError) as exc:
            raise AirflowException(f"Cannot gate {pathspec}: {exc}") from None
        bundle = self.candidate.get("bundle") if isinstance(self.candidate, dict) else None
        result = {**outcome.to_dict(), "model": self.model, "pathspec": pathspec,
                  "metrics": metrics, "bundle": bundle}
        self.registry_hook.record_decision(self.model, {
            **outcome.to_dict(), "pathspec": pathspec, "run_id": context.get("run_id"),
            "dag_id": getattr(context.get("dag"), "dag_id", None)})
        if outcome.promote:
            self.log.info("Gate passed for %s: %s", pathspec, outcome.reason)
            return result
        self.log.warning("Gate rejected %s; the champion %s keeps serving. %s", pathspec,
                         outcome.champion_pathspec, outcome.reason)
        context["ti"].xcom_push(key="return_value", value=result)
        self.skip(ti=context["ti"], tasks=self.downstream_list)  # raises: the run ends green
        return result
