"""Configuration: defaults, environment overrides, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.config import DbtConfig, ReplayConfig, SkiffConfig, WarehouseConfig
from skiff.exceptions import SkiffConfigError


def test_defaults_live_under_skiff_home(skiff_home: Path) -> None:
    cfg = SkiffConfig.from_env()
    assert cfg.warehouse.backend == "duckdb"
    assert cfg.warehouse.duckdb_path == skiff_home / "warehouse.duckdb"
    assert cfg.replay.source_dir == skiff_home / "source"
    assert cfg.replay.enabled is True
    assert cfg.dbt.target == "duckdb"
    assert cfg.dbt.manifest_path.name == "manifest.json"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SKIFF_DBT_TARGET", raising=False)  # Cosmos may leave it in os.environ
    monkeypatch.setenv("SKIFF_WAREHOUSE", "Snowflake")
    monkeypatch.setenv("SKIFF_SNOWFLAKE_CONN_ID", "sf_prod")
    monkeypatch.setenv("SKIFF_REPLAY", "off")
    monkeypatch.setenv("SKIFF_SAMPLE_SESSIONS", "500")
    monkeypatch.setenv("SKIFF_DUCKDB_PATH", str(tmp_path / "x.duckdb"))
    cfg = SkiffConfig.from_env()
    assert cfg.warehouse.backend == "snowflake"
    assert cfg.warehouse.snowflake_conn_id == "sf_prod"
    assert cfg.dbt.target == "snowflake"  # follows the warehouse unless SKIFF_DBT_TARGET is set
    assert cfg.replay.enabled is False
    assert cfg.replay.sessions == 500
    assert cfg.warehouse.duckdb_path == tmp_path / "x.duckdb"


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        pytest.param("SKIFF_WAREHOUSE", "bigquery", "SKIFF_WAREHOUSE", id="unknown-backend"),
        pytest.param("SKIFF_REPLAY", "maybe", "SKIFF_REPLAY", id="not-a-boolean"),
        pytest.param("SKIFF_SAMPLE_SESSIONS", "many", "SKIFF_SAMPLE_SESSIONS", id="not-an-int"),
        pytest.param("SKIFF_SAMPLE_SESSIONS", "0", ">= 1", id="too-small"),
        pytest.param("SKIFF_RAW_SCHEMA", "raw; drop", "SKIFF_RAW_SCHEMA", id="bad-schema"),
        pytest.param("SKIFF_TRAIN_MIXED_PRECISION", "sometimes", "SKIFF_TRAIN_MIXED_PRECISION",
                     id="unknown-precision"),
        pytest.param("SKIFF_DUCKDB_MEMORY_LIMIT", "lots", "SKIFF_DUCKDB_MEMORY_LIMIT",
                     id="not-a-memory-size"),
        pytest.param("SKIFF_DUCKDB_MEMORY_LIMIT", "6", "a number and a unit", id="no-unit"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, match: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SkiffConfigError, match=match):
        SkiffConfig.from_env()


@pytest.mark.parametrize("value", ["6GiB", "4 GB", "512MiB", "50%"])
def test_duckdb_memory_limit_takes_duckdb_sizes(monkeypatch: pytest.MonkeyPatch,
                                                value: str) -> None:
    monkeypatch.setenv("SKIFF_DUCKDB_MEMORY_LIMIT", value)
    assert DbtConfig.from_env().duckdb_memory_limit == value.replace(" ", "")


def test_profile_memory_limit_default_is_the_config_default() -> None:
    """dbt run by hand (no SKIFF_DUCKDB_MEMORY_LIMIT) gets the limit the DAG passes by default."""
    profiles = (DbtConfig().project_dir / "profiles.yml").read_text()
    assert f"env_var('SKIFF_DUCKDB_MEMORY_LIMIT', '{DbtConfig().duckdb_memory_limit}')" in profiles


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        WarehouseConfig(backend="oracle")


def test_objects_are_frozen() -> None:
    for obj in (WarehouseConfig(), ReplayConfig(), DbtConfig()):
        with pytest.raises(AttributeError):
            obj.__setattr__("x", 1)


def test_a_stale_dbt_manifest_is_an_error_naming_the_files_and_the_fix(tmp_path: Path) -> None:
    """The DAG renders its dbt tasks from the manifest: one older than the project's SQL or
    YAML (make's rule) is refused, by name, before any task waits for a node dbt lacks."""
    import os

    project = tmp_path / "dbt"
    (project / "models" / "marts").mkdir(parents=True)
    (project / "target" / "compiled").mkdir(parents=True)
    model, schema = project / "models" / "marts" / "m.sql", project / "models" / "_models.yml"
    model.write_text("select 1 as id")
    schema.write_text("models: []")
    config = DbtConfig(project_dir=project)
    with pytest.raises(SkiffConfigError, match=r"no dbt manifest at .*make install"):
        config.check_manifest()
    manifest = project / "target" / "manifest.json"
    manifest.write_text("{}")
    for path, age in ((model, 20), (schema, 20), (manifest, 10)):
        os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    # dbt's own output, newer than the manifest, does not count
    (project / "target" / "compiled" / "m.sql").write_text("select 1 as id")
    config.check_manifest()
    schema.write_text("models: [{name: m}]")  # edited after the manifest was built
    with pytest.raises(SkiffConfigError) as error:
        config.check_manifest()
    assert "models/_models.yml changed since" in str(error.value)
    assert "make install" in str(error.value) and "models/marts/m.sql" not in str(error.value)
