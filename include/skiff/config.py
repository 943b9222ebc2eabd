"""Skiff's configuration: the one place every setting is read.

One frozen dataclass per concern, like Cosmos's config objects. Each field is a
:func:`~skiff._settings.setting` holding its environment variable, default, meaning and
bounds, each written once there. The rest is derived from the fields: ``from_env()``
reads the environment (cheap, no network), the classes' ``:param:`` docstrings, and
:func:`markdown_table`, the configuration table of the README and the docs
(``python -m skiff.config`` prints it). Secrets never live here: they stay in Airflow
Connections (``snowflake_default``, ``aws_default``, ``slack_alerts``), but for the model
server's own control-plane token (``SKIFF_SERVE_TOKEN``, kept out of ``repr``).
"""

# Longer than ~400 lines on purpose: it is the list of all ~100 settings, a few lines each, in
# one file so that a setting is written once and the docs' table is generated from one place.

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from skiff._settings import Section, Setting, document, field_types, markdown, records, setting
from skiff.exceptions import SkiffConfigError
from skiff.times import parse_time

__all__ = ["REPO_ROOT", "skiff_home", "Setting", "settings", "markdown_table", "WarehouseConfig",
           "ReplayConfig", "DbtConfig", "ValidationConfig", "TrainingConfig", "ServingConfig",
           "AlertsConfig", "EmitConfig", "CollectConfig", "IngestConfig", "MonitorConfig",
           "SkiffConfig"]

#: Root of the Skiff checkout (or of the image's /opt/airflow), found from this file.
REPO_ROOT = Path(__file__).resolve().parents[2]

_HOME = Setting("skiff_home", "skiff_home", "SKIFF_HOME", ".skiff",
                "working folder: warehouse file, replay source, Airflow home, reports")


def skiff_home() -> Path:
    """Skiff's working folder (warehouse file, replay source, reports), from ``SKIFF_HOME``."""
    return Path(os.environ.get(_HOME.env, _HOME.default)).expanduser().resolve()


class _Path:
    """A default path as the docs show it (``$SKIFF_HOME/gx``, ``include/dbt``); call: the path."""

    def __init__(self, shown: str) -> None:
        self.shown = shown

    def __call__(self) -> Path:
        head, _, rest = self.shown.partition("/")
        return skiff_home() / rest if head == "$SKIFF_HOME" else REPO_ROOT / self.shown


@dataclass(frozen=True)
class WarehouseConfig(Section):
    """Where the raw log and the dbt models live."""

    backend: str = setting("SKIFF_WAREHOUSE", "duckdb", "`duckdb` or `snowflake`",
                           choices=("duckdb", "snowflake"), clean=str.lower)
    duckdb_path: Path = setting("SKIFF_DUCKDB_PATH", _Path("$SKIFF_HOME/warehouse.duckdb"),
                                "the DuckDB file")
    snowflake_conn_id: str = setting("SKIFF_SNOWFLAKE_CONN_ID", "snowflake_default",
                                     "Airflow connection of the Snowflake account")
    raw_schema: str = setting("SKIFF_RAW_SCHEMA", "raw", "schema of the append-only raw log")
    marts_schema: str = setting("SKIFF_MARTS_SCHEMA", "marts", "schema of the dbt marts")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("raw_schema", "marts_schema"):
            if not getattr(self, name).isidentifier():
                raise SkiffConfigError(f"{self.env(name)}={getattr(self, name)!r} is not a valid "
                                       "schema name (letters, digits, _).")


@dataclass(frozen=True)
class ReplayConfig(Section):
    """The embedded replay source: generated files the hourly ``ingest`` task slices by interval."""

    enabled: bool = setting("SKIFF_REPLAY", True,
                            "run the `ingest_events` task from the replay source")
    source_dir: Path = setting("SKIFF_REPLAY_DIR", _Path("$SKIFF_HOME/source"),
                               "the generated replay source")
    sessions: int = setting("SKIFF_SAMPLE_SESSIONS", 20_000, "sessions `make run` generates",
                            minimum=1)
    span_hours: int = setting("SKIFF_SAMPLE_SPAN_HOURS", 72,
                              "hours of history the sample covers, ending now", minimum=1)
    seed: int = setting("SKIFF_SEED", 42, "generator seed")


@dataclass(frozen=True)
class DbtConfig(Section):
    """The dbt project and how Cosmos runs it."""

    project_dir: Path = setting("SKIFF_DBT_PROJECT_DIR", _Path("include/dbt"), "the dbt project")
    target: str = setting("SKIFF_DBT_TARGET", "duckdb",
                          "dbt profile target; unset, it follows `SKIFF_WAREHOUSE`", shown="")
    session_lookback_hours: int = setting(
        "SKIFF_SESSION_LOOKBACK_HOURS", 24,
        "how far back an hourly run looks for earlier events of the sessions it updates", minimum=1)
    # watcher: the hourly prepare at 36M events took 61 s in local mode (one dbt start per
    # model and per test), for a dbt run of 3.8 s; docs/dbt.md has the figures
    execution_mode: str = setting(
        "SKIFF_DBT_EXECUTION_MODE", "watcher",
        "how Cosmos runs the `prepare` group: `watcher` (one `dbt build` with dbt's threads; "
        "each model and its tests keep a task that reports it and re-runs it on retry) or "
        "`local` (one dbt invocation per model and per test)",
        choices=("watcher", "local"), clean=str.lower)
    # unlimited, DuckDB takes up to 80% of RAM: a full refresh at 36M events peaked at 19 GiB
    # (docs/performance.md); past the limit its sorts spill to `<warehouse>.tmp`
    duckdb_memory_limit: str = setting(
        "SKIFF_DUCKDB_MEMORY_LIMIT", "10GiB",
        "memory limit of dbt's DuckDB (its `memory_limit`: `10GiB`, `4GB`, `50%` of RAM); past "
        "it a full refresh's sorts spill to disk next to the warehouse file",
        clean=lambda value: value.strip().replace(" ", ""))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not re.fullmatch(r"\d+(\.\d+)?([KMGT]i?B|B|%)", self.duckdb_memory_limit, re.I):
            raise SkiffConfigError(
                f"{self.env('duckdb_memory_limit')}={self.duckdb_memory_limit!r} is not a memory "
                "size: a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB) or a percent "
                "of RAM, e.g. 10GiB or 50%.")

    @property
    def manifest_path(self) -> Path:
        """``target/manifest.json`` built by ``dbt parse`` at install / image build."""
        return self.project_dir / "target" / "manifest.json"

    def project_files(self) -> list[Path]:
        """The project's SQL and YAML files, sorted; not dbt's output (``target``, ``logs``,
        ``dbt_packages``): what ``dbt parse`` reads, and what the manifest is checked against."""
        found = []
        for folder, subfolders, files in os.walk(self.project_dir):
            if folder == str(self.project_dir):
                subfolders[:] = [d for d in subfolders if d not in ("target", "logs", "dbt_packages")]
            found += [Path(folder, name) for name in files if name.endswith((".sql", ".yml"))]
        return sorted(found)

    def check_manifest(self) -> None:
        """Raise unless the manifest is newer than every SQL and YAML file of the project.

        Cosmos renders the DAG's dbt tasks from the manifest while dbt builds the project: with
        a manifest older than the project, the tasks of a model or test the project no longer
        has wait for a result no build gives them (until their sensor's timeout), and a new
        one has no task. The rule is ``make install``'s (which rebuilds it, as the image does).
        Cheap: file times only, no dbt, no parse.

        :raises SkiffConfigError: no manifest, or a file of the project newer than it.
        """
        try:
            built = self.manifest_path.stat().st_mtime
        except FileNotFoundError:
            raise SkiffConfigError(
                f"no dbt manifest at {self.manifest_path}: build it with `make install` (or "
                f"`dbt parse` in {self.project_dir})") from None
        newer = [path for path in self.project_files() if path.stat().st_mtime > built]
        if newer:
            names = ", ".join(str(p.relative_to(self.project_dir)) for p in newer[:5])
            raise SkiffConfigError(
                f"the dbt manifest {self.manifest_path} is older than the project it renders "
                f"({names}{', ...' if len(newer) > 5 else ''} changed since): its tasks would "
                "wait for models and tests the project may no longer have. Rebuild it with "
                f"`make install` (or `dbt parse` in {self.project_dir}).")

    @classmethod
    def from_env(cls, warehouse: WarehouseConfig | None = None, **fallbacks: Any) -> Self:
        """As :meth:`Section.from_env`; ``target`` follows the warehouse backend when unset.

        :param warehouse: the warehouse settings; default :meth:`WarehouseConfig.from_env`.
        :param fallbacks: as :meth:`Section.from_env`.
        """
        warehouse = warehouse or WarehouseConfig.from_env()
        return super().from_env(**{"target": warehouse.backend, **fallbacks})


@dataclass(frozen=True)
class TrainingConfig(Section):
    """Where and how the Metaflow training flows run."""

    train_on: str = setting("SKIFF_TRAIN_ON", "local", "`local` (Metaflow's local runtime) or "
                            "`batch` (every step on AWS Batch, S3 datastore)",
                            choices=("local", "batch"), clean=str.lower)
    datastore: str = setting("SKIFF_TRAIN_DATASTORE", "", "Metaflow datastore of the runs "
                             "(artifacts, model tarballs): `local` or `s3` (under "
                             "`METAFLOW_DATASTORE_SYSROOT_S3`, through the `SKIFF_AWS_CONN_ID` "
                             "connection); unset: `s3` on `batch`, else `local`", shown="",
                             choices=("local", "s3"), clean=str.lower)
    metaflow_root: Path = setting("METAFLOW_DATASTORE_SYSROOT_LOCAL", _Path("$SKIFF_HOME/metaflow"),
                                  "local Metaflow datastore and metadata (the metadata "
                                  "stays here with the S3 datastore)")
    s3_root: str = setting("METAFLOW_DATASTORE_SYSROOT_S3", "", "S3 datastore root, e.g. "
                           "`s3://bucket/metaflow`", required_on=("datastore", "s3"))
    batch_queue: str = setting("SKIFF_BATCH_QUEUE", "", "AWS Batch job queue",
                               required_on=("train_on", "batch"))
    batch_job_role: str = setting("SKIFF_BATCH_JOB_ROLE_ARN", "", "IAM role of the Batch jobs: "
                                  "their access to the S3 datastore and the registry (Metaflow "
                                  "registers no job without one)", required_on=("train_on", "batch"))
    batch_image: str = setting("SKIFF_BATCH_IMAGE", "skiff-train:latest",
                               "container image of the Batch steps: `make train-image` builds "
                               "this tag (Dockerfile.train); push it to ECR and set the pushed URI")
    batch_memory: int = setting("SKIFF_BATCH_MEMORY", 16_000, "MiB of each training step on Batch",
                                minimum=1024)
    batch_gpu: int = setting("SKIFF_BATCH_GPU", 1, "GPUs of each training step on Batch")
    mixed_precision: str = setting("SKIFF_TRAIN_MIXED_PRECISION", "auto", "Keras mixed precision "
                                   "(`mixed_float16`) while a model trains: `auto` when "
                                   "TensorFlow sees a GPU, `on`, or `off`; the served model is "
                                   "float32 either way", choices=("auto", "on", "off"),
                                   clean=str.lower)
    wandb_conn_id: str = setting("SKIFF_WANDB_CONN_ID", "wandb_default", "Airflow connection "
                                 "whose password is the W&B API key, handed to a run at launch "
                                 "(optional: without it, W&B runs as `WANDB_MODE` says)")
    max_sessions: int = setting("SKIFF_TRAIN_MAX_SESSIONS", 0, "latest sessions a run trains and "
                                "evaluates on (`0`: all); default of `train_sample_sessions`")
    warm_start: str = setting("SKIFF_TRAIN_WARM_START", "off", "`on`: a run fine-tunes the "
                              "serving champion's weights on its window for "
                              "`SKIFF_TRAIN_WARM_EPOCHS` epochs (SKUs the champion lacks start "
                              "fresh); the run whose interval ends at 00:00 UTC, and a run with "
                              "the flows' `full_retrain` parameter, train from scratch; `off`: "
                              "every run trains from scratch", choices=("off", "on"),
                              clean=str.lower)
    warm_epochs: int = setting("SKIFF_TRAIN_WARM_EPOCHS", 2, "epochs of a warm-started run",
                               minimum=1)
    timeout_s: int = setting("SKIFF_TRAIN_TIMEOUT_S", 7200,
                             "seconds a flow may run before its task fails", minimum=60)
    poll_interval_s: int = setting("SKIFF_TRAIN_POLL_S", 30,
                                   "seconds between polls of a deferred run", minimum=1)

    @property
    def flows_dir(self) -> Path:
        """The Metaflow flows, ``include/flows``."""
        return REPO_ROOT / "include" / "flows"

    def __post_init__(self) -> None:
        if not self.datastore:  # unset: the datastore a step's machine can reach
            object.__setattr__(self, "datastore", "s3" if self.train_on == "batch" else "local")
        super().__post_init__()
        if self.train_on == "batch" and self.datastore != "s3":
            raise SkiffConfigError(
                f"{self.env('train_on')}=batch needs {self.env('datastore')}=s3 (or unset): a "
                "Batch step's disk goes with its container, its artifacts must reach S3.")
        if self.datastore == "s3" and not self.s3_root.startswith("s3://"):
            raise SkiffConfigError(f"{self.env('s3_root')}={self.s3_root!r} must start with s3://")


@dataclass(frozen=True)
class ValidationConfig(Section):
    """The validate stage: its suites, reports, and the thresholds the suites name as parameters."""

    suites_dir: Path = setting("SKIFF_GX_SUITES_DIR", _Path("include/gx/suites"),
                               "the Great Expectations suite files")
    reports_dir: Path = setting("SKIFF_GX_DIR", _Path("$SKIFF_HOME/gx"),
                                "validation results (JSON per interval) and Data Docs")
    volume_history_hours: int = setting(
        "SKIFF_VOLUME_HISTORY_HOURS", 24,
        "hours before the interval whose median event count is the volume reference", minimum=1)
    # the sample's quietest hour holds ~0.3 of the reference, its busiest ~1.8
    volume_min_ratio: float = setting("SKIFF_VOLUME_MIN_RATIO", 0.2, "the interval needs at least "
                                      "this share of the reference (an empty hour always fails)")
    volume_max_ratio: float = setting("SKIFF_VOLUME_MAX_RATIO", 5.0,
                                      "the interval holds at most this multiple of the reference")
    # the sample's hours range from ~0.1 to ~0.25
    label_rate_min: float = setting("SKIFF_LABEL_RATE_MIN", 0.01, "lowest share of the interval's "
                                    "sessions adding to cart (the intent label)")
    label_rate_max: float = setting("SKIFF_LABEL_RATE_MAX", 0.5, "highest such share")
    max_future_skew_minutes: int = setting(
        "SKIFF_MAX_FUTURE_SKEW_MINUTES", 10,
        "minutes events may be ahead of the later of the run's clock and the interval's end")
    # the Coveo data starts in late 2018
    earliest_event_time: datetime = setting(
        "SKIFF_EARLIEST_EVENT_TIME", datetime(2018, 1, 1, tzinfo=UTC),
        "events before it are \"far before the log's start\" (seconds read as milliseconds)")
    max_duplicate_share: float = setting(
        "SKIFF_MAX_DUPLICATE_SHARE", 0.01, "share of the interval's raw events that may be one "
        "of several copies of an event (same session, time, type, action and SKU)")
    duplicate_allowance: int = setting(
        "SKIFF_DUPLICATE_ALLOWANCE", 20, "copies of events an interval may hold whatever its "
        "size: on a small interval (a night hour, a 5-minute schedule) the share alone would "
        "alarm on chance (client retries copy a few events)")
    max_unknown_sku_share: float = setting(
        "SKIFF_MAX_UNKNOWN_SKU_SHARE", 0.1,
        "share of product events whose SKU may be missing from `dim_products`")
    max_out_of_order_share: float = setting(
        "SKIFF_MAX_OUT_OF_ORDER_SHARE", 0.05, "share of the sessions that add and purchase which "
        "may purchase before their first add (what an earlier session added)")
    # sessions end after 30 minutes idle: a longer gap is a session id reused hours later
    max_event_gap_minutes: int = setting("SKIFF_MAX_EVENT_GAP_MINUTES", 120,
                                         "longest gap between two events of a session", minimum=1)
    # the shares of event types, actions, missing values, unknown SKUs and duplicates
    # (event_mix suite) against their own recent past; tuned on the embedded shoppers:
    # bench/baseline_fp.py (zero failures over clean days, a sudden 3% defect caught)
    baseline_hours: int = setting(
        "SKIFF_BASELINE_HOURS", 24, "whole hours before the interval whose median shares are "
        "the baseline of the `event_mix` suite", minimum=1)
    baseline_min_hours: int = setting(
        "SKIFF_BASELINE_MIN_HOURS", 6, "hours with events the baseline needs; with fewer, the "
        "`event_mix` checks are skipped", minimum=1)
    baseline_mads: float = setting(
        "SKIFF_BASELINE_MADS", 4.0, "how far a share may stray from its baseline median: this "
        "many MADs (x1.4826), or this many times the interval's own sampling noise if more",
        minimum=0)
    baseline_min_delta: float = setting(
        "SKIFF_BASELINE_MIN_DELTA", 0.01, "share a share may always stray from its baseline "
        "median, on top of the MADs", maximum=1)
    # whole-log validation groups the rows by key in DuckDB (36M keys of the full log): past
    # this, DuckDB spills the groups to disk instead of growing
    memory_limit: str = setting(
        "SKIFF_VALIDATE_MEMORY_LIMIT", "2GB", "DuckDB's memory limit while it validates a long "
        "range inside the warehouse (`skiff validate --all`, a full refresh's mart checks), "
        "e.g. `2GB`, `512MB`; past it, DuckDB spills to disk", clean=str.strip)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.volume_min_ratio <= 1 <= self.volume_max_ratio:
            raise SkiffConfigError(
                f"{self.env('volume_min_ratio')}={self.volume_min_ratio} and "
                f"{self.env('volume_max_ratio')}={self.volume_max_ratio} must bracket 1 "
                "(min <= 1 <= max): they scale the median event count of the recent hours.")
        if not 0 <= self.label_rate_min < self.label_rate_max <= 1:
            raise SkiffConfigError(
                f"{self.env('label_rate_min')}={self.label_rate_min} must be below "
                f"{self.env('label_rate_max')}={self.label_rate_max}, both within [0, 1].")
        if self.baseline_min_hours > self.baseline_hours:
            raise SkiffConfigError(
                f"{self.env('baseline_min_hours')}={self.baseline_min_hours} must be at most "
                f"{self.env('baseline_hours')}={self.baseline_hours}: the baseline could never "
                "have enough hours.")
        for name in ("max_duplicate_share", "max_unknown_sku_share", "max_out_of_order_share"):
            if not getattr(self, name) < 1:
                raise SkiffConfigError(f"{self.env(name)}={getattr(self, name)} must be below 1.")
        if not re.fullmatch(r"\d+(\.\d+)? ?([KMGT]i?B)", self.memory_limit, re.IGNORECASE):
            raise SkiffConfigError(
                f"{self.env('memory_limit')}={self.memory_limit!r} is not a memory size DuckDB "
                "reads: a number and a unit, e.g. 2GB, 512MB, 1.5GiB.")


@dataclass(frozen=True)
class ServingConfig(Section):
    """The gate, the deploy target and the ``/predict`` path of the two served models.

    Each model has its endpoint ``<endpoint_name>-<model>``: a SageMaker endpoint, or the
    local model server (``skiff serve``). The Lambda handler reads the variables
    :meth:`lambda_environment` lists, so its zip needs no Skiff install.
    """

    backend: str = setting("SKIFF_SERVING", "local",
                           "`local` (the local model server) or `sagemaker`",
                           choices=("local", "sagemaker"), clean=str.lower)
    endpoint_name: str = setting("SKIFF_ENDPOINT_NAME", "skiff",
                                 "endpoint prefix: endpoints `<prefix>-intent`, `<prefix>-rec`")
    aws_conn_id: str = setting("SKIFF_AWS_CONN_ID", "aws_default",
                               "Airflow connection of the AWS account (S3, SageMaker, Lambda)")
    region: str = setting("SKIFF_AWS_REGION", "us-east-1", "AWS region")
    role_arn: str = setting("SKIFF_SAGEMAKER_ROLE_ARN", "", "IAM execution role ARN of the "
                            "SageMaker models", required_on=("backend", "sagemaker"))
    instance_type: str = setting("SKIFF_SAGEMAKER_INSTANCE_TYPE", "ml.m5.large",
                                 "endpoint instance type")
    instance_count: int = setting("SKIFF_SAGEMAKER_INSTANCE_COUNT", 1, "endpoint instances",
                                  minimum=1)
    image_uri: str = setting(
        "SKIFF_SAGEMAKER_IMAGE_URI",
        "763104351884.dkr.ecr.{region}.amazonaws.com/tensorflow-inference:2.19-cpu",
        "serving container (TensorFlow Serving; `{region}` is filled in)")
    bucket: str = setting("SKIFF_ARTIFACT_BUCKET", "", "S3 bucket of the model tarballs and the "
                          "registry", required_on=("backend", "sagemaker"))
    prefix: str = setting("SKIFF_ARTIFACT_PREFIX", "skiff", "key prefix in that bucket",
                          clean=lambda raw: raw.strip("/"))
    registry_uri: str = setting("SKIFF_REGISTRY_URI", "", "the champion registry; unset, "
                                "`$SKIFF_HOME/registry` or `s3://<bucket>/<prefix>/registry`")
    host: str = setting("SKIFF_SERVE_HOST", "127.0.0.1",
                        "address the local model server and `/predict` adapter bind to")
    # 8080: the SageMaker container's port
    port: int = setting("SKIFF_SERVE_PORT", 8080, "model server port (`/ping`, `/invocations`; "
                        "`0`: a free one)", maximum=65535)
    api_port: int = setting("SKIFF_API_PORT", 8000, "local `GET /predict` port (`0`: a free one)",
                            maximum=65535)
    # the control plane (model swaps, GET /endpoints) apart from the data plane: its own port,
    # loopback by default, a bearer token (docs/serving.md "Control plane")
    control_host: str = setting("SKIFF_SERVE_CONTROL_HOST", "127.0.0.1", "address the model "
                                "server's control plane binds to, and the deploy's target "
                                "(never publish it)")
    control_port: int = setting("SKIFF_SERVE_CONTROL_PORT", 8079, "control plane port (`POST "
                                "/endpoints/<name>/model`, `GET /endpoints`; `0`: a free one)",
                                maximum=65535)
    token: str = setting("SKIFF_SERVE_TOKEN", "", "bearer token of the control plane; empty: the "
                         "one in `SKIFF_SERVE_TOKEN_FILE`", secret=True)
    token_file: Path = setting("SKIFF_SERVE_TOKEN_FILE", _Path("$SKIFF_HOME/serving/control.token"),
                               "file holding the control plane's token, written once (random) "
                               "when missing")
    # a swap loads only from under these and the endpoint store's copies (where a deploy puts
    # each bundle): the token is no licence to load any folder of the server's disk
    model_roots: tuple[Path, ...] = setting(
        "SKIFF_SERVE_MODEL_ROOTS", (), "more folders, separated by `:`, the control plane may "
        "swap a model in from, beside the endpoint configs' copies in `$SKIFF_HOME/serving/models` "
        "(where a deploy puts each bundle); a `model_dir` resolving elsewhere gets 403", shown="")
    max_body_bytes: int = setting("SKIFF_SERVE_MAX_BODY_BYTES", 6 * 1024 * 1024, "largest "
                                  "request body (SageMaker's invocation limit); a larger one "
                                  "gets 413", minimum=1)
    max_connections: int = setting("SKIFF_SERVE_MAX_CONNECTIONS", 1024, "open connections a "
                                   "listener holds, idle keep-alive ones included; one more is "
                                   "answered 503 (JSON)", minimum=1)
    max_requests: int = setting("SKIFF_SERVE_MAX_REQUESTS", 256, "requests a listener answers "
                                "at once; one more is answered 503 (JSON, `Retry-After`)",
                                minimum=1)
    keep_alive_s: float = setting("SKIFF_SERVE_KEEP_ALIVE_S", 5.0, "seconds an idle keep-alive "
                                  "connection stays open", minimum=0.01)
    header_timeout_s: float = setting("SKIFF_SERVE_HEADER_TIMEOUT_S", 10.0, "seconds a request "
                                      "line and headers may take to arrive; then 408 and closed",
                                      minimum=0.01)
    body_timeout_s: float = setting("SKIFF_SERVE_BODY_TIMEOUT_S", 10.0, "seconds a request body "
                                    "may take to arrive after its headers; then 408 and closed",
                                    minimum=0.01)
    predict_timeout_s: float = setting("SKIFF_SERVE_PREDICT_TIMEOUT_S", 5.0, "seconds a request "
                                       "waits for its model call (a stuck model: 503, not a "
                                       "hung client)", minimum=0.01)
    load_timeout_s: float = setting("SKIFF_SERVE_LOAD_TIMEOUT_S", 120.0, "seconds a model swap "
                                    "may take to load and warm the model; a slower one is "
                                    "refused (504) and never served", minimum=0.01)
    max_batch: int = setting("SKIFF_SERVE_MAX_BATCH", 64, "most concurrent requests one model "
                             "call serves (`1`: no micro-batching)", minimum=1)
    batch_wait_ms: float = setting("SKIFF_SERVE_BATCH_WAIT_MS", 0.0, "milliseconds the first "
                                   "request of a batch waits for company (`0`: only those queued)")
    # 1: a small model's ops are cheaper on one thread, and the other cores serve HTTP
    tf_threads: int = setting("SKIFF_SERVE_TF_THREADS", 1, "TensorFlow threads of the model "
                              "server (`0`: TF's default, one per core)")
    # the prediction log (skiff.serve.predlog; docs/monitoring.md): one event per served
    # session to the collector, off the request's path, dropped (and counted) when it cannot go
    predlog_url: str = setting("SKIFF_PREDLOG_URL", "", "the collector's `/collect` URL the "
                               "model server sends its prediction log to (`?table=predictions` "
                               "is added); empty: no prediction log")
    predlog_sample: float = setting("SKIFF_PREDLOG_SAMPLE", 1.0, "share of the answered "
                                    "requests logged (`0`..`1`)", maximum=1.0)
    predlog_buffer: int = setting("SKIFF_PREDLOG_BUFFER", 10_000, "prediction events held "
                                  "while the collector is slow or down; one more is dropped "
                                  "and counted (`GET /health`, `dropped_before`)", minimum=1)
    predlog_flush_s: float = setting("SKIFF_PREDLOG_FLUSH_S", 1.0, "seconds between two posts "
                                     "of the prediction log (sooner when a batch is full)",
                                     minimum=0.01)
    predlog_timeout_s: float = setting("SKIFF_PREDLOG_TIMEOUT_S", 2.0, "seconds one post of "
                                       "the prediction log may take", minimum=0.01)
    # 10: the sender gets what serving leaves, yet is not starved on a busy host (19 would be)
    predlog_nice: int = setting("SKIFF_PREDLOG_NICE", 10, "niceness the prediction log's "
                                "sender process adds to the model server's (`0`..`19`)",
                                minimum=0, maximum=19)
    max_tokens: int = setting("SKIFF_PREDICT_MAX_TOKENS", 200, "most tokens of a `session`",
                              minimum=1)
    top_k: int = setting("SKIFF_PREDICT_TOP_K", 10, "SKUs a recommendation returns (at most the "
                         "model's export `k`)", minimum=1)
    # worst case 2 x (1 + 2) s + 6 s backoff = 12 s, under the function's 15 s timeout
    predict_connect_timeout: float = setting(
        "SKIFF_PREDICT_CONNECT_TIMEOUT", 1.0, "seconds the `/predict` Lambda waits to connect "
        "to an endpoint", minimum=0.001)
    predict_read_timeout: float = setting(
        "SKIFF_PREDICT_READ_TIMEOUT", 2.0, "seconds the `/predict` Lambda waits for each read of "
        "an endpoint's answer", minimum=0.001)
    predict_attempts: int = setting(
        "SKIFF_PREDICT_ATTEMPTS", 2, "attempts of one endpoint call, the first included (their "
        "worst case must fit the function's timeout: see Gate, deploy and serving)", minimum=1)
    gate_metric_intent: str = setting("SKIFF_GATE_METRIC_INTENT", "roc_auc",
                                      "metric the intent gate compares")
    gate_metric_rec: str = setting("SKIFF_GATE_METRIC_REC", "mrr@20",
                                   "metric the recommendation gate compares")
    gate_margin: float = setting("SKIFF_GATE_MARGIN", 0.0, "how much better, in the metric's "
                                 "units, a challenger must be (`0.0`: strictly better)")

    MODELS = ("intent", "rec")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.predlog_url and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?",
                                                 self.predlog_url):
            raise SkiffConfigError(f"{self.env('predlog_url')}={self.predlog_url!r} is not an "
                                   "http(s) URL without a query, e.g. "
                                   "http://127.0.0.1:8070/collect.")
        if not re.fullmatch(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,49}", self.endpoint_name):
            raise SkiffConfigError(
                f"{self.env('endpoint_name')}={self.endpoint_name!r} must be 1-50 letters, digits "
                "or hyphens (SageMaker endpoint names; '-intent'/'-rec' are appended).")
        if self.backend == "sagemaker" and not self.role_arn.startswith("arn:"):
            raise SkiffConfigError(f"{self.env('role_arn')}={self.role_arn!r} must be a role ARN "
                                   "(arn:aws:iam::<account>:role/<name>).")

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

    @property
    def control_url(self) -> str:
        """Base URL of the model server's control plane, e.g. ``http://127.0.0.1:8079``."""
        return f"http://{self.control_host}:{self.control_port}"

    def lambda_environment(self) -> dict[str, str]:
        """Environment variables of the ``/predict`` Lambda (``include/skiff_api/handler.py``).

        :return: the variables, by name.
        """
        return {self.env(name): str(getattr(self, name))
                for name in ("endpoint_name", "region", "max_tokens", "top_k",
                             "predict_connect_timeout", "predict_read_timeout",
                             "predict_attempts")}


@dataclass(frozen=True)
class AlertsConfig(Section):
    """Where failure and duration alerts go, and when a run counts as stuck."""

    slack_conn_id: str = setting("SKIFF_SLACK_CONN_ID", "slack_alerts", "Airflow connection "
                                 "(`slackwebhook`) of the Slack alerts; logged while it is missing")
    # make run and the tests set 0: Airflow 3.3.0's `dags test` cannot finish a run of a DAG with
    # a Deadline Alert (it looks the alerts up by id, and holds them as dicts), nor creates one.
    run_duration_alert_minutes: int = setting(
        "SKIFF_RUN_DURATION_ALERT_MINUTES", 60, "alert on a run still going this many minutes "
        "after it was queued (the DAG's Deadline Alert; `0`: off); not scaled with "
        "`SKIFF_SCHEDULE`: a run's work (dbt, validation, training) does not shrink with its "
        "interval")

    @property
    def run_duration_alert(self) -> timedelta | None:
        """``run_duration_alert_minutes`` as a ``timedelta``; None when the alert is off."""
        minutes = self.run_duration_alert_minutes
        return timedelta(minutes=minutes) if minutes else None


def _cron(raw: str) -> str:
    return " ".join(raw.split())


@dataclass(frozen=True)
class IngestConfig(Section):
    """What each data interval ingests, from where, how long it waits for late files, and when."""

    source: str = setting(
        "SKIFF_INGEST_SOURCE", "landing", "what `ingest_events` appends: `landing` (the "
        "landing files that arrived in the data interval: the collector's, Firehose's, or "
        "`skiff init`'s history) or `replay` (the replay source's events of it, while "
        "`SKIFF_REPLAY` is on: `make run-bad`)", choices=("landing", "replay"), clean=str.lower)
    grace_minutes: int = setting(
        "SKIFF_INGEST_GRACE_MINUTES", 10, "how long after an interval's end the landing ingest "
        "waits (deferred, in the triggerer) for late files, unless a file starting at or after "
        "the end shows the collector has moved on; the collector's lag (its roll, Firehose's "
        "buffer), whatever the schedule's interval")
    poll_seconds: int = setting("SKIFF_INGEST_POLL_S", 30,
                                "seconds between looks at the landing zone during that wait",
                                minimum=1)
    schedule: str = setting(
        "SKIFF_SCHEDULE", "0 * * * *", "cron (UTC, five fields) or preset (`@hourly`, `@daily` "
        "...) of `skiff_hourly`; its data intervals follow it, whole minutes at the shortest "
        "(`*/5 * * * *`: every 5 minutes, for a demo or a test): an interval ingests the "
        "landing files whose first event arrived in it", clean=_cron)

    _PRESETS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule in self._PRESETS:
            return
        from croniter import CroniterBadDateError, croniter

        name, fields_ = f"{self.env('schedule')}={self.schedule!r}", self.schedule.split()
        if len(fields_) == 6:
            raise SkiffConfigError(
                f"{name} has a sixth (seconds) field: data intervals are whole minutes, at "
                "least one; use five fields, e.g. '*/5 * * * *' (every 5 minutes).")
        if len(fields_) != 5 or not croniter.is_valid(self.schedule):
            raise SkiffConfigError(
                f"{name} is not a cron expression: use five fields, minute hour day-of-month "
                "month day-of-week (UTC), e.g. '0 * * * *', or a preset such as '@hourly'.")
        for part in fields_[0].split(","):  # the minute field, which croniter is lax about
            span, _, step = part.partition("/")
            low, _, high = span.partition("-")
            if high and int(low) > int(high):
                raise SkiffConfigError(f"{name}: the minute range {span} runs backwards; "
                                       f"write {high}-{low}.")
            if step and int(step) > 59:
                raise SkiffConfigError(
                    f"{name}: a minute step of /{step} fires once an hour, at minute "
                    f"{low if low != '*' else 0}; for longer intervals use the hour field, e.g. "
                    "'0 */2 * * *' (every two hours).")
            if step and span in ("*", "0-59") and 60 % int(step):
                raise SkiffConfigError(
                    f"{name}: the minute step /{step} does not divide the hour (it fires at "
                    f"minutes {croniter.expand(f'{part} * * * *')[0][0]}, so its intervals are "
                    "not all equal); use a divisor of 60, e.g. '*/5', or list the minutes.")
        try:
            croniter(self.schedule, datetime(2026, 1, 1, tzinfo=UTC)).get_next(datetime)
        except CroniterBadDateError:
            raise SkiffConfigError(f"{name} never fires (no such date).") from None


@dataclass(frozen=True)
class EmitConfig(Section):
    """``skiff emit``: the simulated shoppers and how they reach the collector."""

    url: str = setting("SKIFF_COLLECT_URL", "http://127.0.0.1:8070/collect",
                       "the collector's `POST /collect` that `skiff emit` posts to")
    seed: int = setting("SKIFF_EMIT_SEED", 42, "the shoppers' seed: the same seed gives the same "
                        "catalogue and the same events of any hour", maximum=2**63)
    sessions_per_hour: float = setting(
        "SKIFF_EMIT_SESSIONS_PER_HOUR", 450.0, "mean sessions starting in an hour at the daily "
        "peak (14:00 UTC; 0.25x that at 02:00); 450 is about `make run`'s 20,000 sessions over "
        "72 hours", minimum=1e-3, maximum=1e6)
    products: int = setting("SKIFF_EMIT_PRODUCTS", 5_000, "catalogue size (with the same seed, "
                            "the catalogue of `skiff generate --sessions 20000`)",
                            minimum=20, maximum=10**6)
    duplicate_share: float = setting("SKIFF_EMIT_DUPLICATE_SHARE", 0.002,
                                     "share of the events a client retry posts twice (a copy each: about twice that share of rows are copies, well under `SKIFF_MAX_DUPLICATE_SHARE`)",
                                     maximum=0.5)
    late_share: float = setting("SKIFF_EMIT_LATE_SHARE", 0.01, "share of the events posted "
                                "late, 2 minutes to `SKIFF_EMIT_MAX_LATENESS_MINUTES` after they "
                                "happened (most land in a later hour)", maximum=0.5)
    max_lateness_minutes: int = setting("SKIFF_EMIT_MAX_LATENESS_MINUTES", 90,
                                        "the latest a late event is posted, in minutes",
                                        minimum=3, maximum=24 * 60)
    speed: float = setting("SKIFF_EMIT_SPEED", 1.0, "how many times faster than real time "
                           "`skiff emit` (live) runs; its clock never runs ahead of the real one",
                           minimum=1e-3, maximum=1e6)
    batch_size: int = setting("SKIFF_EMIT_BATCH_SIZE", 500, "most events in one `POST`",
                              minimum=1, maximum=100_000)
    give_up_s: float = setting("SKIFF_EMIT_GIVE_UP_S", 120.0, "seconds a fast-forward keeps "
                               "retrying a batch while the collector is down (live never gives "
                               "up)", maximum=1e6)
    drift: str = setting("SKIFF_EMIT_DRIFT", "", "a behaviour change of the shoppers, for the "
                         "drift checks: `short` (sessions a quarter as long) or `tail` (they "
                         "view what others ignore); empty: none", choices=("", "short", "tail"),
                         clean=str.lower)
    drift_from: str = setting("SKIFF_EMIT_DRIFT_FROM", "", "when the drift starts (ISO 8601; "
                              "the sessions starting then or later drift); empty: every session")
    predict_url: str = setting("SKIFF_EMIT_PREDICT_URL", "", "the `GET /predict` URL the live "
                               "shoppers ask as they browse (`http://127.0.0.1:8000/predict` "
                               "for `skiff serve`); empty: they ask nothing")
    predict_share: float = setting("SKIFF_EMIT_PREDICT_SHARE", 0.5, "share of the sessions "
                                   "that ask `/predict` after each of their events (the intent "
                                   "model; after a product view also the recommendations)",
                                   maximum=1.0)
    predict_timeout_s: float = setting("SKIFF_EMIT_PREDICT_TIMEOUT_S", 2.0, "seconds a "
                                       "shopper's `/predict` may take (then counted failed)",
                                       minimum=0.01, maximum=60.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, url, example in (("url", self.url, "http://127.0.0.1:8070/collect"),
                                   ("predict_url", self.predict_url,
                                    "http://127.0.0.1:8000/predict")):
            if (url or name == "url") and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", url):
                raise SkiffConfigError(f"{self.env(name)}={url!r} is not an http(s) URL, e.g. "
                                       f"{example}.")
        if self.drift_from:
            try:
                parse_time(self.drift_from)
            except (ValueError, SkiffConfigError) as exc:
                raise SkiffConfigError(f"{self.env('drift_from')}={self.drift_from!r} is not a "
                                       "time (ISO 8601, e.g. 2026-11-28T03:00:00Z).") from exc


def _landing() -> str:
    return str(skiff_home() / "landing")


_landing.shown = "$SKIFF_HOME/landing"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CollectConfig(Section):
    """``skiff collect``: the ``/collect`` collector, its durable log, and the landing zone."""

    landing_uri: str = setting("SKIFF_LANDING_URI", _landing, "the landing zone: a folder or "
                               "`s3://bucket/prefix` (`AWS_ENDPOINT_URL` for a local S3)")
    log_dir: Path = setting("SKIFF_COLLECT_LOG_DIR", _Path("$SKIFF_HOME/collector"),
                            "the collector's append log: accepted events are fsync'd there "
                            "before the answer")
    host: str = setting("SKIFF_COLLECT_HOST", "127.0.0.1", "address `skiff collect` binds")
    port: int = setting("SKIFF_COLLECT_PORT", 8070, "its port (`0`: a free one)", maximum=65535)
    roll_seconds: float = setting("SKIFF_COLLECT_ROLL_SECONDS", 60.0, "a landing file is cut at "
                                  "most this many seconds after its first event (Firehose's "
                                  "buffer interval)", minimum=1e-3)
    roll_bytes: int = setting("SKIFF_COLLECT_ROLL_BYTES", 5 * 1024 * 1024, "... or once its "
                              "events take this many bytes, uncompressed (Firehose's buffer "
                              "size)", minimum=1)
    max_body_bytes: int = setting("SKIFF_COLLECT_MAX_BODY_BYTES", 1024 * 1024, "largest request "
                                  "body; a larger one gets 413", minimum=1)
    max_connections: int = setting("SKIFF_COLLECT_MAX_CONNECTIONS", 512, "connections busy "
                                   "with a request at once; one more is answered 503 (JSON, "
                                   "`Retry-After`); idle keep-alive ones do not count",
                                   minimum=1)
    keep_alive_s: int = setting("SKIFF_COLLECT_KEEP_ALIVE_S", 5, "seconds an idle keep-alive "
                                "connection stays open", minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        uri = self.landing_uri
        if "://" in uri and not uri.startswith("s3://"):
            raise SkiffConfigError(f"{self.env('landing_uri')}={uri!r}: use a folder or "
                                   "s3://bucket/prefix.")
        if "://" not in uri:  # a folder: absolute, as every other path setting
            object.__setattr__(self, "landing_uri", str(Path(uri).expanduser().resolve()))


@dataclass(frozen=True)
class MonitorConfig(Section):
    """What skiff_monitor checks on the monitoring marts, its thresholds, and the Skiff page."""

    snapshot_dir: Path = setting("SKIFF_MONITOR_DIR", _Path("$SKIFF_HOME/monitor"),
                                 "where skiff_monitor writes the snapshot the Skiff page shows "
                                 "(`snapshot.json`: the marts' recent hours and the registry)")
    window_hours: int = setting("SKIFF_MONITOR_WINDOW_HOURS", 3, "hours before a skiff_monitor "
                                "run that its checks cover", minimum=1, maximum=168)
    history_days: int = setting("SKIFF_MONITOR_HISTORY_DAYS", 7, "days of hourly metrics the "
                                "snapshot keeps for the page's charts", minimum=1, maximum=90)
    psi_max: float = setting("SKIFF_MONITOR_PSI_MAX", 0.2, "highest population stability index "
                             "of a feature's served hour against training (`0.2`: a real shift)")
    error_rate_max: float = setting("SKIFF_MONITOR_ERROR_RATE_MAX", 0.05, "highest share of "
                                    "failed `/predict` requests in an hour", maximum=1)
    latency_p99_ms_max: float = setting("SKIFF_MONITOR_LATENCY_P99_MS_MAX", 500.0, "highest "
                                        "p99 latency of `/predict` in an hour, milliseconds")
    quality_drop_max: float = setting("SKIFF_MONITOR_QUALITY_DROP_MAX", 0.5, "largest relative "
                                      "drop of the online hit rate@20 below the champion's "
                                      "offline one (`0.5`: half)", maximum=1)
    calibration_error_max: float = setting("SKIFF_MONITOR_CALIBRATION_ERROR_MAX", 0.15,
                                           "highest online calibration error of the intent model "
                                           "(mean predicted minus observed add-to-cart rate, "
                                           "absolute)", maximum=1)
    min_requests: int = setting("SKIFF_MONITOR_MIN_REQUESTS", 20, "an hour with fewer requests "
                                "(or scored predictions) is shown but not checked: too few to "
                                "judge")
    min_drift_sessions: int = setting(
        "SKIFF_MONITOR_MIN_DRIFT_SESSIONS", 150, "an hour with fewer served sessions is shown "
        "but its drift not checked: the PSI of a few sessions is large by chance alone")
    retrain: bool = setting("SKIFF_MONITOR_RETRAIN", True, "on a drift or online-quality breach, "
                            "skiff_monitor triggers skiff_hourly with a full retrain (all "
                            "sessions; at most one a day)")


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
    emit: EmitConfig = field(default_factory=EmitConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    @classmethod
    def from_env(cls) -> SkiffConfig:
        """Each section's ``from_env()``; the dbt target follows the warehouse read here."""
        read: dict[str, Section] = {}
        for name, kind in _sections().items():
            read[name] = kind.from_env(read["warehouse"]) if kind is DbtConfig else kind.from_env()
        return cls(**read)


def _sections() -> dict[str, type[Section]]:
    """The config class of each :class:`SkiffConfig` field, in field order."""
    return {f.name: field_types(SkiffConfig)[f.name] for f in fields(SkiffConfig)}


def settings() -> tuple[Setting, ...]:
    """Every setting: ``SKIFF_HOME``, then each section's fields in :class:`SkiffConfig`'s order.

    :return: one record per environment variable.
    """
    return (_HOME, *(record for kind in _sections().values() for record in records(kind)))


def markdown_table() -> str:
    """The configuration table of the README and the docs: :func:`settings`, by section.

    :return: Markdown: columns variable, default and meaning; a bold row opens each section
        with the first line of its class's (or function's) docstring.
    """
    return markdown(settings(), lambda section: inspect.getdoc(globals()[section]) or section)


for _kind in _sections().values():
    document(_kind)

if __name__ == "__main__":
    print(markdown_table(), end="")
