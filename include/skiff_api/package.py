"""Build the ``/predict`` Lambda's deployment zip, byte for byte the same for the same code.

``make lambda`` runs it; the Lambda deploy operator runs it too when the zip is missing. The
zip holds ``handler.py`` alone, at its root, where Lambda imports it as ``handler``
(``Handler: handler.lambda_handler`` in ``template.yaml``): the handler needs nothing beyond
the standard library and the boto3 the Lambda Python runtime provides, nothing of ``skiff``
or of this package. Fixed timestamps and permissions keep the zip's SHA-256 stable, so an
unchanged handler is never re-uploaded.

    python include/skiff_api/package.py build/lambda.zip     # or python -m skiff_api.package
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

__all__ = ["FILES", "build"]

HERE = Path(__file__).resolve().parent
#: Files of the deployment package, relative to this folder.
FILES = ("handler.py",)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build(out: str | Path) -> Path:
    """Write the zip.

    :param out: the zip to write (folders are created).
    :return: its path.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(FILES):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (HERE / name).read_bytes())
    return out


if __name__ == "__main__":
    path = build(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[1] / "build" / "lambda.zip")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path} ({path.stat().st_size} bytes, sha256 {digest[:16]})")
