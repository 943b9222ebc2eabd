"""The /predict Lambda's zip: reproducible, the handler at its root, importable from the zip alone.

Lambda puts the zip's root on ``sys.path`` and imports ``handler`` (the template's
``Handler: handler.lambda_handler``): the handler must need nothing of ``skiff`` and, of the
``skiff_api`` package it lives in, only ``skiff_api.gateway``, which the zip carries. A fresh
interpreter proves it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from skiff_api import package

# Run in a fresh interpreter with the zip first on sys.path, as Lambda's runtime does; -I
# ignores PYTHONPATH and the user site, so only the zip and the standard library are found
# before site-packages (where an editable skiff could hide a dependency: hence the check).
_IMPORT_FROM_ZIP = """
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
answer = handler.lambda_handler({"rawPath": "/predict", "rawQueryString": "",
                                 "requestContext": {"http": {"method": "GET"}}}, None)
print(json.dumps({"file": handler.__file__, "status": answer["statusCode"],
                  "body": json.loads(answer["body"]),
                  "skiff": {m: sys.modules[m].__file__ for m in sys.modules
                            if m.split(".")[0] in ("skiff", "skiff_api")}}))
"""


def test_zip_holds_the_handler_and_gateway_and_is_reproducible(tmp_path: Path) -> None:
    first = package.build(tmp_path / "a" / "lambda.zip")
    second = package.build(tmp_path / "b" / "lambda.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        assert zf.namelist() == ["handler.py", "skiff_api/__init__.py", "skiff_api/gateway.py"]
        for name in ("handler.py", "gateway.py", "__init__.py"):
            inside = name if name == "handler.py" else f"skiff_api/{name}"
            assert zf.read(inside) == (package.HERE / name).read_bytes()


def test_handler_imports_from_the_zip_alone(tmp_path: Path) -> None:
    zip_path = package.build(tmp_path / "lambda.zip")
    proc = subprocess.run([sys.executable, "-I", "-c", _IMPORT_FROM_ZIP, str(zip_path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["file"] == str(zip_path / "handler.py")
    assert result["status"] == 400 and "Missing 'session'" in result["body"]["message"]
    # of the repository's packages, only the zip's own skiff_api.gateway is loaded
    assert result["skiff"] == {
        "skiff_api": str(zip_path / "skiff_api" / "__init__.py"),
        "skiff_api.gateway": str(zip_path / "skiff_api" / "gateway.py")}


def test_package_runs_as_a_script(tmp_path: Path) -> None:
    """``make lambda``'s command: the file run by path, outside the package."""
    out = tmp_path / "build" / "lambda.zip"
    proc = subprocess.run([sys.executable, "-I", str(package.HERE / "package.py"), str(out)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes() == package.build(tmp_path / "again.zip").read_bytes()
