"""The model bundle: what a flow writes, a deploy ships and a model server loads.

A bundle is a folder, and the same layout packed is SageMaker's ``model.tar.gz``::

    <folder>/1/                      SavedModel (skiff.train.models.export_saved_model)
    <folder>/code/inference.py       TF Serving's pre/post-processing (skiff.serve.codec)
    <folder>/code/skiff_model.json   kind, version, vocabulary, max_len, k

- :func:`write_bundle` / :func:`read_bundle_meta`: write a bundle, read its metadata;
- :func:`pack_bundle` / :func:`unpack_bundle`: the tarball and back.

TensorFlow is imported by :func:`write_bundle` only.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.exceptions import ModelLoadError, SkiffConfigError
from skiff.serve.codec import KINDS, META_FILE, Codec

__all__ = [
    "SAVED_MODEL_DIR",
    "TARBALL",
    "write_bundle",
    "read_bundle_meta",
    "pack_bundle",
    "unpack_bundle",
]

#: Folder of the SavedModel inside a bundle (TF Serving's numbered version folder).
SAVED_MODEL_DIR = "1"
#: File name of a packed bundle (what SageMaker's ``ModelDataUrl`` points at).
TARBALL = "model.tar.gz"


# --------------------------------------------------------------------------- the format

def write_bundle(model: Any, path: str | Path, *, kind: str, vocabulary: Any, version: str,
                 max_len: int, k: int = 20, extra: dict[str, Any] | None = None) -> Path:
    """Write a servable model bundle: the SavedModel plus what serving needs to read requests.

    :param model: a Keras intent (tokens only) or next-item model.
    :param path: the bundle folder (replaced if it exists).
    :param kind: ``intent`` or ``rec``.
    :param vocabulary: a :class:`skiff.train.features.Vocabulary` or its tokens (PAD, OOV first).
    :param version: the model's identity, e.g. the Metaflow run pathspec.
    :param max_len: ids the model sees (the training window; the most recent are kept).
    :param k: list length of a next-item export.
    :param extra: more metadata to keep (metrics, data version ...), JSON-serialisable.
    :return: the bundle folder.
    :raises SkiffConfigError: ``kind`` is unknown or ``max_len < 1``.
    """
    from skiff.train import models

    if kind not in KINDS:
        raise SkiffConfigError(f"kind={kind!r} is not one of {KINDS}.")
    if max_len < 1:
        raise SkiffConfigError(f"max_len={max_len} must be >= 1.")
    tokens = list(getattr(vocabulary, "tokens", vocabulary))
    Codec({"kind": kind, "version": version, "vocabulary": tokens, "max_len": max_len})
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    models.export_saved_model(model, path / SAVED_MODEL_DIR, k=k)
    _write_code(path, kind=kind, vocabulary=tokens, version=version, max_len=max_len, k=k,
                extra=extra)
    return path


def _write_code(path: Path, *, kind: str, vocabulary: Any, version: str, max_len: int, k: int,
                extra: dict[str, Any] | None) -> None:
    tokens = list(getattr(vocabulary, "tokens", vocabulary))
    meta = {"format": 1, "kind": kind, "version": str(version), "max_len": int(max_len),
            "k": int(k) if kind == "rec" else 0, "vocabulary": tokens,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **(extra or {})}
    Codec(meta)  # validates the metadata before it is written
    code = path / "code"
    code.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("codec.py"), code / "inference.py")
    (code / META_FILE).write_text(json.dumps(meta))


def read_bundle_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a bundle folder.

    :param path: the bundle folder.
    :return: the ``code/skiff_model.json`` document.
    :raises ModelLoadError: the folder is not a bundle.
    """
    file = Path(path) / "code" / META_FILE
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is not a model bundle: {file} is missing (write it "
                             "with skiff.serve.bundle.write_bundle).") from None
    except ValueError as exc:
        raise ModelLoadError(f"{file} is not valid JSON: {exc}") from None


def pack_bundle(path: str | Path, out: str | Path) -> Path:
    """Pack a bundle as SageMaker's ``model.tar.gz`` (``1/``, ``code/`` at the archive root).

    :param path: the bundle folder.
    :param out: the tarball to write.
    :return: the tarball.
    :raises ModelLoadError: ``path`` is not a bundle.
    """
    read_bundle_meta(path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for child in sorted(Path(path).iterdir()):
            tar.add(child, arcname=child.name)
    return out


def unpack_bundle(packed: bytes | str | Path, path: str | Path) -> Path:
    """Unpack a :func:`pack_bundle` tarball (its bytes or its file) into the bundle folder ``path``.

    :return: the bundle folder (what it holds is checked when it is read or loaded).
    """
    path = Path(path)
    source = {"fileobj": io.BytesIO(packed)} if isinstance(packed, bytes) else {"name": packed}
    with tarfile.open(**source) as tar:
        tar.extractall(path, filter="data")
    return path
