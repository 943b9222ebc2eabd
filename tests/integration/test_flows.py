"""RecFlow and IntentFlow end to end on a tiny warehouse, launched as the DAG launches them."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from hooks.metaflow_runner import MetaflowHook
from skiff.data import DuckDBWarehouse
from skiff.serve import BundleRef, read_bundle_meta

pytestmark = pytest.mark.integration

FLOWS = Path(__file__).resolve().parents[2] / "include" / "flows"


@pytest.mark.parametrize(
    ("flow_file", "headline", "keys"),
    [
        # both slow (19 s each): RecFlow runs end to end in make test in the hourly DAG
        # (test_hourly_run), IntentFlow there and on the S3 datastore (test_s3_datastore_moto)
        pytest.param("train_rec.py", "mrr@20", {"mrr@20", "hit_rate@20", "coverage@20", "mrr@20 long_tail"},
                     id="rec", marks=pytest.mark.slow),
        pytest.param("train_intent.py", "roc_auc", {"roc_auc", "f1", "precision", "recall", "roc_auc@add+10"},
                     id="intent", marks=pytest.mark.slow),
    ],
)
def test_flow_runs_end_to_end(marts_warehouse: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                              flow_file: str, headline: str, keys: set[str]) -> None:
    monkeypatch.setenv("SKIFF_DUCKDB_PATH", str(marts_warehouse))
    monkeypatch.setenv("SKIFF_REGISTRY_URI", str(tmp_path / "registry"))  # no champion yet
    hook = MetaflowHook()
    launch = hook.launch(FLOWS / flow_file, {"epochs": 1, "interval_end": "2026-11-01T00:00:00+00:00",
                                             "max_sessions": 2500}, ["test"])
    lines: list[str] = []
    pathspec = hook.run(launch, log=lines.append)
    metrics = hook.metrics(pathspec)
    assert keys <= set(metrics["model"]), metrics["model"].keys()
    assert 0.0 <= metrics[headline] <= 1.0
    assert len(metrics["baselines"]) == 2

    run = hook.client.Run(pathspec)
    end = run.data
    assert end.data_version["interval_end"] == "2026-11-01T00:00:00+00:00"
    assert sum(end.data_version["row_counts"].values()) > 0
    assert Path(end.keras_path).is_file()
    bundle = BundleRef.from_dict(end.bundle)
    assert hook.bundle(pathspec) == bundle  # what the training task hands the gate and deploy
    assert bundle.pathspec == pathspec and (Path(bundle.folder) / "1" / "saved_model.pb").is_file()
    meta = read_bundle_meta(bundle.folder)
    assert meta["version"] == pathspec  # what the endpoint will report
    if flow_file == "train_rec.py":  # a session of unknown SKUs gets the popular items
        popular = meta["popular"]
        assert len(popular["items"]) == len(popular["scores"]) == 20
        assert set(popular["items"]) <= set(meta["vocabulary"][2:])
        assert popular["scores"] == sorted(popular["scores"], reverse=True)
    assert Path(bundle.tarball).read_bytes()[:2] == b"\x1f\x8b"  # SageMaker's model.tar.gz
    assert "champion" not in metrics and end.champion_pathspec is None  # no champion yet
    assert "test" in run.tags
    flow, run_id = pathspec.split("/")
    steps = hook.config.metaflow_root / ".metaflow" / "mf.cards" / flow / "runs" / run_id / "steps"
    (card,) = (steps / "evaluate").glob("tasks/*/cards/*.html")
    (blob,) = re.findall(r'__MF_DATA__\["[^"]+"\] = "([A-Za-z0-9+/=]+)"', card.read_text())
    assert headline in base64.b64decode(blob).decode()  # the side-by-side table is in the card
    assert any(f"{headline} " in line and "keras" in line for line in lines)  # the log was streamed


def test_bad_input_fails_with_the_flow_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hooks.metaflow_runner import MetaflowRunFailed

    monkeypatch.setenv("SKIFF_DUCKDB_PATH", str(tmp_path / "empty.duckdb"))
    DuckDBWarehouse(tmp_path / "empty.duckdb").ensure_raw_tables()
    hook = MetaflowHook()
    with pytest.raises(MetaflowRunFailed, match="does not exist; run `dbt build` first"):
        hook.run(hook.launch(FLOWS / "train_rec.py", {"epochs": 1}), log=lambda _: None)
