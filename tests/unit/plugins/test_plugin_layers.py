"""The plugins' layers: hooks < operators < task groups < DAG; the plugin loader skips them all.

Operators import hooks (and triggers), never another operator module nor a task group; the
DAG takes its release group from ``taskgroups``. Skiff defines no ``AirflowPlugin``, so
``plugins/.airflowignore`` must keep Airflow's plugin loader out of every folder here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from import_graph import imported_modules

REPO = Path(__file__).resolve().parents[3]
PLUGINS = REPO / "plugins"



def _importers(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in sorted((PLUGINS / folder).glob("*.py")):
        bad = sorted(m for m in imported_modules(path) if m.split(".")[0] in forbidden)
        if bad:
            found[path.name] = bad
    return found


@pytest.mark.parametrize(("folder", "forbidden"), [
    pytest.param("hooks", ("operators", "taskgroups", "notifiers"), id="hooks"),
    pytest.param("triggers", ("operators", "taskgroups"), id="triggers"),
    pytest.param("operators", ("operators", "taskgroups"), id="operators"),
])
def test_lower_layers_import_no_higher_or_sibling_modules(folder: str,
                                                          forbidden: tuple[str, ...]) -> None:
    assert _importers(folder, forbidden) == {}


def test_the_dag_takes_its_release_group_from_taskgroups() -> None:
    tree = ast.parse((REPO / "dags" / "skiff_hourly.py").read_text())
    sources = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.name == "release_tasks"}
    assert sources == {"taskgroups.release"}


def test_the_plugin_loader_reads_only_the_light_plugin_file() -> None:
    import subprocess
    import sys

    from airflow._shared.module_loading import find_path_from_directory  # what the loader calls

    folders = {p.parent.name for p in PLUGINS.rglob("*.py")}
    assert {"hooks", "operators", "taskgroups", "triggers", "notifiers", "listeners"} <= folders
    found = list(find_path_from_directory(str(PLUGINS), ".airflowignore", "glob"))
    assert found == [str(PLUGINS / "skiff_plugin.py")]
    # importing it (as every Airflow process does) pulls in no SDK or heavy library beyond
    # what Airflow's own plugin and listener machinery imports
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import airflow.plugins_manager, airflow.listeners; before = set(sys.modules); "
            "import skiff_plugin; print(' '.join(sorted(set(sys.modules) - before)))")
    added = subprocess.run([sys.executable, "-c", code, str(PLUGINS)], capture_output=True,
                           text=True, check=True).stdout.split()
    assert set(added) <= {"skiff_plugin", "listeners", "listeners.progress"}, added
