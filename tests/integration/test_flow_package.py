"""The training flows' Metaflow code package carries ``skiff``: what a Batch container gets.

A remote step (AWS Batch) runs from the code package alone: Metaflow packs the flow's folder
(``include/flows``), dereferencing symlinks, with the files the launch's package suffixes
allow. ``include/flows/skiff`` is a symlink to ``include/skiff``. These tests save the very
package a launch would upload (same top-level options) and check that every ``skiff`` module
a step imports is in it, then unpack it in an empty folder and import the flows' steps' modules
from there alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from skiff.config import TrainingConfig
from skiff.train import flow_launch

pytestmark = pytest.mark.integration

FLOWS = Path(__file__).resolve().parents[2] / "include" / "flows"
PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "flows" / "skiff_imports.py"


def _probe(folder: Path, *, isolated: bool, cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} if isolated else dict(os.environ)
    argv = [sys.executable, *(["-I"] if isolated else []), str(PROBE), str(folder)]
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tarfile.TarFile:
    """The code package of ``train_intent.py`` as a Batch launch builds it."""
    out = tmp_path_factory.mktemp("package") / "package.tgz"
    launch = flow_launch(FLOWS / "train_intent.py", {}, TrainingConfig(
        train_on="batch", s3_root="s3://bucket/mf", batch_queue="q",
        batch_job_role="arn:aws:iam::123456789012:role/skiff-batch"))
    # the launch's own package options; datastore and --with batch do not change the package
    top = [f"--{key.replace('_', '-')}={value}" for key, value in launch.top_level.items()
           if key not in ("pylint", "datastore", "decospecs")]
    assert top, "the launch sets no package option"
    done = subprocess.run([sys.executable, str(launch.flow_file), "--no-pylint", *top, "package",
                           "save", str(out)],
                          env={**os.environ, **launch.env, "METAFLOW_DEFAULT_DATASTORE": "local"},
                          capture_output=True, text=True, timeout=240, cwd=FLOWS)
    assert done.returncode == 0, done.stderr[-3000:]
    return tarfile.open(out)


def test_every_skiff_module_a_step_imports_is_in_the_package(package: tarfile.TarFile) -> None:
    loaded = _probe(FLOWS, isolated=False, cwd=FLOWS)
    assert "skiff.train.intent" in loaded and "skiff.data.warehouse" in loaded  # the probe saw the steps
    root = Path(loaded["skiff"]).parent
    needed = {Path(f).relative_to(root).as_posix() for f in loaded.values() if f}
    members = {m.name for m in package.getmembers() if m.isfile()}
    assert {f"skiff/{n}" for n in needed} <= members
    assert {"train_intent.py", "train_rec.py", "training_flow.py", "skiff/data/contract.toml"} <= members


def test_the_unpacked_package_alone_imports_every_step_module(package: tarfile.TarFile,
                                                             tmp_path: Path) -> None:
    folder = tmp_path / "task"
    package.extractall(folder, filter="data")
    loaded = _probe(folder, isolated=True, cwd=tmp_path)
    assert loaded, "no skiff module imported"
    outside = {n: f for n, f in loaded.items() if f and not f.startswith(str(folder))}
    assert not outside, f"imported from outside the package: {outside}"
    # the contract file (not Python) came along: the data module reads it
    done = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                           "from skiff.data import contract; print(contract.BROWSING.name)",
                           str(folder)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.split() == ["browsing_train"], done.stderr[-2000:]
