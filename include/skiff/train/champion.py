"""Re-score the serving champion on a run's own held-out sessions, so the gate compares like with like.

A training run scores its new model and the baselines on its held-out sessions. The champion
was scored on older sessions when it was promoted; comparing with that number mixes two test
sets. The flows' ``champion`` step therefore loads the champion's bundle (what the endpoint
serves, found by :func:`skiff.serve.bundle.resolve` as the deploy finds a run's, and loaded
as the model server loads it, :class:`skiff.serve.model.LoadedModel`) and scores it on the
run's held-out examples. The run's vocabulary and the champion's differ (SKUs come and
go), so examples are translated token by token; an item the champion does not know is its
OOV, a recommendation the run does not know never counts as a hit.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skiff.exceptions import RegistryError

if TYPE_CHECKING:
    from skiff.config import ServingConfig
    from skiff.train.intent import IntentData
    from skiff.train.next_item import NextItemData
    from skiff.serve import ChampionRecord, LoadedModel, ModelRegistry

__all__ = ["Champion", "open_registry", "s3_client", "load_champion", "translation",
           "intent_scores", "rec_top_k"]

log = logging.getLogger(__name__)

_PAD, _OOV = 0, 1
#: Rows per model call when scoring (the SavedModel takes any batch size).
BATCH = 2048


@dataclass(frozen=True)
class Champion:
    """The champion's registry record, its loaded bundle, and where the bundle was read.

    :param record: the registry's record.
    :param model: the loaded bundle.
    :param source: what was read: the record's bundle folder on this machine, or its
        tarball (a file, or the ``s3://`` object downloaded).
    """

    record: ChampionRecord
    model: LoadedModel
    source: str = ""

    @property
    def name(self) -> str:
        """Its column in the flows' metric tables."""
        return f"champion {self.record.pathspec}"


def open_registry(config: ServingConfig, client: Any = None) -> ModelRegistry:
    """The registry ``config`` names, from outside Airflow (a flow step on a laptop or on Batch).

    An ``s3://`` registry is read with the AWS connection the launching task handed to the run
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``,
    ``AWS_ENDPOINT_URL``: ``MetaflowHook.run_env``), passed to the client explicitly. Without
    handed keys the log says so and boto3's own chain applies (on Batch: the job's role).

    :param config: where the registry is.
    :param client: the S3 client of an ``s3://`` registry; default :func:`s3_client`.
    """
    from skiff.serve import ModelRegistry, open_storage

    uri = config.registry
    if uri.startswith("s3://"):
        client = client or s3_client(config)
    return ModelRegistry(open_storage(uri, client))


def s3_client(config: ServingConfig) -> Any:
    """A boto3 S3 client on the AWS variables handed to the run (see :func:`open_registry`).

    :param config: the serving settings (their region, unless one was handed).
    :return: the client.
    """
    import boto3

    return boto3.client("s3", **_handed_aws(config.region))


def _handed_aws(region: str) -> dict[str, str | None]:
    """boto3 client arguments from the AWS variables handed to the run (see :func:`open_registry`)."""
    env = os.environ
    args: dict[str, str | None] = {"region_name": env.get("AWS_DEFAULT_REGION") or region,
                                   "endpoint_url": env.get("AWS_ENDPOINT_URL") or None}
    if env.get("AWS_ACCESS_KEY_ID"):
        args.update(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                    aws_session_token=env.get("AWS_SESSION_TOKEN") or None)
    else:
        log.info("No AWS credentials handed to this run: reading the registry with the role of "
                 "this machine (a Batch job's role).")
    return args


def load_champion(model: str, config: ServingConfig, workdir: Path | None = None
                  ) -> Champion | None:
    """The champion of ``model``, loaded; None when there is none or it cannot be loaded.

    A champion that cannot be loaded is not the run's problem: the gate then compares with
    the champion's recorded metrics and says so. The reason is logged.

    :param model: ``intent`` or ``rec``.
    :param config: where the registry is.
    :param workdir: where to download and unpack a bundle that is not on this machine (the
        S3 tarball a run on Batch reaches); default a new temporary folder.
    """
    from skiff.serve import LoadedModel, bundle

    client = s3_client(config) if config.registry.startswith("s3://") else None
    try:
        record = open_registry(config, client).champion(model)
    except RegistryError as exc:
        log.warning("Cannot read the %s champion: %s", model, exc)
        return None
    if record is None:
        log.info("No %s champion yet: the run is compared with its baselines.", model)
        return None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="skiff-champion-"))
    ref = record.bundle
    try:
        if ref.tarball.startswith("s3://"):  # read with the handed credentials, as the registry
            client = client or s3_client(config)
        folder = bundle.resolve(ref, workdir, s3_client=client)
        loaded = LoadedModel.load(folder)
    except Exception as exc:  # noqa: BLE001  (S3, tar and TF errors alike: fall back, say why)
        log.warning("Cannot load the %s champion %s: %s: %s", model, record.pathspec,
                    type(exc).__name__, exc)
        return None
    source = ref.folder if ref.folder and Path(folder) == Path(ref.folder) else ref.tarball
    return Champion(record, loaded, source)


def translation(tokens: list[str], target_index: dict[str, int]) -> np.ndarray:
    """Ids of ``tokens`` (a vocabulary, PAD and OOV first) in another vocabulary.

    :param tokens: the source vocabulary's tokens, by id.
    :param target_index: the target vocabulary's ``{token: id}``.
    :return: ``source id -> target id``; PAD stays PAD, tokens the target lacks become OOV.
    """
    out = np.array([target_index.get(t, _OOV) for t in tokens], dtype=np.int32)
    out[_PAD], out[_OOV] = _PAD, _OOV
    return out


def _rows(padded: np.ndarray) -> list[list[int]]:
    """Right-padded id rows as id lists (what :meth:`LoadedModel.predict` takes)."""
    return [row[row != _PAD].tolist() or [_OOV] for row in padded]


def _predict(model: LoadedModel, rows: list[list[int]]) -> dict[str, np.ndarray]:
    parts = [model.predict(rows[i:i + BATCH]) for i in range(0, len(rows), BATCH)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def intent_scores(champion: LoadedModel, data: IntentData) -> tuple[np.ndarray, np.ndarray, None]:
    """The champion's purchase probabilities on ``data``'s train and held-out prefixes.

    Same shape as :func:`skiff.train.intent.model_scores`, for :func:`skiff.train.intent.score`.
    """
    to_champion = translation(list(data.vocab.tokens), champion.codec.index)
    p = [_predict(champion, _rows(to_champion[data.tokens(which)["tokens"]]))["probability"]
         for which in ("train", "held")]
    return p[0], p[1], None


def rec_top_k(champion: LoadedModel, data: NextItemData, k: int) -> np.ndarray:
    """The champion's top-``k`` lists for ``data``'s held-out examples, in ``data``'s ids.

    Items the run's vocabulary lacks are ``-1`` (never a hit); lists shorter than ``k`` (a
    champion exported with a smaller ``k``) are padded with ``-1``.
    """
    ex = data.eval_examples
    to_champion = translation(list(data.vocab.tokens), champion.codec.index)
    back = translation(champion.codec.tokens, {t: i for i, t in enumerate(data.vocab.tokens)})
    back[back == _OOV] = -1
    # the served model reads a session from its first item on (Codec.model_inputs keeps
    # its first id apart from the window): put it back in front of windows that cut it off
    rows = _rows(to_champion[ex.items])
    first = to_champion[ex.first]
    rows = [[int(f)] + r if seen > len(r) else r for f, r, seen in zip(first, rows, ex.length)]
    top = back[_predict(champion, rows)["items"][:, :k]]
    if top.shape[1] < k:
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=-1)
    return top
