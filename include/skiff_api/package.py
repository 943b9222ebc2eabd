"""Build the Lambdas' deployment zips, byte for byte the same for the same code.

``make lambda`` runs it; the Lambda deploy operator runs it too when the zip is missing.
The ``/predict`` zip holds ``handler.py`` at its root, where Lambda imports it as ``handler``
(``Handler: handler.lambda_handler`` in ``template.yaml``), and ``skiff_api/__init__.py``
and ``skiff_api/gateway.py`` (the proxy-event shaping both handlers share): it needs
nothing beyond them, the standard library and the boto3 the Lambda Python runtime provides,
nothing of ``skiff``. The ``/collect`` zip (``--collect``) holds ``collect.py`` at its root
(``Handler: collect.lambda_handler``), the same two ``skiff_api`` files, and the few
``skiff`` modules it shares with ``skiff collect``, the contract checks, which need the
standard library only. Fixed
timestamps and permissions keep the zips' SHA-256 stable, so an unchanged handler is never
re-uploaded.

    python include/skiff_api/package.py build/lambda.zip     # or python -m skiff_api.package
    python include/skiff_api/package.py --collect build/collect.zip
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

__all__ = ["FILES", "COLLECT_FILES", "build", "build_collect"]

HERE = Path(__file__).resolve().parent
_INCLUDE = HERE.parent
#: Files of the ``/predict`` package: name in the zip -> source under ``include/``.
FILES = {
    "handler.py": "skiff_api/handler.py",
    "skiff_api/__init__.py": "skiff_api/__init__.py",
    "skiff_api/gateway.py": "skiff_api/gateway.py",
}
#: Files of the ``/collect`` package: name in the zip -> source under ``include/``.
COLLECT_FILES = {
    "collect.py": "skiff_api/collect.py",
    "skiff_api/__init__.py": "skiff_api/__init__.py",
    "skiff_api/gateway.py": "skiff_api/gateway.py",
    "skiff/__init__.py": "skiff/__init__.py",
    "skiff/_exports.py": "skiff/_exports.py",
    "skiff/data/__init__.py": "skiff/data/__init__.py",
    "skiff/data/contract.py": "skiff/data/contract.py",
    "skiff/data/contract.toml": "skiff/data/contract.toml",
    "skiff/data/intake.py": "skiff/data/intake.py",
}
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build(out: str | Path, files: dict[str, Path] | None = None) -> Path:
    """Write a zip.

    :param out: the zip to write (folders are created).
    :param files: name in the zip -> source file; default the ``/predict`` package.
    :return: its path.
    """
    files = files or {name: _INCLUDE / source for name, source in FILES.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, Path(files[name]).read_bytes())
    return out


def build_collect(out: str | Path) -> Path:
    """Write the ``/collect`` zip (:data:`COLLECT_FILES`).

    :param out: the zip to write.
    :return: its path.
    """
    return build(out, {name: _INCLUDE / source for name, source in COLLECT_FILES.items()})


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--collect"]:
        path = build_collect(args[1] if len(args) > 1 else
                             HERE.parents[1] / "build" / "collect.zip")
    else:
        path = build(args[0] if args else HERE.parents[1] / "build" / "lambda.zip")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path} ({path.stat().st_size} bytes, sha256 {digest[:16]})")
