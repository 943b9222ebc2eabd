"""The setting machinery: one generic from_env, the rules of a setting, the generated docs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import pytest

from skiff import config
from skiff._settings import PARSERS, Section, field_types, setting
from skiff.exceptions import SkiffConfigError


class _Root:
    """A default path computed when the config is built, shown as ``/srv/data``."""

    shown = "/srv/data"

    def __call__(self) -> Path:
        return Path("/srv/data")


@dataclass(frozen=True)
class Demo(Section):
    """A config of every supported type, for these tests."""

    name: str = setting("DEMO_NAME", "local", "a text", choices=("local", "cloud"),
                        clean=str.lower)
    count: int = setting("DEMO_COUNT", 3, "a count", minimum=1)
    ratio: float = setting("DEMO_RATIO", 0.5, "a share", maximum=1)
    enabled: bool = setting("DEMO_ENABLED", True, "a switch")
    root: Path = setting("DEMO_ROOT", _Root(), "a folder")
    since: datetime = setting("DEMO_SINCE", datetime(2020, 1, 1, tzinfo=UTC), "a time")
    bucket: str = setting("DEMO_BUCKET", "", "a bucket", required_on=("name", "cloud"))


DEMO_VARS = [f.metadata["env"] for f in fields(Demo)]
SECTIONS = [cls for cls in Section.__subclasses__() if cls is not Demo]  # skiff.config's


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DEMO_VARS:
        monkeypatch.delenv(name, raising=False)


def test_each_type_is_parsed_from_its_variable(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    for name, value in {"DEMO_NAME": "Cloud", "DEMO_COUNT": "7", "DEMO_RATIO": "0.25",
                        "DEMO_ENABLED": "off", "DEMO_ROOT": str(tmp_path / "a" / ".." / "b"),
                        "DEMO_SINCE": "2021-06-01T12:00:00Z", "DEMO_BUCKET": "b1"}.items():
        monkeypatch.setenv(name, value)
    assert Demo.from_env() == Demo(name="cloud", count=7, ratio=0.25, enabled=False,
                                   root=tmp_path / "b", since=datetime(2021, 6, 1, 12, tzinfo=UTC),
                                   bucket="b1")


def test_defaults_when_unset_and_fallbacks_only_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Demo.from_env() == Demo() and Demo().root == Path("/srv/data")
    assert Demo.from_env(count=9).count == 9
    monkeypatch.setenv("DEMO_COUNT", "4")
    assert Demo.from_env(count=9).count == 4


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("YES", True), (" On ", True),
    ("0", False), ("false", False), ("no", False), ("OFF", False), ("", False),
])
def test_booleans(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("DEMO_ENABLED", raw)
    assert Demo.from_env().enabled is expected


@pytest.mark.parametrize(("var", "raw", "match"), [
    pytest.param("DEMO_COUNT", "many", r"DEMO_COUNT='many' is not an integer; unset, it defaults "
                 "to 3", id="int"),
    pytest.param("DEMO_COUNT", "2.5", "DEMO_COUNT='2.5' is not an integer", id="int-fraction"),
    pytest.param("DEMO_RATIO", "half", "DEMO_RATIO='half' is not a number", id="float"),
    pytest.param("DEMO_ENABLED", "maybe", "DEMO_ENABLED='maybe' is not a boolean; use one of "
                 "true/false", id="bool"),
    pytest.param("DEMO_SINCE", "last year", "DEMO_SINCE='last year' is not an ISO 8601 time",
                 id="datetime"),
    pytest.param("DEMO_NAME", "edge", r"DEMO_NAME='edge' is not supported; use one of "
                 r"\('local', 'cloud'\)", id="choices"),
    pytest.param("DEMO_COUNT", "0", "DEMO_COUNT=0 must be >= 1", id="minimum"),
    pytest.param("DEMO_RATIO", "-0.1", r"DEMO_RATIO=-0.1 must be within \[0, 1\]", id="below-0"),
    pytest.param("DEMO_RATIO", "1.5", r"DEMO_RATIO=1.5 must be within \[0, 1\]", id="maximum"),
    pytest.param("DEMO_RATIO", "nan", "DEMO_RATIO=nan must be", id="nan"),
    pytest.param("DEMO_NAME", "cloud", r"DEMO_NAME=cloud needs DEMO_BUCKET \(a bucket\)",
                 id="required-on"),
])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, raw: str,
                                      match: str) -> None:
    monkeypatch.setenv(var, raw)
    with pytest.raises(SkiffConfigError, match=match):
        Demo.from_env()


def test_rules_hold_for_direct_construction_too() -> None:
    with pytest.raises(SkiffConfigError, match="DEMO_COUNT=0 must be >= 1"):
        Demo(count=0)
    with pytest.raises(SkiffConfigError, match="DEMO_NAME='edge'"):
        Demo(name="edge")
    assert Demo(name="cloud", bucket="b").bucket == "b"


def test_env_names_the_variable_of_a_field() -> None:
    assert Demo.env("count") == "DEMO_COUNT"
    assert config.ServingConfig.env("top_k") == "SKIFF_PREDICT_TOP_K"


def test_a_factory_needs_the_text_the_docs_show() -> None:
    with pytest.raises(TypeError, match="DEMO_X: give shown="):
        setting("DEMO_X", lambda: Path("/x"), "a folder")


def test_settings_cover_every_field_of_every_config_class() -> None:
    records = config.settings()
    assert {cls.__name__ for cls in SECTIONS} == {
        "WarehouseConfig", "ReplayConfig", "DbtConfig", "TrainingConfig", "ValidationConfig",
        "ServingConfig", "AlertsConfig", "EmitConfig", "CollectConfig", "IngestConfig",
        "MonitorConfig"}
    expected = {(cls.__name__, f.name) for cls in SECTIONS for f in fields(cls)}
    assert {(r.section, r.name) for r in records} == expected | {("skiff_home", "skiff_home")}
    envs = [r.env for r in records]
    assert len(envs) == len(set(envs)), "two settings read the same variable"
    assert all(r.doc and r.env.isupper() for r in records)
    with pytest.raises(dataclasses.FrozenInstanceError):
        records[0].default = "x"  # type: ignore[misc]


def test_every_setting_has_a_type_from_env_parses() -> None:
    for cls in [*SECTIONS, Demo]:
        for name, kind in field_types(cls).items():
            assert kind in PARSERS, f"{cls.__name__}.{name}: from_env cannot parse {kind}"


def test_each_shown_default_reads_back_as_the_default(monkeypatch: pytest.MonkeyPatch,
                                                      skiff_home: Path) -> None:
    """The docs' default text, set as the variable, gives the same config as leaving it unset."""
    for record in config.settings()[1:]:  # all but SKIFF_HOME
        monkeypatch.delenv(record.env, raising=False)
    for cls in SECTIONS:
        unset = cls.from_env()
        for record in config.settings():
            if record.section == cls.__name__ and record.default:
                text = record.default.replace("$SKIFF_HOME", str(skiff_home))
                path = config.REPO_ROOT / text
                monkeypatch.setenv(record.env, str(path) if path.exists() else text)
        assert cls.from_env() == unset, cls.__name__


def test_markdown_table_lists_every_variable_once_by_section() -> None:
    table = config.markdown_table()
    lines = table.splitlines()
    assert lines[:2] == ["| variable | default | meaning |", "|---|---|---|"]
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])
    for record in config.settings():
        rows = [line for line in lines if line.startswith(f"| `{record.env}` |")]
        assert len(rows) == 1, record.env
        assert rows[0].split(" | ")[1] == (f"`{record.default}`" if record.default else "(none)")
    captions = [line.split("**")[1] for line in lines if line.startswith("| **")]
    assert captions == list(dict.fromkeys(r.section for r in config.settings()))
    assert "| `SKIFF_DBT_TARGET` | (none) | dbt profile target; unset, it follows " in table
    assert "| `SKIFF_BATCH_QUEUE` | (none) | AWS Batch job queue; required on `batch` |" in table


def test_python_m_skiff_config_prints_the_table() -> None:
    done = subprocess.run([sys.executable, "-m", "skiff.config"], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout == config.markdown_table()


def test_class_docstrings_are_generated_from_the_settings() -> None:
    doc = config.WarehouseConfig.__doc__ or ""
    assert doc.startswith("Where the raw log and the dbt models live.\n\n:param backend: ")
    assert ("Env ``SKIFF_DUCKDB_PATH``, default ``$SKIFF_HOME/warehouse.duckdb``." in doc)
    for cls in SECTIONS:
        for f in fields(cls):
            assert f":param {f.name}: " in (cls.__doc__ or ""), f"{cls.__name__}.{f.name}"
