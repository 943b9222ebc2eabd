"""What Skiff's training flows share: their data parameters, the lines their steps repeat, and
the environment a launch hands to every step (:class:`forward_run_env`)."""

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from metaflow import FlowMutator, FlowSpec, Parameter, current, environment

#: Names, comma-separated, of the variables the launching task handed to the run (settings and
#: resolved connections, ``MetaflowHook.run_env``): every step gets them, on AWS Batch too.
RUN_ENV = "SKIFF_RUN_ENV"


class RunEnv(Mapping[str, str]):
    """The variables :data:`RUN_ENV` names, read from this process's environment.

    Shown (``str``, ``repr``: how Metaflow records a decorator's attributes in the run's
    ``_graph_info`` artifact and the card) by name only: the values hold credentials.
    """

    def __init__(self) -> None:
        names = [n for n in os.environ.get(RUN_ENV, "").split(",") if n]
        self._vars = {n: os.environ[n] for n in [*names, RUN_ENV] if n in os.environ}

    def __getitem__(self, name: str) -> str:
        return self._vars[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def __repr__(self) -> str:
        return f"<run environment: {', '.join(sorted(self._vars))}>"

    __str__ = __repr__


class forward_run_env(FlowMutator):  # noqa: N801  (used as a decorator, as Metaflow's are)
    """Give every step ``@environment(vars=RunEnv())``: on AWS Batch Metaflow sets exactly the
    ``@environment`` variables in the job's container, nothing else of the launcher's; locally
    the step process inherits them anyway. In the container the mutator runs again and reads
    the same variables back from the job's environment."""

    def mutate(self, mutable_flow: Any) -> None:
        handed = RunEnv()
        if len(handed) > 1:
            for _, step in mutable_flow.steps:
                step.add_decorator(environment, deco_kwargs={"vars": handed})


class TrainingFlow(FlowSpec):
    """Base of ``IntentFlow`` and ``RecFlow``: parameters and helpers, no steps.

    Each flow reads the marts up to its data interval, splits the sessions by time, and
    scores its model, the baselines and the serving champion on the same held-out sessions.
    """

    interval_start = Parameter("interval_start", help="data interval start (ISO 8601), for lineage", default="")
    interval_end = Parameter("interval_end", help="train on sessions started before this time (ISO 8601)", default="")
    max_sessions = Parameter("max_sessions", help="latest sessions to use (0 = all)", default=0, type=int)
    holdout = Parameter("holdout", help="share of the latest sessions held out", default=0.2, type=float)
    seed = Parameter("seed", help="training seed", default=42, type=int)
    full_retrain = Parameter("full_retrain", help="train from scratch even when "
                             "SKIFF_TRAIN_WARM_START=on", default=False, type=bool)

    def read_marts(self) -> tuple[Any, Any]:
        """The marts up to the interval and the held-out cutoff; sets ``data_version``."""
        from skiff.train import read_training_data

        marts, self.data_version, cutoff = read_training_data(
            interval_start=self.interval_start, interval_end=self.interval_end,
            max_sessions=self.max_sessions, holdout=self.holdout)
        return marts, cutoff

    def keep_model(self, fitted: Any, **export: Any) -> None:
        """Keep a fitted model's history and params, and store it with its servable bundle.

        Sets ``keras_path`` and ``bundle`` (a :class:`skiff.serve.BundleRef` as a dict, what
        the Airflow task returns and the deploy resolves). On the S3 datastore (AWS Batch, or
        ``SKIFF_TRAIN_DATASTORE=s3``) the bundle's tarball goes beside the run's data in S3
        (Metaflow's ``DATATOOLS_S3ROOT``): a container's disk goes with it, and the deploy or
        a later run's champion branch may run on another machine.

        :param fitted: :class:`skiff.train.models.TrainResult`.
        :param export: ``kind``, ``vocabulary``, ``max_len`` (and ``k``, ``popular``) of
            :func:`skiff.train.glue.store_model`; the data version goes into the bundle.
        """
        from metaflow.metaflow_config import DATATOOLS_S3ROOT, DEFAULT_DATASTORE

        from skiff.train import store_model

        self.history, self.train_params = fitted.history, fitted.params
        keras_path, bundle = store_model(
            fitted.model, current.flow_name, current.run_id,
            extra={"data_version": self.data_version},
            publish_to=DATATOOLS_S3ROOT if DEFAULT_DATASTORE == "s3" else None, **export)
        self.keras_path, self.bundle = str(keras_path), bundle.to_dict()

    def load_champion(self, model: str) -> Any:
        """The serving champion of ``model``, loaded (None without one); sets ``champion_pathspec``
        and logs where its bundle was read (its folder here, or its tarball)."""
        from skiff.train import load_champion
        from skiff.config import ServingConfig

        champion = load_champion(model, ServingConfig.from_env())
        self.champion_pathspec = champion.record.pathspec if champion else None
        if champion:
            print(f"champion {champion.record.pathspec} read from {champion.source}")
        return champion

    def warm_start(self, model: str) -> Any:
        """The champion to fine-tune (:class:`skiff.train.warm.StartFrom`), or None to train
        from scratch: ``SKIFF_TRAIN_WARM_START`` off, ``full_retrain``, the daily retrain (the
        interval ending at 00:00 UTC), or no champion. Read here, not in the champion branch:
        the branches run in parallel (each reads the registry once)."""
        from skiff.config import ServingConfig, TrainingConfig
        from skiff.train import load_champion, warm

        config = TrainingConfig.from_env()
        if not warm.should_warm_start(config.warm_start, full_retrain=self.full_retrain,
                                      interval_end=self.interval_end or None):
            return None
        start = warm.from_champion(load_champion(model, ServingConfig.from_env()),
                                   config.warm_epochs)
        if start:
            print(f"warm start from the champion {start.pathspec} ({start.epochs} epochs)")
        return start

    def collect(self, inputs: Any, name: str, metric: str, score: Callable[[Any], dict[str, float]],
                show: tuple[str, ...]) -> dict[str, Any]:
        """Join the branches: carry the train branch's artifacts, score every model alike.

        :param inputs: the join step's inputs; each branch set ``outputs``, ``{column: what
            the model predicted on the held-out sessions}``.
        :param name: the trained model's column.
        :param metric: the gate's metric.
        :param score: the task's scoring of one model's outputs on ``self.data``.
        :param show: metrics printed to the log per model (all of them are in the card).
        :return: ``metrics``: the model's scores, the baselines', the champion's (re-scored
            here, with its pathspec), and ``metric`` with ``beats_baselines`` at the top.
        """
        self.merge_artifacts(inputs, include=["data", "data_version", "keras_path", "bundle",
                                              "history", "train_params", "champion_pathspec"])
        scores = {n: score(out) for i in inputs for n, out in i.outputs.items()}
        champion = {n: s for n, s in scores.items() if n.startswith("champion ")}
        baselines = {n: s for n, s in scores.items() if n != name and n not in champion}
        best = max(s[metric] for s in baselines.values())
        metrics = {"model": scores[name], "baselines": baselines, metric: scores[name][metric],
                   f"best_baseline_{metric}": best, "beats_baselines": scores[name][metric] > best}
        for values in champion.values():
            metrics["champion"] = {"pathspec": self.champion_pathspec, **values}
        self.report(scores, show)
        return metrics

    def report(self, scores: dict[str, dict[str, float]], show: tuple[str, ...]) -> None:
        """The run's card (its data, every model's metrics side by side) and a log summary."""
        from metaflow.cards import Markdown, Table

        names = list(scores)
        for n in names:
            print(f"{n:>40}: " + "  ".join(f"{key} {scores[n][key]:.4f}" for key in show))
        current.card.append(Markdown(f"# {current.flow_name} {current.run_id}\n"
                                     f"data `{self.data_version['id']}`: {self.data.info}"))
        current.card.append(Table([[key] + [f"{scores[n].get(key, float('nan')):.4f}" for n in names]
                                   for key in scores[names[0]]], headers=["metric"] + names))

    def log_run(self, tags: list[str], **params: Any) -> None:
        """Log params, data version, metrics and history to Weights & Biases."""
        from skiff.train import log_training_run

        log_training_run(current.pathspec, params={**self.train_params, "data_version": self.data_version,
                                                   "holdout": self.holdout, **params},
                         metrics=self.metrics, history=self.history, tags=tags)
