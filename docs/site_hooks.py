"""MkDocs hooks: README.md is the site's home page, and repo files outside docs/ are served.

The pages are written for two readers: GitHub, which shows ``README.md`` and ``docs/*.md``
with their relative links as they are, and the MkDocs site (``make docs``). Two things only
GitHub can do by itself, the hooks do for the site:

- the home page is ``README.md``, its links (``docs/validation.md``, ``docs/img/…``) rewritten
  to be relative to ``docs/``; the README stays the one copy of what it says;
- a page may show a file outside ``docs/`` (``../bench/results/bench-full.png``, the chart
  ``make bench-full`` writes): every such link target is added to the site under its repo
  path, so the same link works in both places. Only files are served, never folders, and only
  those a page links to.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files, InclusionLevel

__all__ = ["on_files", "readme_for_site", "relative_targets"]

log = logging.getLogger("mkdocs.plugins.skiff")

REPO = Path(__file__).resolve().parents[1]
#: Markdown links and images, ``[text](target "title")``, and HTML ``src=``/``href=``.
_LINK = re.compile(r"(?P<head>!?\[[^\]]*\]\()(?P<target>[^)\s]+)(?P<tail>[^)]*\))"
                   r"|(?P<attr>\b(?:src|href)=\")(?P<html>[^\"]+)\"")
#: A fenced code block, indented or not (the fence's own group is dropped from a split).
_FENCED = re.compile(r"(^ *(?:```|~~~).*?^ *(?:```|~~~)[^\n]*$)", re.M | re.S)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.I)


def relative_targets(markdown: str) -> list[str]:
    """The relative link and image targets of a Markdown text, anchors and queries removed.

    :param markdown: the page's text.
    :return: each target as written (``docs/img/x.png``, ``../bench/results/y.png``), in order.
    """
    targets = []
    for match in _LINK.finditer(_without_code(markdown)):
        target = match["target"] or match["html"]
        if not _EXTERNAL.match(target):
            targets.append(re.split(r"[#?]", target, maxsplit=1)[0])
    return [target for target in targets if target]


def _without_code(markdown: str) -> str:
    """The text with fenced blocks and code spans blanked (a link shown as code is no link)."""
    markdown = _FENCED.sub("", markdown)
    return re.sub(r"`[^`\n]*`", "", markdown)


def readme_for_site(readme: str, *, readme_dir: Path, docs_dir: Path) -> str:
    """README.md's text with its relative links re-pointed from the repo root to ``docs/``.

    :param readme: the text of README.md.
    :param readme_dir: the folder README.md is in (the repo root).
    :param docs_dir: MkDocs' ``docs_dir``.
    :return: the text, ``docs/x.md`` now ``x.md``, ``bench/y.png`` now ``../bench/y.png``
        (anchors kept: ``#quick-start``, ``docs/x.md#y``).
    """
    def repoint(target: str) -> str:
        if _EXTERNAL.match(target):
            return target
        path = posixpath.normpath(posixpath.join(readme_dir.as_posix(), target))
        return posixpath.relpath(path, docs_dir.as_posix())

    def replace(match: re.Match[str]) -> str:
        if match["head"]:
            return f"{match['head']}{repoint(match['target'])}{match['tail']}"
        return f'{match["attr"]}{repoint(match["html"])}"'

    # Code blocks are left alone: split them out, rewrite the prose between them.
    parts = _FENCED.split(readme)
    return "".join(part if index % 2 else _LINK.sub(replace, part)
                   for index, part in enumerate(parts))


def on_files(files: Files, config: Any) -> Files:
    """Add the home page (README.md) and the files outside ``docs/`` that pages link to.

    :param files: the files MkDocs found in ``docs_dir``.
    :param config: the MkDocs config.
    :return: the same collection, with the additions.
    """
    docs_dir = Path(config["docs_dir"]).resolve()
    readme = REPO / "README.md"
    home = readme_for_site(readme.read_text(encoding="utf-8"), readme_dir=REPO, docs_dir=docs_dir)
    files.append(File.generated(config, "index.md", content=home))

    pages = [(page.src_uri, Path(page.abs_src_path).read_text(encoding="utf-8"))
             for page in files.documentation_pages() if page.abs_src_path]
    pages.append(("index.md", home))
    for src_uri, text in pages:
        for target in relative_targets(text):
            uri = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), target))
            if not uri.startswith("../") or uri in files:
                continue
            path = (docs_dir / uri).resolve()
            if not path.is_file() or not path.is_relative_to(REPO):
                continue  # left for MkDocs' own check, which names the page and the link
            dest = path.relative_to(REPO).as_posix()
            files.append(File(uri, src_dir=str(docs_dir), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"], dest_uri=dest,
                              inclusion=InclusionLevel.INCLUDED))  # ".." would match ".*"
            log.debug("serving %s (linked from %s) at %s", path, src_uri, dest)
    return files
