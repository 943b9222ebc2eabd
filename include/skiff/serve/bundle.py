"""The model bundle: its format, and the one value (:class:`BundleRef`) saying where it is.

A bundle is a folder, and the same layout packed is SageMaker's ``model.tar.gz``::

    <folder>/1/                      SavedModel (skiff.train.models.export_saved_model)
    <folder>/code/inference.py       TF Serving's pre/post-processing (skiff.serve.codec)
    <folder>/code/skiff_model.json   kind, version, vocabulary, max_len, k, popular (rec)

- :func:`write_bundle` / :func:`read_bundle_meta`: write a bundle, read its metadata;
- :func:`pack_bundle` / :func:`unpack_bundle`: the tarball and back;
- :class:`BundleRef`: a run's bundle as one value (run pathspec, folder, tarball), the flows'
  ``bundle`` artifact and the XCom the training, gate and deploy tasks pass on;
- :func:`resolve`: the one way from a :class:`BundleRef` to a bundle folder on this machine
  (the folder when it is here, else the tarball, local or on S3, unpacked);
- :func:`tarball` / :func:`upload`: the tarball to ship (the one the run packed, packed
  again only when there is none) and its copy to an ``s3://`` URI.

TensorFlow is imported by :func:`write_bundle` only; boto3 only to reach an ``s3://`` tarball
without a client.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.exceptions import ModelLoadError, SkiffConfigError
from skiff.serve.codec import KINDS, META_FILE, Codec

__all__ = [
    "FORMAT",
    "SAVED_MODEL_DIR",
    "TARBALL",
    "write_bundle",
    "read_bundle_meta",
    "is_bundle",
    "pack_bundle",
    "unpack_bundle",
    "BundleRef",
    "resolve",
    "tarball",
    "upload",
]

#: Folder of the SavedModel inside a bundle (TF Serving's numbered version folder).
SAVED_MODEL_DIR = "1"
#: File name of a packed bundle (what SageMaker's ``ModelDataUrl`` points at).
TARBALL = "model.tar.gz"


# --------------------------------------------------------------------------- the format

#: Version of the metadata layout: 2 added ``popular`` (next-item bundles); readers accept 1.
FORMAT = 2


def write_bundle(model: Any, path: str | Path, *, kind: str, vocabulary: Any, version: str,
                 max_len: int, k: int = 20, popular: Mapping[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write a servable model bundle: the SavedModel plus what serving needs to read requests.

    :param model: a Keras intent (tokens only) or next-item model.
    :param path: the bundle folder (replaced if it exists).
    :param kind: ``intent`` or ``rec``.
    :param vocabulary: a :class:`skiff.train.features.Vocabulary` or its tokens (PAD, OOV first).
    :param version: the model's identity, e.g. the Metaflow run pathspec.
    :param max_len: ids the model sees (the training window; the most recent are kept).
    :param k: list length of a next-item export.
    :param popular: a next-item bundle's fallback for sessions with no known SKU:
        ``{"items": [SKU, ...], "scores": [share, ...]}``, most popular first
        (:func:`skiff.train.next_item.popular_items`); None leaves it out (the fallback is
        then an empty list with a message).
    :param extra: more metadata to keep (metrics, data version ...), JSON-serialisable.
    :return: the bundle folder.
    :raises SkiffConfigError: ``kind`` is unknown, ``max_len < 1``, or ``popular`` is
        malformed or given to an intent bundle.
    """
    from skiff.train import models

    if kind not in KINDS:
        raise SkiffConfigError(f"kind={kind!r} is not one of {KINDS}.")
    if max_len < 1:
        raise SkiffConfigError(f"max_len={max_len} must be >= 1.")
    if popular is not None and kind != "rec":
        raise SkiffConfigError(f"popular items belong to next-item bundles, not {kind!r}.")
    tokens = list(getattr(vocabulary, "tokens", vocabulary))
    try:
        Codec({"kind": kind, "version": version, "vocabulary": tokens, "max_len": max_len,
               **({"popular": popular} if popular is not None else {})})
    except ValueError as exc:
        raise SkiffConfigError(str(exc)) from None
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    models.export_saved_model(model, path / SAVED_MODEL_DIR, k=k)
    _write_code(path, kind=kind, vocabulary=tokens, version=version, max_len=max_len, k=k,
                popular=popular, extra=extra)
    return path


def _write_code(path: Path, *, kind: str, vocabulary: Any, version: str, max_len: int, k: int,
                popular: Mapping[str, Any] | None, extra: dict[str, Any] | None) -> None:
    tokens = list(getattr(vocabulary, "tokens", vocabulary))
    meta = {"format": FORMAT, "kind": kind, "version": str(version), "max_len": int(max_len),
            "k": int(k) if kind == "rec" else 0, "vocabulary": tokens,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **(extra or {})}
    if popular is not None:
        meta["popular"] = {"items": [str(t) for t in popular["items"]],
                           "scores": [float(x) for x in popular["scores"]]}
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


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle folder on this machine (it has the metadata file)."""
    return bool(str(path)) and (Path(path) / "code" / META_FILE).is_file()


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


# --------------------------------------------------------------------------- the one value

@dataclass(frozen=True)
class BundleRef:
    """Where a run's bundle is: the value the flows record and the Airflow tasks pass on.

    Either location may be missing on a given machine (a run on AWS Batch wrote its folder
    inside a container); :func:`resolve` finds the bundle from whichever is reachable.

    :param pathspec: the Metaflow run that trained the model (``Flow/run_id``).
    :param folder: the bundle folder, as a path on the machine that wrote it.
    :param tarball: its ``model.tar.gz``: a file path or an ``s3://`` URI ("" when none).
    :raises ModelLoadError: no pathspec, or neither a folder nor a tarball.
    """

    pathspec: str
    folder: str = ""
    tarball: str = ""

    def __post_init__(self) -> None:
        for name in ("pathspec", "folder", "tarball"):
            if not isinstance(getattr(self, name), str):
                raise ModelLoadError(f"BundleRef.{name} must be text, not "
                                     f"{type(getattr(self, name)).__name__}: "
                                     f"{getattr(self, name)!r:.200}.")
        if "/" not in self.pathspec:
            raise ModelLoadError(f"BundleRef.pathspec={self.pathspec!r} is not a Metaflow run "
                                 "pathspec ('Flow/run_id').")
        if not (self.folder or self.tarball):
            raise ModelLoadError(f"The bundle of {self.pathspec} names neither a folder nor a "
                                 "tarball.")

    def to_dict(self) -> dict[str, str]:
        """The reference as a JSON-ready dict (a Metaflow artifact, an XCom)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> BundleRef:
        """Read a reference written by :meth:`to_dict`, ignoring keys a newer Skiff may add.

        :raises ModelLoadError: ``doc`` is not a mapping with a pathspec and a location.
        """
        if not isinstance(doc, Mapping):
            raise ModelLoadError(f"A bundle reference is a dict with 'pathspec', 'folder' and "
                                 f"'tarball'; got {doc!r:.200}.")
        return cls(**{name: doc.get(name) or "" for name in ("pathspec", "folder", "tarball")})


# --------------------------------------------------------------------------- where it is

def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not (uri.startswith("s3://") and bucket and key):
        raise ModelLoadError(f"{uri!r} is not an s3://bucket/key URI.")
    return bucket, key


def _s3(client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


def resolve(ref: BundleRef, workdir: str | Path, *, s3_client: Any = None) -> Path:
    """A bundle folder on this machine holding ``ref``'s bundle.

    The folder itself when this machine has it; else the tarball (a local file, or an
    ``s3://`` object downloaded to ``<workdir>/model.tar.gz``) unpacked into
    ``<workdir>/bundle``.

    :param ref: the bundle.
    :param workdir: where to download and unpack when needed.
    :param s3_client: a boto3 S3 client (e.g. ``S3Hook(...).get_conn()``); default boto3's,
        with the default credentials, created only for an ``s3://`` tarball.
    :return: the bundle folder (its contents are checked when it is read or loaded).
    :raises ModelLoadError: neither the folder nor the tarball is reachable (an S3 tarball
        that is missing or forbidden included; other S3 errors propagate).
    """
    if is_bundle(ref.folder):
        return Path(ref.folder)
    workdir = Path(workdir)
    if ref.tarball.startswith("s3://"):
        bucket, key = _split_s3(ref.tarball)
        workdir.mkdir(parents=True, exist_ok=True)
        source = workdir / TARBALL
        try:
            _s3(s3_client).download_file(bucket, key, str(source))
        except Exception as exc:  # botocore's ClientError, without importing botocore here
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code not in ("404", "NoSuchKey", "403", "AccessDenied"):
                raise
            raise ModelLoadError(f"The bundle of {ref.pathspec} cannot be read from "
                                 f"{ref.tarball} ({code}).") from exc
    elif ref.tarball and Path(ref.tarball).is_file():
        source = Path(ref.tarball)
    else:
        raise ModelLoadError(f"The bundle of {ref.pathspec} is not on this machine: "
                             f"folder={ref.folder!r} is no bundle folder here and "
                             f"tarball={ref.tarball!r} is no file here or on S3.")
    return unpack_bundle(source, workdir / "bundle")


def tarball(ref: BundleRef, workdir: str | Path) -> str:
    """The tarball to ship: the one ``ref`` names when it exists, else the folder packed.

    :param ref: the bundle.
    :param workdir: where to pack (``<workdir>/model.tar.gz``) when there is no tarball.
    :return: a file path or an ``s3://`` URI.
    :raises ModelLoadError: there is no tarball and no bundle folder to pack.
    """
    if ref.tarball.startswith("s3://") or (ref.tarball and Path(ref.tarball).is_file()):
        return ref.tarball
    folder = resolve(ref, workdir)
    return str(pack_bundle(folder, Path(workdir) / TARBALL))


def upload(ref: BundleRef, uri: str, workdir: str | Path, *, s3_client: Any = None) -> BundleRef:
    """Put ``ref``'s tarball at ``uri`` (an S3 copy when it is on S3 already, else an upload).

    :param ref: the bundle.
    :param uri: ``s3://bucket/key`` to write.
    :param workdir: where to pack when ``ref`` has no tarball (see :func:`tarball`).
    :param s3_client: a boto3 S3 client; default boto3's.
    :return: ``ref`` with ``tarball=uri``.
    :raises ModelLoadError: ``uri`` is not an S3 URI, or there is nothing to upload.
    """
    bucket, key = _split_s3(uri)
    source = tarball(ref, workdir)
    client = _s3(s3_client)
    if source.startswith("s3://"):
        if source != uri:
            from_bucket, from_key = _split_s3(source)
            client.copy({"Bucket": from_bucket, "Key": from_key}, bucket, key)
    else:
        client.upload_file(source, bucket, key)
    return replace(ref, tarball=uri)
