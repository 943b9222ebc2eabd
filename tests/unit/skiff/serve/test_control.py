"""Which folders the control plane may load a model from: :func:`skiff.serve.control.confine`.

Over HTTP the refusals are probed in ``tests/integration/test_serving_adversarial.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from skiff.config import ServingConfig
from skiff.serve import EndpointStore
from skiff.serve.control import confine, model_roots


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, ...]:
    for folder in ("store/models/cfg-1", "extra/rec", "elsewhere/rec", "store/models2/rec"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "extra" / "in").symlink_to(tmp_path / "store" / "models" / "cfg-1")
    (tmp_path / "extra" / "out").symlink_to(tmp_path / "elsewhere")
    config = ServingConfig(model_roots=(tmp_path / "extra",))
    return model_roots(config, EndpointStore(tmp_path / "store"))


def test_the_roots_are_the_stores_copies_and_the_configured_ones(tmp_path: Path,
                                                                 roots: tuple[Path, ...]) -> None:
    assert roots == (tmp_path / "store" / "models", tmp_path / "extra")
    again = model_roots(ServingConfig(model_roots=(tmp_path / "store" / "models",)),
                        EndpointStore(tmp_path / "store"))
    assert again == (tmp_path / "store" / "models",)  # each once


@pytest.mark.parametrize(("asked", "loaded"), [
    pytest.param("store/models/cfg-1", "store/models/cfg-1", id="a-deploys-copy"),
    pytest.param("extra/rec", "extra/rec", id="a-configured-root"),
    pytest.param("extra/rec/../../store/models/cfg-1", "store/models/cfg-1",
                 id="dot-dot-between-roots"),
    pytest.param("extra/in", "store/models/cfg-1", id="symlink-to-another-root"),
])
def test_inside_the_roots_the_resolved_folder_is_loaded(tmp_path: Path, roots: tuple[Path, ...],
                                                        asked: str, loaded: str) -> None:
    assert confine(str(tmp_path / asked), roots) == tmp_path / loaded


@pytest.mark.parametrize("asked", [
    pytest.param("elsewhere/rec", id="outside"),
    pytest.param("store/models/../../elsewhere/rec", id="dot-dot-escape"),
    pytest.param("extra/out/rec", id="symlink-escape"),
    pytest.param("store/models2/rec", id="a-sibling-sharing-the-prefix"),
    pytest.param("store", id="the-stores-own-folder"),
])
def test_outside_the_roots_is_refused_naming_the_remedy(tmp_path: Path, roots: tuple[Path, ...],
                                                        asked: str) -> None:
    with pytest.raises(PermissionError, match="SKIFF_SERVE_MODEL_ROOTS") as refused:
        confine(str(tmp_path / asked), roots)
    assert str(tmp_path / asked) in str(refused.value)


def test_a_symlink_loop_is_refused_and_a_nul_byte_is_no_path(tmp_path: Path,
                                                              roots: tuple[Path, ...]) -> None:
    (tmp_path / "extra" / "a").symlink_to(tmp_path / "extra" / "b")
    (tmp_path / "extra" / "b").symlink_to(tmp_path / "extra" / "a")
    looping = str(tmp_path / "extra" / "a" / "x")
    if sys.version_info < (3, 13):
        with pytest.raises(PermissionError, match="does not resolve"):
            confine(looping, roots)
    else:  # 3.13 resolves a loop without raising: what it answers is still inside a root
        assert confine(looping, roots).is_relative_to(tmp_path / "extra")
    with pytest.raises(ValueError):
        confine(str(tmp_path / "extra" / "rec\x00"), roots)
