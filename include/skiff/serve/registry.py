"""The champion registry, and the gate that decides whether a challenger replaces the champion.

The registry lives in the artifact store: an S3 prefix in production, ``$SKIFF_HOME/registry``
by default, behind the two-method :class:`Storage` interface. Per model (``intent``,
``rec``) it keeps::

    <model>/champion.json                    the model serving now (a ChampionRecord)
    <model>/history/<time>-<pathspec>.json   every promotion, append-only
    <model>/decisions/<time>-<pathspec>.json every gate decision (promote or not, and why)

A champion is identified by its Metaflow run pathspec and carries its metrics, its bundle as
the endpoint serves it (a :class:`~skiff.serve.bundle.BundleRef`, what the flows' champion
branch resolves), what the endpoint serves (``artifact_uri``: the S3 tarball or the local
copy), and the endpoint and endpoint config serving it.

:func:`gate_decision` is the pure decision: it reuses :func:`skiff.train.metrics.compare` and adds
the registry's rules (first deploy: beat the best baseline; later: beat the champion, on
the same held-out sessions when the run re-scored the champion on them).
"""

# Longer than ~400 lines by the reader of registry records written before BundleRef, kept
# so champions promoted by earlier versions still load.

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from skiff.exceptions import DataContractError, ModelLoadError, RegistryError
from skiff.serve.bundle import BundleRef
from skiff.train import GateDecision, compare

__all__ = [
    "Storage",
    "LocalStorage",
    "S3Storage",
    "open_storage",
    "ChampionRecord",
    "ModelRegistry",
    "GateOutcome",
    "gate_decision",
    "higher_is_better",
]

_LOWER_IS_BETTER = re.compile(r"loss|error|rmse|mae|latency", re.IGNORECASE)


# --------------------------------------------------------------------------- storage

class Storage(Protocol):
    """Where registry documents live: text by key (``/``-separated)."""

    uri: str

    def read_text(self, key: str) -> str | None:
        """The document at ``key``, None when absent."""

    def write_text(self, key: str, text: str) -> None:
        """Write (replace) the document at ``key``, atomically."""

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""


class LocalStorage:
    """A folder: keys are relative paths; writes go through a temporary file and a rename.

    :param root: the folder (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise RegistryError(f"Key {key!r} leaves the registry folder {self.root}.")
        return path

    def read_text(self, key: str) -> str | None:
        try:
            return self._path(key).read_text()
        except FileNotFoundError:
            return None

    def write_text(self, key: str, text: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root.resolve())) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))


class S3Storage:
    """An S3 prefix, through a boto3 S3 client (e.g. ``S3Hook(...).get_conn()``).

    :param bucket: the bucket.
    :param prefix: key prefix of the registry (no leading or trailing ``/``).
    :param client: a boto3 ``s3`` client.
    """

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.uri = f"s3://{bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read_text(self, key: str) -> str | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:  # botocore's ClientError, without importing botocore here
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            raise
        return answer["Body"].read().decode()

    def write_text(self, key: str, text: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=text.encode(),
                               ContentType="application/json")

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        start = self._key(prefix).rstrip("/") + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[cut:] for k in keys)


def open_storage(uri: str, s3_client: Any = None) -> Storage:
    """The storage at ``uri``: ``s3://bucket/prefix`` or a local folder.

    :param uri: where the registry lives (``ServingConfig.registry``).
    :param s3_client: a boto3 S3 client; required for ``s3://`` URIs.
    :return: the storage.
    :raises RegistryError: an ``s3://`` URI without a client, or without a bucket.
    """
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[5:].partition("/")
        if not bucket:
            raise RegistryError(f"Registry URI {uri!r} names no bucket (s3://bucket/prefix).")
        if s3_client is None:
            raise RegistryError(f"Registry {uri} is on S3: pass an S3 client.")
        return S3Storage(bucket, prefix, s3_client)
    return LocalStorage(uri)


# --------------------------------------------------------------------------- records

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ChampionRecord:
    """The model serving an endpoint, and where everything about it is.

    :param model: ``intent`` or ``rec``.
    :param pathspec: the Metaflow run that trained it (``Flow/run_id``): its identity.
    :param metrics: its metrics when it was promoted.
    :param bundle: its bundle as the endpoint serves it: the local copy or the run's folder,
        and the tarball (the S3 object SageMaker serves, or the run's).
    :param artifact_uri: what the endpoint serves (``s3://.../model.tar.gz`` or a local copy).
    :param endpoint_name: the endpoint.
    :param endpoint_config_name: the endpoint config serving it.
    :param model_version: the version the endpoint reports (usually ``pathspec``).
    :param backend: ``local`` or ``sagemaker``.
    :param promoted_at: when it became champion (ISO 8601, UTC).
    :param previous: the pathspec of the champion it replaced.
    :param previous_endpoint_config_name: that champion's endpoint config (a rollback target).
    :param reason: the gate's reason.
    """

    model: str
    pathspec: str
    metrics: dict[str, Any]
    bundle: BundleRef
    artifact_uri: str
    endpoint_name: str
    endpoint_config_name: str
    model_version: str = ""
    backend: str = "local"
    promoted_at: str = field(default_factory=_now)
    previous: str | None = None
    previous_endpoint_config_name: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ChampionRecord:
        """Read a record, ignoring fields a newer Skiff may have added.

        A record written before the bundle was one value (``model_uri``: the run's folder)
        gets a bundle of the folder the endpoint serves (its local copy, else that folder)
        and of the S3 tarball SageMaker serves.

        :raises RegistryError: a required field is missing or the bundle is malformed.
        """
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        if "bundle" not in values and "model_uri" in doc:
            artifact = str(doc.get("artifact_uri") or "")
            on_s3 = artifact.startswith("s3://")
            values["bundle"] = {"pathspec": doc.get("pathspec"),
                                "folder": doc["model_uri"] if on_s3 or not artifact else artifact,
                                "tarball": artifact if on_s3 else ""}
        try:
            if isinstance(values.get("bundle"), Mapping):
                values["bundle"] = BundleRef.from_dict(values["bundle"])
            return cls(**values)
        except (TypeError, ModelLoadError) as exc:
            raise RegistryError(f"Not a champion record: {exc}; got keys {sorted(doc)}.") from None


class ModelRegistry:
    """Champions by model, on a :class:`Storage`.

    :param storage: where the documents live.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def _check_model(model: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", model):
            raise RegistryError(f"Model name {model!r} must be lower-case letters, digits, - or _.")

    def champion(self, model: str) -> ChampionRecord | None:
        """The current champion of ``model``, None before the first promotion.

        :raises RegistryError: the stored document is not a record.
        """
        self._check_model(model)
        text = self.storage.read_text(f"{model}/champion.json")
        if text is None:
            return None
        try:
            return ChampionRecord.from_dict(json.loads(text))
        except ValueError as exc:
            raise RegistryError(f"{self.storage.uri}/{model}/champion.json is not JSON: "
                                f"{exc}") from None

    def promote(self, record: ChampionRecord, *, expected_previous: str | None | bool = False
                ) -> ChampionRecord:
        """Make ``record`` the champion of its model and append it to the history.

        :param record: the new champion (``previous`` is filled in from the current one).
        :param expected_previous: the pathspec the caller believes is champion (None: none);
            when given and different, nothing is written (another run promoted meanwhile).
            ``False`` (default) skips the check.
        :return: the record written.
        :raises RegistryError: the champion changed since the caller looked.
        """
        current = self.champion(record.model)
        current_pathspec = current.pathspec if current else None
        if expected_previous is not False and expected_previous != current_pathspec:
            raise RegistryError(f"The {record.model} champion is {current_pathspec!r}, not "
                                f"{expected_previous!r}: another run promoted meanwhile.")
        fields_ = record.to_dict()
        if current and current.pathspec != record.pathspec:
            fields_["previous"] = current.pathspec
            fields_["previous_endpoint_config_name"] = current.endpoint_config_name
        written = ChampionRecord.from_dict(fields_)
        text = json.dumps(written.to_dict(), indent=2, sort_keys=True)
        stamp = written.promoted_at.replace(":", "").replace("-", "").replace("+0000", "Z")
        self.storage.write_text(
            f"{record.model}/history/{stamp}-{record.pathspec.replace('/', '-')}.json", text)
        self.storage.write_text(f"{record.model}/champion.json", text)
        return written

    def history(self, model: str) -> list[ChampionRecord]:
        """Every promotion of ``model``, oldest first."""
        self._check_model(model)
        records = []
        for key in self.storage.list(f"{model}/history"):
            text = self.storage.read_text(key)
            if text:
                records.append(ChampionRecord.from_dict(json.loads(text)))
        return records


    def record_decision(self, model: str, decision: Mapping[str, Any], *,
                        at: str | None = None) -> dict[str, Any]:
        """Keep one gate decision (promoted or not) of ``model``, append-only.

        :param model: ``intent`` or ``rec``.
        :param decision: the gate's result: :meth:`GateOutcome.to_dict` plus ``pathspec``
            (the candidate); other JSON-ready fields are kept as they are.
        :param at: when it was decided (ISO 8601, UTC); default now.
        :return: the document written (``decided_at`` added).
        :raises RegistryError: no ``pathspec`` or ``promote`` in ``decision``.
        """
        self._check_model(model)
        missing = [k for k in ("pathspec", "promote") if k not in decision]
        if missing:
            raise RegistryError(f"A gate decision of {model} needs {missing}; got "
                                f"{sorted(decision)}.")
        doc = {**decision, "model": model, "decided_at": at or _now()}
        stamp = doc["decided_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
        pathspec = str(doc["pathspec"]).replace("/", "-")
        self.storage.write_text(f"{model}/decisions/{stamp}-{pathspec}.json",
                                json.dumps(doc, indent=2, sort_keys=True, default=str))
        return doc

    def decisions(self, model: str, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` gate decisions of ``model``, newest first."""
        self._check_model(model)
        docs = []
        for key in reversed(self.storage.list(f"{model}/decisions")[-limit:]):
            text = self.storage.read_text(key)
            if text:
                docs.append(json.loads(text))
        return docs


# --------------------------------------------------------------------------- the gate

def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (False for losses and errors)."""
    return not _LOWER_IS_BETTER.search(metric)


@dataclass(frozen=True)
class GateOutcome:
    """The gate's decision and what the challenger was compared against.

    :param decision: :func:`skiff.train.metrics.compare`'s decision (promote, values, reason).
    :param against: ``baselines`` (first deploy), ``champion`` (re-scored on the same
        sessions), ``champion-recorded`` (its metrics at promotion), ``none`` or ``self``.
    :param champion_pathspec: the champion's pathspec, None when there is none.
    :param reference: the baseline's or champion's name the challenger had to beat.
    """

    decision: GateDecision
    against: str
    champion_pathspec: str | None = None
    reference: str | None = None

    @property
    def promote(self) -> bool:
        return self.decision.promote

    @property
    def reason(self) -> str:
        return self.decision.reason

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for XCom and logs)."""
        d = self.decision
        return {"promote": d.promote, "reason": d.reason, "metric": d.metric,
                "candidate": d.candidate, "champion": d.champion, "margin": d.margin,
                "against": self.against, "champion_pathspec": self.champion_pathspec,
                "reference": self.reference}


def _metric_set(metrics: Mapping[str, Any], metric: str) -> Mapping[str, Any]:
    """The mapping holding ``metric``: the top level, else a ``model`` sub-dict (flow layout)."""
    if metric not in metrics and isinstance(metrics.get("model"), Mapping):
        return metrics["model"]
    return metrics


def gate_decision(candidate_metrics: Mapping[str, Any], champion: ChampionRecord | None,
                  metric: str, margin: float = 0.0, *, candidate_pathspec: str | None = None
                  ) -> GateOutcome:
    """Decide whether the candidate replaces the champion (pure: no I/O).

    - No champion: the candidate must beat the best of ``candidate_metrics["baselines"]``
      (``{name: {metric: value}}``, scored on the same held-out sessions) by ``margin``;
      without baselines it is promoted (nothing to compare with).
    - A champion: the candidate must beat it by ``margin``. Its metrics are taken from
      ``candidate_metrics["champion"]`` when the run re-scored the champion on its own
      held-out sessions (``{"pathspec": ..., metric: ...}``), else from the champion's
      record (scored on older sessions; the reason says so).
    - The candidate is the champion already: not promoted.

    :param candidate_metrics: the run's ``metrics`` artifact; ``metric`` at the top level
        or under ``"model"``.
    :param champion: the current champion, or None.
    :param metric: the metric compared, e.g. ``mrr@20`` or ``roc_auc``.
    :param margin: required improvement, in the metric's units.
    :param candidate_pathspec: the candidate run's pathspec.
    :return: the outcome.
    :raises DataContractError: a metric set lacks ``metric`` or holds a non-number.
    :raises SkiffConfigError: ``margin < 0``.
    """
    better = higher_is_better(metric)
    candidate = _metric_set(candidate_metrics, metric)
    if champion is not None and candidate_pathspec and candidate_pathspec == champion.pathspec:
        value = float(candidate.get(metric, float("nan")))
        return GateOutcome(GateDecision(False, metric, value, value, margin,
                                        f"Keep champion: {candidate_pathspec} is the champion "
                                        "already."), "self", champion.pathspec,
                           champion.pathspec)
    if champion is None:
        baselines = candidate_metrics.get("baselines") or {}
        if not isinstance(baselines, Mapping) or not baselines:
            return GateOutcome(compare(candidate, None, metric, margin,
                                       higher_is_better=better), "none")
        scored = {}
        for name, values in baselines.items():
            if not isinstance(values, Mapping) or metric not in values:
                has = sorted(values) if isinstance(values, Mapping) else values
                raise DataContractError(f"Baseline {name!r} lacks {metric!r}; it has {has!r}.")
            scored[name] = float(values[metric])
        best = (max if better else min)(scored, key=scored.__getitem__)
        d = compare(candidate, baselines[best], metric, margin, higher_is_better=better)
        verdict = "Promote (first deploy)" if d.promote else "Reject (first deploy)"
        reason = (f"{verdict}: candidate {metric}={d.candidate:.4f} vs best baseline "
                  f"{best!r} {d.champion:.4f}; needs to be {'higher' if better else 'lower'} "
                  f"by more than {margin:.4f}.")
        return GateOutcome(GateDecision(d.promote, metric, d.candidate, d.champion, margin,
                                        reason), "baselines", None, best)
    rescored = candidate_metrics.get("champion")
    if isinstance(rescored, Mapping) and rescored.get("pathspec", champion.pathspec) \
            == champion.pathspec and metric in _metric_set(rescored, metric):
        d = compare(candidate, _metric_set(rescored, metric), metric, margin,
                    higher_is_better=better)
        return GateOutcome(d, "champion", champion.pathspec, champion.pathspec)
    d = compare(candidate, _metric_set(champion.metrics, metric), metric, margin,
                higher_is_better=better)
    reason = (f"{d.reason} The champion {champion.pathspec}'s {metric} is the one recorded "
              "at its promotion (older held-out sessions): re-score it in the flow to compare "
              "on the same sessions.")
    return GateOutcome(GateDecision(d.promote, metric, d.candidate, d.champion, margin, reason),
                       "champion-recorded", champion.pathspec, champion.pathspec)
