"""The README and docs/ hold together: on GitHub as files, and built as a site by MkDocs.

The site is built once with ``mkdocs build --strict`` (a broken link, anchor or nav entry
fails it) and its pages' pictures and links are followed in the HTML it wrote; the README's and
the pages' relative links and anchors are checked as GitHub resolves them; the configuration
table is what ``skiff.config`` says today.
"""

from __future__ import annotations

import html.parser
import importlib.util
import os
import posixpath
import re
import subprocess
import sys
import urllib.parse
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = sorted(DOCS.glob("*.md"))


def _docs_module(name: str) -> ModuleType:
    """A script of docs/ (not a package) imported by path."""
    spec = importlib.util.spec_from_file_location(f"skiff_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _docs_module("site_hooks")


# ------------------------------------------------------------------------------ GitHub's view

def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a Markdown file's headings (outside code blocks), as GitHub numbers them."""
    text = hooks._FENCED.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.M):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return frozenset(found)


def _links(path: Path) -> list[str]:
    """A file's relative link targets with their anchors (``x.md#y``, ``#z``)."""
    text = hooks._without_code(path.read_text(encoding="utf-8"))
    targets = [m["target"] or m["html"] for m in hooks._LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


@pytest.mark.parametrize("path", [README, *PAGES, REPO / "include" / "gx" / "README.md"],
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_and_anchors_resolve_on_github(path: Path) -> None:
    broken = []
    for link in _links(path):
        target, _, anchor = link.partition("#")
        file = (path.parent / urllib.parse.unquote(target)).resolve() if target else path
        if not file.is_file():
            broken.append(f"{link}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading gives #{anchor} in {file.name} "
                          f"(it has {sorted(anchors(file))})")
    assert path != README or _links(path), "the README links nothing: is the pattern right?"
    assert not broken, "\n".join(broken)


def test_github_slugs_are_githubs() -> None:
    assert github_slug("Gate, deploy and serving") == "gate-deploy-and-serving"
    assert github_slug("Airflow UI (no Docker)") == "airflow-ui-no-docker"
    assert github_slug("`make run`") == "make-run"
    assert github_slug("Schedule, re-runs and backfill") == "schedule-re-runs-and-backfill"


# ------------------------------------------------------------------------------ the README

def test_readme_keeps_the_set_up_commands_and_the_picture() -> None:
    readme = README.read_text(encoding="utf-8")
    set_up = re.search(r"^```bash\n(.*?)^```", readme, re.M | re.S)
    assert set_up, "the README's first bash block holds the set-up commands"
    commands = [line.split("#")[0].strip() for line in set_up[1].splitlines()]
    assert "make run" in commands and "make test" in commands
    assert "docs/img/pipeline.svg" in hooks.relative_targets(readme)


def test_readme_reads_in_five_minutes() -> None:
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= 1200, (f"README.md has {words} words (about 250 a minute): move the detail "
                           "into a page of docs/ and link it")


def test_readme_map_names_folders_that_exist() -> None:
    readme = README.read_text(encoding="utf-8")
    tree = re.search(r"^### Map of the tree\n+```\n(.*?)^```", readme, re.M | re.S)
    assert tree, "the README's architecture section opens with the map of the tree"
    parents: list[str] = []
    named = []
    for line in tree[1].splitlines():
        match = re.match(r"^( *)(\S+/)\S*", line)
        if not match:
            continue
        depth = len(match[1]) // 2
        parents[depth:] = [match[2]]
        named.append("".join(parents))
    assert {"dags/", "plugins/operators/", "include/skiff/data/", "include/skiff/serve/",
            "include/dbt/", "tests/", "docs/"} <= set(named)
    missing = [folder for folder in named if not (REPO / folder).is_dir()]
    assert not missing, f"the map names folders the tree lacks: {missing}"


# ------------------------------------------------------------------------------ the site

class _Refs(html.parser.HTMLParser):
    """``src`` and ``href`` values of a page, outside the theme's own assets."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(REPO / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}"
    return out


def test_site_builds_strict_with_every_page_in_the_nav(site: Path) -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())

    def nav_files(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        values = node.values() if isinstance(node, dict) else node
        return [f for value in values for f in nav_files(value)]

    in_nav = nav_files(config["nav"])
    assert in_nav[0] == "index.md", "the home page (README.md) comes first"
    assert sorted(in_nav[1:]) == sorted(p.name for p in PAGES), "every page of docs/ in the nav"
    for page in in_nav:
        built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), f"{page} was not built"


def test_site_pages_show_existing_pictures_and_link_existing_pages(site: Path) -> None:
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "make run" in home and "Map of the tree" in home, "the home page is the README"
    broken = []
    for page in site.rglob("index.html"):
        if page.parent.name in ("search", "assets"):
            continue
        parser = _Refs()
        parser.feed(page.read_text(encoding="utf-8"))
        for ref in parser.refs:
            url = urllib.parse.urlsplit(ref)
            if url.scheme or url.netloc or not url.path or "/assets/" in f"/{url.path}":
                continue
            target = Path(posixpath.normpath((page.parent / url.path).as_posix()))
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {ref}")
    assert not broken, "\n".join(broken)
    for picture in ("img/pipeline.svg", "img/airflow-graph.png", "bench/results/bench-full.png"):
        assert (site / picture).is_file(), picture


def test_readme_for_site_repoints_links_to_docs() -> None:
    text = ("![p](docs/img/pipeline.svg) [v](docs/validation.md#run-it-on-a-bad-batch) "
            "[c](bench/results/bench-full.png) [a](#quick-start) [w](https://example.org/x)\n"
            "```\n[kept](docs/x.md)\n```\n")
    out = hooks.readme_for_site(text, readme_dir=REPO, docs_dir=DOCS)
    assert out == ("![p](img/pipeline.svg) [v](validation.md#run-it-on-a-bad-batch) "
                   "[c](../bench/results/bench-full.png) [a](#quick-start) "
                   "[w](https://example.org/x)\n```\n[kept](docs/x.md)\n```\n")


# ------------------------------------------------------------------------------ configuration

def test_configuration_page_is_generated_from_skiff_config() -> None:
    from skiff import config

    gen_config = _docs_module("gen_config")
    page = gen_config.PAGE.read_text(encoding="utf-8")
    assert gen_config.render(page) == page, (
        "docs/configuration.md is stale: run `make docs` (docs/gen_config.py) and commit it")
    table = page.split(gen_config.BEGIN, 1)[1].split(gen_config.END, 1)[0]
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    assert {setting.env for setting in config.settings()} <= listed
    with pytest.raises(ValueError, match="once"):
        gen_config.render(page.replace(gen_config.END, ""), table="| x |")
