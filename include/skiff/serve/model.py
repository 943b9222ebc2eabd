"""One model bundle loaded into this process, warmed up, predicting from token ids.

:class:`LoadedModel` is what an endpoint serves and what the flows' champion branch scores;
:func:`configure_tensorflow` sizes TensorFlow's thread pools before the first model loads.
TensorFlow is imported when a model is loaded, not with this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from skiff.exceptions import ModelLoadError
from skiff.serve.bundle import SAVED_MODEL_DIR, read_bundle_meta
from skiff.serve.codec import Codec

__all__ = ["LoadedModel", "configure_tensorflow"]

log = logging.getLogger(__name__)


class LoadedModel:
    """A bundle loaded into this process, warmed up, predicting from token ids.

    Immutable once built: an :class:`Endpoint` swaps whole objects, never their insides.

    :param path: the bundle folder.
    :param meta: its metadata.
    :param saved: the restored SavedModel.
    """

    def __init__(self, path: Path, meta: dict[str, Any], saved: Any) -> None:
        self.path = path
        self.meta = meta
        self.codec = Codec(meta)
        self.kind = self.codec.kind
        self.version = self.codec.version
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._saved = saved  # keeps the variables alive
        # the traced graph itself: calling it skips the polymorphic function's signature
        # matching, about 0.5 ms of the ~1.4 ms a tiny model's call costs
        concrete = getattr(saved.serve, "concrete_functions", None)
        self._fn = concrete[0] if concrete and len(concrete) == 1 else saved.serve

    @classmethod
    def load(cls, path: str | Path) -> LoadedModel:
        """Load a bundle and check it end to end with one prediction.

        :param path: the bundle folder.
        :return: the ready model.
        :raises ModelLoadError: anything is wrong: missing files, bad metadata, a signature
            that is not the kind's, or a failing warm-up prediction.
        """
        from skiff.train import models

        path = Path(path)
        meta = read_bundle_meta(path)
        try:
            Codec(meta)
        except ValueError as exc:
            raise ModelLoadError(f"{path}: {exc}") from None
        try:
            saved = models.load_saved_model(path / SAVED_MODEL_DIR)
        except Exception as exc:  # noqa: BLE001  (TF raises many types; none may escape a swap)
            raise ModelLoadError(f"{path}: the SavedModel does not load: "
                                 f"{type(exc).__name__}: {exc}") from exc
        model = cls(path, meta, saved)
        model._check_signature()
        try:
            model.warm_up()
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{path}: the warm-up prediction failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
        return model

    def _check_signature(self) -> None:
        fns = getattr(self._saved.serve, "concrete_functions", None)
        if not fns:
            raise ModelLoadError(f"{self.path}: the SavedModel has no 'serve' function.")
        args, kwargs = fns[0].structured_input_signature
        names = {getattr(spec, "name", None) for spec in args} | set(kwargs)
        expected = {"intent": {"tokens"}, "rec": {"items", "first"}}[self.kind]
        if names != expected:
            hint = (" An intent model with session 'features' cannot be served from tokens: "
                    "export one built with n_features=0." if "features" in names else "")
            raise ModelLoadError(f"{self.path}: a {self.kind} bundle's SavedModel takes "
                                 f"{sorted(expected)}, this one {sorted(names)}.{hint}")

    def warm_up(self) -> None:
        """Run one prediction (the first call of a SavedModel is slow; keep it off requests)."""
        outputs = self.predict([[2, 2]])
        if self.kind == "intent":
            p = outputs["probability"]
            if p.shape != (1,) or not np.isfinite(p).all():
                raise ModelLoadError(f"{self.path}: warm-up gave probabilities {p!r}.")
        elif outputs["items"].shape[0] != 1 or outputs["items"].shape[1] < 1:
            raise ModelLoadError(f"{self.path}: warm-up gave items of shape "
                                 f"{outputs['items'].shape}.")

    def predict(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Model outputs for id lists (from ``self.codec.encode``), in one model call.

        Rows from ``encode`` also carry what it left out (unknown SKUs, a fallback); those
        come back as the extra outputs ``ignored`` (object) and ``fallback`` (bool), one
        entry per row like the others, so a micro-batch's slices keep them with their rows
        and ``self.codec.response`` reads them.

        :param ids: one id list per session.
        :return: ``{"probability": (n,)}`` or ``{"items": (n, k), "scores": (n, k)}``, plus
            ``ignored`` and ``fallback`` (n,) when a row left something out.
        """
        inputs = self.codec.model_inputs(ids)
        arrays = {name: np.asarray(value, dtype=np.int32) for name, value in inputs.items()}
        out = {name: value.numpy() for name, value in self._fn(**arrays).items()}
        annotations = self.codec.annotations(ids)
        if annotations:
            ignored = np.empty(len(ids), dtype=object)
            for i, tokens in enumerate(annotations["ignored"]):  # tuples stay whole
                ignored[i] = tokens
            out["ignored"] = ignored
            out["fallback"] = np.asarray(annotations["fallback"], dtype=bool)
        return out

    def describe(self) -> dict[str, Any]:
        """Identity of the model, for ``GET /endpoints`` and deploy results."""
        return {"kind": self.kind, "model_version": self.version, "model_dir": str(self.path),
                "loaded_at": self.loaded_at}


def configure_tensorflow(threads: int) -> bool:
    """Set TensorFlow's intra- and inter-op thread pools (before its first op runs).

    :param threads: threads per pool; 0 leaves TensorFlow's default (one per core).
    :return: whether the setting took (False once TensorFlow's runtime has started).
    """
    if threads <= 0:
        return True
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime is initialised already (e.g. a model was loaded)
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            log.info("TensorFlow runs already with %s threads; SKIFF_SERVE_TF_THREADS=%s "
                     "applies to a fresh process.", current or "default", threads)
        return current == threads
    return True
