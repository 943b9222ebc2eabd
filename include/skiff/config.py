"""Skiff's configuration: the one place every setting is read.

One frozen dataclass per concern, like Cosmos's config objects. Each field has a
default and names the environment variable that overrides it; ``from_env()``
reads the environment (cheap, no network). Secrets never live here: they stay in
Airflow Connections (``snowflake_default``, ``aws_default``, ``slack_alerts``).
The README's configuration table lists every variable below.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from skiff.exceptions import SkiffConfigError
from skiff.times import parse_time

__all__ = [
    "REPO_ROOT",
    "skiff_home",
    "WarehouseConfig",
    "ReplayConfig",
    "DbtConfig",
    "ValidationConfig",
    "TrainingConfig",
    "ServingConfig",
    "AlertsConfig",
    "SkiffConfig",
    "IngestConfig",
]

#: Root of the Skiff checkout (or of the image's /opt/airflow), found from this file.
REPO_ROOT = Path(__file__).resolve().parents[2]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SkiffConfigError(f"{name}={raw!r} is not a boolean; use one of true/false, on/off, 1/0.")


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SkiffConfigError(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise SkiffConfigError(f"{name}={value} must be >= {minimum}.")
    return value


def _env_float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SkiffConfigError(f"{name}={raw!r} is not a number.") from None
    if not value >= minimum:  # also rejects nan
        raise SkiffConfigError(f"{name}={value} must be >= {minimum}.")
    return value


def _env_time(name: str, default: str) -> datetime:
    raw = os.environ.get(name, default)
    try:
        return parse_time(raw)
    except ValueError as err:
        raise SkiffConfigError(f"{name}={err}") from None


def skiff_home() -> Path:
    """Skiff's working folder (warehouse file, replay source, reports).

    ``SKIFF_HOME``, default ``.skiff`` under the current directory.
    """
    return Path(_env("SKIFF_HOME", ".skiff")).expanduser().resolve()


@dataclass(frozen=True)
class WarehouseConfig:
    """Where the raw log and the dbt models live.

    :param backend: ``duckdb`` (embedded default) or ``snowflake``. Env ``SKIFF_WAREHOUSE``.
    :param duckdb_path: DuckDB file. Env ``SKIFF_DUCKDB_PATH``, default ``$SKIFF_HOME/warehouse.duckdb``.
    :param snowflake_conn_id: Airflow connection of the Snowflake account.
        Env ``SKIFF_SNOWFLAKE_CONN_ID``, default ``snowflake_default``.
    :param raw_schema: schema of the append-only raw log. Env ``SKIFF_RAW_SCHEMA``, default ``raw``.
    :param marts_schema: schema of the dbt marts. Env ``SKIFF_MARTS_SCHEMA``, default ``marts``.
    """

    backend: str = "duckdb"
    duckdb_path: Path = field(default_factory=lambda: skiff_home() / "warehouse.duckdb")
    snowflake_conn_id: str = "snowflake_default"
    raw_schema: str = "raw"
    marts_schema: str = "marts"

    BACKENDS = ("duckdb", "snowflake")

    def __post_init__(self) -> None:
        if self.backend not in self.BACKENDS:
            raise SkiffConfigError(
                f"SKIFF_WAREHOUSE={self.backend!r} is not supported; use one of {self.BACKENDS}."
            )
        for name in ("raw_schema", "marts_schema"):
            value = getattr(self, name)
            if not value.isidentifier():
                raise SkiffConfigError(
                    f"SKIFF_{name.upper()}={value!r} is not a valid schema name (letters, digits, _)."
                )

    @classmethod
    def from_env(cls) -> WarehouseConfig:
        return cls(
            backend=_env("SKIFF_WAREHOUSE", "duckdb").lower(),
            duckdb_path=Path(
                _env("SKIFF_DUCKDB_PATH", str(skiff_home() / "warehouse.duckdb"))
            ).resolve(),
            snowflake_conn_id=_env("SKIFF_SNOWFLAKE_CONN_ID", "snowflake_default"),
            raw_schema=_env("SKIFF_RAW_SCHEMA", "raw"),
            marts_schema=_env("SKIFF_MARTS_SCHEMA", "marts"),
        )


@dataclass(frozen=True)
class ReplayConfig:
    """The embedded replay source: generated files the hourly ``ingest`` task slices by interval.

    :param enabled: run the ``ingest`` task. Env ``SKIFF_REPLAY``, default on.
    :param source_dir: folder of generated files. Env ``SKIFF_REPLAY_DIR``,
        default ``$SKIFF_HOME/source``.
    :param sessions: sessions ``make run`` generates. Env ``SKIFF_SAMPLE_SESSIONS``, default 20000.
    :param span_hours: hours of history the sample covers, ending now.
        Env ``SKIFF_SAMPLE_SPAN_HOURS``, default 72.
    :param seed: generator seed. Env ``SKIFF_SEED``, default 42.
    """

    enabled: bool = True
    source_dir: Path = field(default_factory=lambda: skiff_home() / "source")
    sessions: int = 20_000
    span_hours: int = 72
    seed: int = 42

    @classmethod
    def from_env(cls) -> ReplayConfig:
        return cls(
            enabled=_env_bool("SKIFF_REPLAY", True),
            source_dir=Path(_env("SKIFF_REPLAY_DIR", str(skiff_home() / "source"))).resolve(),
            sessions=_env_int("SKIFF_SAMPLE_SESSIONS", 20_000, minimum=1),
            span_hours=_env_int("SKIFF_SAMPLE_SPAN_HOURS", 72, minimum=1),
            seed=_env_int("SKIFF_SEED", 42),
        )


@dataclass(frozen=True)
class DbtConfig:
    """The dbt project and how Cosmos runs it.

    :param project_dir: the dbt project. Env ``SKIFF_DBT_PROJECT_DIR``, default ``include/dbt``.
    :param target: profile target; follows the warehouse backend unless ``SKIFF_DBT_TARGET`` is set.
    :param session_lookback_hours: how far back an incremental run looks for the earlier events
        of sessions touched by the new hour. Env ``SKIFF_SESSION_LOOKBACK_HOURS``, default 24.
    """

    project_dir: Path = REPO_ROOT / "include" / "dbt"
    target: str = "duckdb"
    session_lookback_hours: int = 24

    @property
    def manifest_path(self) -> Path:
        """``target/manifest.json`` built by ``dbt parse`` at install / image build."""
        return self.project_dir / "target" / "manifest.json"

    @classmethod
    def from_env(cls, warehouse: WarehouseConfig | None = None) -> DbtConfig:
        warehouse = warehouse or WarehouseConfig.from_env()
        return cls(
            project_dir=Path(
                _env("SKIFF_DBT_PROJECT_DIR", str(REPO_ROOT / "include" / "dbt"))
            ).resolve(),
            target=_env("SKIFF_DBT_TARGET", warehouse.backend),
            session_lookback_hours=_env_int("SKIFF_SESSION_LOOKBACK_HOURS", 24, minimum=1),
        )


@dataclass(frozen=True)
class TrainingConfig:
    """Where and how the Metaflow training flows run.

    :param train_on: ``local`` (Metaflow's local runtime + datastore) or ``batch`` (every step
        on AWS Batch, S3 datastore; the training steps ask for ``batch_gpu`` GPUs).
        Env ``SKIFF_TRAIN_ON``, default ``local``.
    :param metaflow_root: local datastore and metadata folder. Env ``METAFLOW_DATASTORE_SYSROOT_LOCAL``,
        default ``$SKIFF_HOME/metaflow``.
    :param s3_root: S3 datastore root on Batch. Env ``METAFLOW_DATASTORE_SYSROOT_S3``.
    :param batch_queue: AWS Batch job queue. Env ``SKIFF_BATCH_QUEUE``.
    :param batch_image: container image of the Batch steps. Env ``SKIFF_BATCH_IMAGE``,
        default ``tensorflow/tensorflow:2.21.0-gpu``.
    :param batch_memory: MiB per training step. Env ``SKIFF_BATCH_MEMORY``, default 16000.
    :param batch_gpu: GPUs per training step on Batch. Env ``SKIFF_BATCH_GPU``, default 1.
    :param max_sessions: latest sessions a run trains and evaluates on (0 = all); the DAG's
        ``train_sample_sessions`` param defaults to it. Env ``SKIFF_TRAIN_MAX_SESSIONS``, default 0.
    :param timeout_s: how long a flow may run before the task fails, in seconds.
        Env ``SKIFF_TRAIN_TIMEOUT_S``, default 7200.
    :param poll_interval_s: how often a deferred run is polled, in seconds.
        Env ``SKIFF_TRAIN_POLL_S``, default 30.
    """

    train_on: str = "local"
    metaflow_root: Path = field(default_factory=lambda: skiff_home() / "metaflow")
    s3_root: str = ""
    batch_queue: str = ""
    batch_image: str = "tensorflow/tensorflow:2.21.0-gpu"
    batch_memory: int = 16_000
    batch_gpu: int = 1
    max_sessions: int = 0
    timeout_s: int = 7200
    poll_interval_s: int = 30

    TARGETS = ("local", "batch")

    @property
    def flows_dir(self) -> Path:
        """The Metaflow flows, ``include/flows``."""
        return REPO_ROOT / "include" / "flows"

    def __post_init__(self) -> None:
        if self.train_on not in self.TARGETS:
            raise SkiffConfigError(
                f"SKIFF_TRAIN_ON={self.train_on!r} is not supported; use one of {self.TARGETS}."
            )
        if self.train_on == "batch":
            missing = [
                var
                for var, value in (
                    ("METAFLOW_DATASTORE_SYSROOT_S3", self.s3_root),
                    ("SKIFF_BATCH_QUEUE", self.batch_queue),
                )
                if not value
            ]
            if missing:
                raise SkiffConfigError(
                    f"SKIFF_TRAIN_ON=batch needs {', '.join(missing)} (the S3 datastore root, "
                    "e.g. s3://bucket/metaflow, and the AWS Batch job queue)."
                )
            if not self.s3_root.startswith("s3://"):
                raise SkiffConfigError(
                    f"METAFLOW_DATASTORE_SYSROOT_S3={self.s3_root!r} must start with s3://"
                )

    @classmethod
    def from_env(cls) -> TrainingConfig:
        return cls(
            train_on=_env("SKIFF_TRAIN_ON", "local").lower(),
            metaflow_root=Path(
                _env("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(skiff_home() / "metaflow"))
            ).resolve(),
            s3_root=_env("METAFLOW_DATASTORE_SYSROOT_S3", ""),
            batch_queue=_env("SKIFF_BATCH_QUEUE", ""),
            batch_image=_env("SKIFF_BATCH_IMAGE", "tensorflow/tensorflow:2.21.0-gpu"),
            batch_memory=_env_int("SKIFF_BATCH_MEMORY", 16_000, minimum=1024),
            batch_gpu=_env_int("SKIFF_BATCH_GPU", 1),
            max_sessions=_env_int("SKIFF_TRAIN_MAX_SESSIONS", 0),
            timeout_s=_env_int("SKIFF_TRAIN_TIMEOUT_S", 7200, minimum=60),
            poll_interval_s=_env_int("SKIFF_TRAIN_POLL_S", 30, minimum=1),
        )


@dataclass(frozen=True)
class ValidationConfig:
    """The validate stage: where its suites and reports live, and the thresholds they use.

    The Great Expectations suites in ``suites_dir`` name these thresholds as
    ``$PARAMETER`` values; no threshold is written into a suite.

    :param suites_dir: the suite definitions. Env ``SKIFF_GX_SUITES_DIR``, default
        ``include/gx/suites``.
    :param reports_dir: validation results (JSON) and Data Docs (HTML). Env ``SKIFF_GX_DIR``,
        default ``$SKIFF_HOME/gx``.
    :param volume_history_hours: hours before the data interval whose median event count is
        the volume reference. Env ``SKIFF_VOLUME_HISTORY_HOURS``, default 24.
    :param volume_min_ratio: the interval needs at least this share of the reference.
        Env ``SKIFF_VOLUME_MIN_RATIO``, default 0.2 (the sample's quietest hour is ~0.3).
    :param volume_max_ratio: the interval holds at most this multiple of the reference.
        Env ``SKIFF_VOLUME_MAX_RATIO``, default 5.0 (the sample's busiest hour is ~1.8).
    :param label_rate_min: lowest share of the interval's sessions with an add to cart (the
        intent label). Env ``SKIFF_LABEL_RATE_MIN``, default 0.01.
    :param label_rate_max: highest such share. Env ``SKIFF_LABEL_RATE_MAX``, default 0.5
        (the sample's hours range from ~0.1 to ~0.25).
    :param max_future_skew_minutes: how far, in minutes, events may be ahead of the later of
        the run's clock and the interval's end (clock skew). Env
        ``SKIFF_MAX_FUTURE_SKEW_MINUTES``, default 10.
    :param earliest_event_time: events before it are "far before the log's start" (typically
        seconds read as milliseconds). Env ``SKIFF_EARLIEST_EVENT_TIME`` (ISO 8601), default
        2018-01-01 UTC (the Coveo data starts in late 2018).
    :param max_duplicate_share: share of the interval's raw events that may be one of several
        copies of an event (same session, time, type, action and SKU).
        Env ``SKIFF_MAX_DUPLICATE_SHARE``, default 0.01.
    :param max_unknown_sku_share: share of product events whose SKU may be missing from
        ``dim_products`` (the real catalogue misses a few). Env ``SKIFF_MAX_UNKNOWN_SKU_SHARE``,
        default 0.1.
    :param max_out_of_order_share: share of the sessions that add and purchase which may
        purchase before their first add (a real shopper can buy what an earlier session
        added). Env ``SKIFF_MAX_OUT_OF_ORDER_SHARE``, default 0.05.
    :param max_event_gap_minutes: longest gap, in minutes, between consecutive events of a
        session; a longer one means a session id shared by sessions hours apart.
        Env ``SKIFF_MAX_EVENT_GAP_MINUTES``, default 120 (sessions end after 30 minutes idle).
    """

    suites_dir: Path = REPO_ROOT / "include" / "gx" / "suites"
    reports_dir: Path = field(default_factory=lambda: skiff_home() / "gx")
    volume_history_hours: int = 24
    volume_min_ratio: float = 0.2
    volume_max_ratio: float = 5.0
    label_rate_min: float = 0.01
    label_rate_max: float = 0.5
    max_future_skew_minutes: int = 10
    earliest_event_time: datetime = datetime(2018, 1, 1, tzinfo=UTC)
    max_duplicate_share: float = 0.01
    max_unknown_sku_share: float = 0.1
    max_out_of_order_share: float = 0.05
    max_event_gap_minutes: int = 120

    def __post_init__(self) -> None:
        if not 0 <= self.volume_min_ratio <= 1 <= self.volume_max_ratio:
            raise SkiffConfigError(
                f"SKIFF_VOLUME_MIN_RATIO={self.volume_min_ratio} and SKIFF_VOLUME_MAX_RATIO="
                f"{self.volume_max_ratio} must bracket 1 (min <= 1 <= max): they scale the "
                "median event count of the recent hours."
            )
        if not 0 <= self.label_rate_min < self.label_rate_max <= 1:
            raise SkiffConfigError(
                f"SKIFF_LABEL_RATE_MIN={self.label_rate_min} must be below SKIFF_LABEL_RATE_MAX="
                f"{self.label_rate_max}, both within [0, 1]."
            )
        for name in ("max_duplicate_share", "max_unknown_sku_share", "max_out_of_order_share"):
            if not 0 <= getattr(self, name) < 1:
                raise SkiffConfigError(
                    f"SKIFF_{name.upper()}={getattr(self, name)} must be within [0, 1)."
                )
        for name in ("volume_history_hours", "max_event_gap_minutes"):
            if getattr(self, name) < 1:
                raise SkiffConfigError(f"SKIFF_{name.upper()}={getattr(self, name)} must be >= 1.")

    @classmethod
    def from_env(cls) -> ValidationConfig:
        return cls(
            suites_dir=Path(
                _env("SKIFF_GX_SUITES_DIR", str(REPO_ROOT / "include" / "gx" / "suites"))
            ).resolve(),
            reports_dir=Path(_env("SKIFF_GX_DIR", str(skiff_home() / "gx"))).resolve(),
            volume_history_hours=_env_int("SKIFF_VOLUME_HISTORY_HOURS", 24, minimum=1),
            volume_min_ratio=_env_float("SKIFF_VOLUME_MIN_RATIO", 0.2),
            volume_max_ratio=_env_float("SKIFF_VOLUME_MAX_RATIO", 5.0),
            label_rate_min=_env_float("SKIFF_LABEL_RATE_MIN", 0.01),
            label_rate_max=_env_float("SKIFF_LABEL_RATE_MAX", 0.5),
            max_future_skew_minutes=_env_int("SKIFF_MAX_FUTURE_SKEW_MINUTES", 10),
            earliest_event_time=_env_time("SKIFF_EARLIEST_EVENT_TIME", "2018-01-01T00:00:00+00:00"),
            max_duplicate_share=_env_float("SKIFF_MAX_DUPLICATE_SHARE", 0.01),
            max_unknown_sku_share=_env_float("SKIFF_MAX_UNKNOWN_SKU_SHARE", 0.1),
            max_out_of_order_share=_env_float("SKIFF_MAX_OUT_OF_ORDER_SHARE", 0.05),
            max_event_gap_minutes=_env_int("SKIFF_MAX_EVENT_GAP_MINUTES", 120, minimum=1),
        )


@dataclass(frozen=True)
class ServingConfig:
    """The gate, the deploy target and the ``/predict`` serving path.

    Two models are served, each behind its own endpoint ``<endpoint_name>-<model>``
    (``skiff-intent``, ``skiff-rec``): a SageMaker endpoint in production, the local model
    server (``skiff serve``) by default. The Lambda handler reads its own settings from
    the variables :meth:`lambda_environment` lists, so the zip needs no Skiff install.

    :param backend: ``local`` (the local model server, the embedded default) or
        ``sagemaker``. Env ``SKIFF_SERVING``, default ``local``.
    :param endpoint_name: prefix of the endpoint names. Env ``SKIFF_ENDPOINT_NAME``,
        default ``skiff``.
    :param aws_conn_id: Airflow connection of the AWS account (S3, SageMaker, Lambda).
        Env ``SKIFF_AWS_CONN_ID``, default ``aws_default``.
    :param region: AWS region. Env ``SKIFF_AWS_REGION``, default ``us-east-1``.
    :param role_arn: execution role of the SageMaker models (required on ``sagemaker``).
        Env ``SKIFF_SAGEMAKER_ROLE_ARN``.
    :param instance_type: endpoint instance type. Env ``SKIFF_SAGEMAKER_INSTANCE_TYPE``,
        default ``ml.m5.large``.
    :param instance_count: endpoint instances. Env ``SKIFF_SAGEMAKER_INSTANCE_COUNT``, default 1.
    :param image_uri: serving container (SageMaker's TensorFlow Serving image; ``{region}``
        is filled in). Env ``SKIFF_SAGEMAKER_IMAGE_URI``, default
        ``763104351884.dkr.ecr.{region}.amazonaws.com/tensorflow-inference:2.19-cpu``.
    :param bucket: S3 bucket of the model tarballs and the registry (required on
        ``sagemaker``). Env ``SKIFF_ARTIFACT_BUCKET``.
    :param prefix: key prefix in that bucket. Env ``SKIFF_ARTIFACT_PREFIX``, default ``skiff``.
    :param registry_uri: where the champion registry lives. Env ``SKIFF_REGISTRY_URI``, default
        ``$SKIFF_HOME/registry`` (``local``) or ``s3://<bucket>/<prefix>/registry`` (``sagemaker``).
    :param host: address the local model server and ``/predict`` adapter bind to.
        Env ``SKIFF_SERVE_HOST``, default ``127.0.0.1``.
    :param port: port of the local model server (``/ping``, ``/invocations``).
        Env ``SKIFF_SERVE_PORT``, default 8080 (the SageMaker container's port).
    :param api_port: port of the local ``GET /predict`` adapter. Env ``SKIFF_API_PORT``,
        default 8000.
    :param max_batch: largest micro-batch of concurrent requests one model call serves
        (1 = no batching). Env ``SKIFF_SERVE_MAX_BATCH``, default 64.
    :param batch_wait_ms: how long, in milliseconds, the first request of a batch waits for
        company (0 = only requests already queued). Env ``SKIFF_SERVE_BATCH_WAIT_MS``, default 0.
    :param tf_threads: TensorFlow's intra- and inter-op threads in the model server (0 = TF's
        default, one per core). Env ``SKIFF_SERVE_TF_THREADS``, default 1: a small model's
        ops are cheaper on one thread, and the other cores serve HTTP.
    :param max_tokens: most tokens ``session`` may hold. Env ``SKIFF_PREDICT_MAX_TOKENS``,
        default 200.
    :param top_k: SKUs a recommendation returns (at most the model's export ``k``).
        Env ``SKIFF_PREDICT_TOP_K``, default 10.
    :param gate_metric_intent: metric the intent gate compares. Env ``SKIFF_GATE_METRIC_INTENT``,
        default ``roc_auc``.
    :param gate_metric_rec: metric the recommendation gate compares. Env
        ``SKIFF_GATE_METRIC_REC``, default ``mrr@20``.
    :param gate_margin: how much better, in the metric's units, a challenger must be.
        Env ``SKIFF_GATE_MARGIN``, default 0.0 (strictly better).
    """

    backend: str = "local"
    endpoint_name: str = "skiff"
    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    role_arn: str = ""
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    image_uri: str = "763104351884.dkr.ecr.{region}.amazonaws.com/tensorflow-inference:2.19-cpu"
    bucket: str = ""
    prefix: str = "skiff"
    registry_uri: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    api_port: int = 8000
    max_batch: int = 64
    batch_wait_ms: float = 0.0
    tf_threads: int = 1
    max_tokens: int = 200
    top_k: int = 10
    gate_metric_intent: str = "roc_auc"
    gate_metric_rec: str = "mrr@20"
    gate_margin: float = 0.0

    BACKENDS = ("local", "sagemaker")
    MODELS = ("intent", "rec")

    def __post_init__(self) -> None:
        if self.backend not in self.BACKENDS:
            raise SkiffConfigError(
                f"SKIFF_SERVING={self.backend!r} is not supported; use one of {self.BACKENDS}."
            )
        if not re.fullmatch(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,49}", self.endpoint_name):
            raise SkiffConfigError(
                f"SKIFF_ENDPOINT_NAME={self.endpoint_name!r} must be 1-50 letters, digits or "
                "hyphens (SageMaker endpoint names; '-intent'/'-rec' are appended)."
            )
        if self.backend == "sagemaker":
            missing = [var for var, value in (("SKIFF_SAGEMAKER_ROLE_ARN", self.role_arn),
                                              ("SKIFF_ARTIFACT_BUCKET", self.bucket)) if not value]
            if missing:
                raise SkiffConfigError(
                    f"SKIFF_SERVING=sagemaker needs {', '.join(missing)} (the models' IAM "
                    "execution role ARN and the S3 bucket of the model tarballs)."
                )
            if not self.role_arn.startswith("arn:"):
                raise SkiffConfigError(
                    f"SKIFF_SAGEMAKER_ROLE_ARN={self.role_arn!r} must be a role ARN "
                    "(arn:aws:iam::<account>:role/<name>)."
                )
        for name, low in (("instance_count", 1), ("max_batch", 1), ("max_tokens", 1),
                          ("top_k", 1)):
            if getattr(self, name) < low:
                raise SkiffConfigError(f"{self._env_name(name)}={getattr(self, name)} must be "
                                       f">= {low}.")
        for name in ("port", "api_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise SkiffConfigError(f"{self._env_name(name)}={getattr(self, name)} is not a "
                                       "port (0-65535; 0 picks a free one).")
        if not (self.batch_wait_ms >= 0 and self.gate_margin >= 0):
            raise SkiffConfigError("SKIFF_SERVE_BATCH_WAIT_MS and SKIFF_GATE_MARGIN must be >= 0.")

    @staticmethod
    def _env_name(field_name: str) -> str:
        return {"instance_count": "SKIFF_SAGEMAKER_INSTANCE_COUNT",
                "max_batch": "SKIFF_SERVE_MAX_BATCH", "max_tokens": "SKIFF_PREDICT_MAX_TOKENS",
                "top_k": "SKIFF_PREDICT_TOP_K", "port": "SKIFF_SERVE_PORT",
                "api_port": "SKIFF_API_PORT"}[field_name]

    def endpoint(self, model: str) -> str:
        """The endpoint serving one model, e.g. ``skiff-rec``.

        :param model: ``intent`` or ``rec``.
        :return: the endpoint name.
        :raises SkiffConfigError: ``model`` is neither.
        """
        if model not in self.MODELS:
            raise SkiffConfigError(f"model={model!r} is not served; use one of {self.MODELS}.")
        return f"{self.endpoint_name}-{model}"

    def gate_metric(self, model: str) -> str:
        """The metric the gate compares for ``model`` (``intent`` or ``rec``)."""
        self.endpoint(model)  # validates the name
        return self.gate_metric_intent if model == "intent" else self.gate_metric_rec

    @property
    def image(self) -> str:
        """:attr:`image_uri` with the region filled in."""
        return self.image_uri.replace("{region}", self.region)

    @property
    def registry(self) -> str:
        """Where the champion registry lives: a folder, or an ``s3://`` prefix."""
        if self.registry_uri:
            return self.registry_uri
        if self.backend == "sagemaker":
            return f"s3://{self.bucket}/{self.prefix}/registry"
        return str(skiff_home() / "registry")

    @property
    def local_url(self) -> str:
        """Base URL of the local model server, e.g. ``http://127.0.0.1:8080``."""
        return f"http://{self.host}:{self.port}"

    def lambda_environment(self) -> dict[str, str]:
        """Environment variables of the ``/predict`` Lambda (``include/lambda/handler.py``).

        :return: the variables, by name.
        """
        return {
            "SKIFF_ENDPOINT_NAME": self.endpoint_name,
            "SKIFF_AWS_REGION": self.region,
            "SKIFF_PREDICT_MAX_TOKENS": str(self.max_tokens),
            "SKIFF_PREDICT_TOP_K": str(self.top_k),
        }

    @classmethod
    def from_env(cls) -> ServingConfig:
        return cls(
            backend=_env("SKIFF_SERVING", "local").lower(),
            endpoint_name=_env("SKIFF_ENDPOINT_NAME", "skiff"),
            aws_conn_id=_env("SKIFF_AWS_CONN_ID", "aws_default"),
            region=_env("SKIFF_AWS_REGION", "us-east-1"),
            role_arn=_env("SKIFF_SAGEMAKER_ROLE_ARN", ""),
            instance_type=_env("SKIFF_SAGEMAKER_INSTANCE_TYPE", "ml.m5.large"),
            instance_count=_env_int("SKIFF_SAGEMAKER_INSTANCE_COUNT", 1, minimum=1),
            image_uri=_env("SKIFF_SAGEMAKER_IMAGE_URI", cls.image_uri),
            bucket=_env("SKIFF_ARTIFACT_BUCKET", ""),
            prefix=_env("SKIFF_ARTIFACT_PREFIX", "skiff").strip("/"),
            registry_uri=_env("SKIFF_REGISTRY_URI", ""),
            host=_env("SKIFF_SERVE_HOST", "127.0.0.1"),
            port=_env_int("SKIFF_SERVE_PORT", 8080),
            api_port=_env_int("SKIFF_API_PORT", 8000),
            max_batch=_env_int("SKIFF_SERVE_MAX_BATCH", 64, minimum=1),
            batch_wait_ms=_env_float("SKIFF_SERVE_BATCH_WAIT_MS", 0.0),
            tf_threads=_env_int("SKIFF_SERVE_TF_THREADS", 1),
            max_tokens=_env_int("SKIFF_PREDICT_MAX_TOKENS", 200, minimum=1),
            top_k=_env_int("SKIFF_PREDICT_TOP_K", 10, minimum=1),
            gate_metric_intent=_env("SKIFF_GATE_METRIC_INTENT", "roc_auc"),
            gate_metric_rec=_env("SKIFF_GATE_METRIC_REC", "mrr@20"),
            gate_margin=_env_float("SKIFF_GATE_MARGIN", 0.0),
        )


@dataclass(frozen=True)
class AlertsConfig:
    """Where failure and duration alerts go, and when a run counts as stuck.

    :param slack_conn_id: Airflow connection (type ``slackwebhook``) of the Slack Incoming
        Webhook; while it does not exist, alerts are logged. Env ``SKIFF_SLACK_CONN_ID``,
        default ``slack_alerts``.
    :param run_duration_alert_minutes: alert on an hourly run still going this many minutes
        after it was queued (the DAG's Deadline Alert); 0 turns the alert off. Env
        ``SKIFF_RUN_DURATION_ALERT_MINUTES``, default 60. ``make run`` and the tests set 0:
        Airflow 3.3.0's ``dags test`` cannot finish a run of a DAG with a Deadline Alert (it
        looks the alerts up by id, and holds them as dicts), and creates no deadline anyway.
    """

    slack_conn_id: str = "slack_alerts"
    run_duration_alert_minutes: int = 60

    @property
    def run_duration_alert(self) -> timedelta | None:
        """``run_duration_alert_minutes`` as a ``timedelta``; None when the alert is off."""
        return timedelta(minutes=self.run_duration_alert_minutes) if self.run_duration_alert_minutes else None

    @classmethod
    def from_env(cls) -> AlertsConfig:
        return cls(
            slack_conn_id=_env("SKIFF_SLACK_CONN_ID", "slack_alerts"),
            run_duration_alert_minutes=_env_int("SKIFF_RUN_DURATION_ALERT_MINUTES", 60, minimum=0),
        )


@dataclass(frozen=True)
class SkiffConfig:
    """Every concern's config together; ``SkiffConfig.from_env()`` is the usual entry point."""

    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    dbt: DbtConfig = field(default_factory=DbtConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    ingest: IngestConfig = field(default_factory=lambda: IngestConfig())

    @classmethod
    def from_env(cls) -> SkiffConfig:
        warehouse = WarehouseConfig.from_env()
        return cls(
            warehouse=warehouse,
            replay=ReplayConfig.from_env(),
            dbt=DbtConfig.from_env(warehouse),
            training=TrainingConfig.from_env(),
            validation=ValidationConfig.from_env(),
            serving=ServingConfig.from_env(),
            alerts=AlertsConfig.from_env(),
            ingest=IngestConfig.from_env(),
        )


@dataclass(frozen=True)
class IngestConfig:
    """What each scheduled interval ingests, from where, and how long it waits for it.

    :param source: ``landing`` (the files that arrived in the data interval, from the landing
        zone the collector or Firehose writes) or ``replay`` (the interval's events of the
        generated replay source, while ``SKIFF_REPLAY`` is on). Env ``SKIFF_INGEST_SOURCE``,
        default ``replay``: ``make run`` has no collector feeding the landing zone yet.
    :param landing_uri: the landing zone: a folder, or ``s3://bucket/prefix`` (read through
        the Airflow connection ``SKIFF_AWS_CONN_ID``). Env ``SKIFF_LANDING_URI``, default
        ``$SKIFF_HOME/landing``.
    :param grace_minutes: how long after the interval's end the ingest waits (deferred, in
        the triggerer) for late landing files before it takes what has arrived; it stops
        waiting as soon as a file of a later hour shows the collector has moved on.
        Env ``SKIFF_INGEST_GRACE_MINUTES``, default 10.
    :param poll_seconds: how often that wait lists the landing zone, in seconds.
        Env ``SKIFF_INGEST_POLL_S``, default 30.
    :param schedule: when ``skiff_hourly`` runs, as cron (UTC); each run's data interval is
        the time since the previous firing. It must fire on the hour (minute field ``0``):
        the landing zone is laid out by arrival hour, so intervals are whole hours.
        Env ``SKIFF_SCHEDULE``, default ``0 * * * *``.
    """

    source: str = "replay"
    landing_uri: str = field(default_factory=lambda: str(skiff_home() / "landing"))
    grace_minutes: int = 10
    poll_seconds: int = 30
    schedule: str = "0 * * * *"

    SOURCES = ("landing", "replay")
    _PRESETS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

    def __post_init__(self) -> None:
        if self.source not in self.SOURCES:
            raise SkiffConfigError(
                f"SKIFF_INGEST_SOURCE={self.source!r} is not supported; use one of {self.SOURCES}."
            )
        if "://" in self.landing_uri and not self.landing_uri.startswith("s3://"):
            raise SkiffConfigError(f"SKIFF_LANDING_URI={self.landing_uri!r}: use a folder or "
                                   "s3://bucket/prefix.")
        if self.poll_seconds < 1 or self.grace_minutes < 0:
            raise SkiffConfigError(f"SKIFF_INGEST_POLL_S={self.poll_seconds} must be >= 1 and "
                                   f"SKIFF_INGEST_GRACE_MINUTES={self.grace_minutes} >= 0.")
        self._check_schedule(self.schedule)

    @classmethod
    def _check_schedule(cls, expression: str) -> None:
        from croniter import croniter

        if expression in cls._PRESETS:
            return
        fields = expression.split()
        if len(fields) != 5 or not croniter.is_valid(expression):
            raise SkiffConfigError(
                f"SKIFF_SCHEDULE={expression!r} is not a cron expression: use five fields, "
                "minute hour day-of-month month day-of-week (UTC), e.g. '0 * * * *' (hourly)."
            )
        if fields[0] != "0":
            raise SkiffConfigError(
                f"SKIFF_SCHEDULE={expression!r} must fire on the hour (minute field 0): the "
                "landing zone is laid out by arrival hour, so a data interval is whole hours; "
                "e.g. '0 * * * *' (hourly) or '0 */2 * * *' (every two hours)."
            )

    @classmethod
    def from_env(cls) -> IngestConfig:
        landing = _env("SKIFF_LANDING_URI", str(skiff_home() / "landing"))
        return cls(
            source=_env("SKIFF_INGEST_SOURCE", "replay").strip().lower(),
            landing_uri=landing if "://" in landing else str(Path(landing).expanduser().resolve()),
            grace_minutes=_env_int("SKIFF_INGEST_GRACE_MINUTES", 10),
            poll_seconds=_env_int("SKIFF_INGEST_POLL_S", 30, minimum=1),
            schedule=" ".join(_env("SKIFF_SCHEDULE", "0 * * * *").split()),
        )
