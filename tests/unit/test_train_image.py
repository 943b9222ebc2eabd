"""The training image (``Dockerfile.train``, ``requirements-train.txt``) stays in step with the
project's pins and with ``SKIFF_BATCH_IMAGE``; parsed, since no Docker daemon runs here."""

from __future__ import annotations

import re
import shlex
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from dockerfiles import dockerfile_instructions
from packaging.requirements import Requirement

from skiff.config import TrainingConfig

REPO = Path(__file__).resolve().parents[2]


def _instructions(name: str) -> list[tuple[str, str]]:
    return dockerfile_instructions(REPO / name)


def _requirements(name: str) -> dict[str, Requirement]:
    lines = (REPO / name).read_text().splitlines()
    reqs = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {req.name.lower(): req for req in reqs}


def _pin(req: Requirement) -> str:
    spec = str(req.specifier)
    assert spec.startswith("==") and "," not in spec, f"{req} is not pinned with =="
    return spec[2:]


TRAIN = _requirements("requirements-train.txt")


def test_base_is_the_tensorflow_gpu_image_of_the_project_s_tensorflow() -> None:
    steps = _instructions("Dockerfile.train")
    args = dict(a.split("=", 1) for kw, a in steps if kw == "ARG" and "=" in a)
    assert args["TF_VERSION"] == _pin(_requirements("requirements.txt")["tensorflow-cpu"])
    assert [a for kw, a in steps if kw == "FROM"] == ["tensorflow/tensorflow:${TF_VERSION}-gpu"]
    # the ARG is declared again after FROM, so that the RUN below sees its value
    assert steps.index(("ARG", "TF_VERSION")) > steps.index(("FROM", "tensorflow/tensorflow:${TF_VERSION}-gpu"))


def test_one_install_of_the_training_pins_holding_tensorflow_at_the_base_s_version() -> None:
    steps = _instructions("Dockerfile.train")
    copies = {shlex.split(a)[0]: shlex.split(a)[-1] for kw, a in steps if kw == "COPY"}
    assert copies == {"requirements-train.txt": "/tmp/requirements-train.txt"}  # no code, no secrets
    installs = [a for kw, a in steps if kw == "RUN" and "pip install" in a]
    assert len(installs) == 1
    argv = shlex.split(installs[0].split("&&")[0])
    assert '"tensorflow==${TF_VERSION}"' in installs[0] and "-r" in argv
    assert argv[argv.index("-r") + 1] == copies["requirements-train.txt"]
    ignore = (REPO / "Dockerfile.train.dockerignore").read_text().split()
    assert [line for line in ignore if not line.startswith("#")][-2:] == ["*", "!requirements-train.txt"]


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_each_training_pin_is_the_project_s(name: str) -> None:
    """requirements.txt's pin where it has one; else the version this venv resolved (what the
    tests ran with)."""
    project = _requirements("requirements.txt")
    pin = _pin(TRAIN[name])
    if name in project:
        assert pin == _pin(project[name]), f"requirements-train.txt {name}=={pin} vs requirements.txt"
    else:
        try:
            installed = version(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed in the project's venv: it was never tested")
        assert pin == installed, f"requirements-train.txt {name}=={pin}, the venv has {installed}"


def test_no_airflow_in_the_training_image() -> None:
    assert not [n for n in TRAIN if "airflow" in n or n.startswith(("astronomer", "dbt-"))]


def test_the_training_stack_is_listed() -> None:
    # boto3 and requests: what Metaflow's Batch bootstrap needs (the launch skips its pip install)
    assert {"metaflow", "wandb", "duckdb", "pyarrow", "snowflake-connector-python", "boto3",
            "requests"} <= set(TRAIN)


def test_make_train_image_builds_the_default_batch_image() -> None:
    makefile = (REPO / "Makefile").read_text()
    tag = re.search(r"^TRAIN_IMAGE \?= (\S+)$", makefile, re.M)
    assert tag and tag.group(1) == TrainingConfig().batch_image
    recipe = re.search(r"^train-image:.*\n\t(.+)$", makefile, re.M)
    assert recipe and shlex.split(recipe.group(1)) == [
        "docker", "build", "-f", "Dockerfile.train", "-t", "$(TRAIN_IMAGE)", "."]
