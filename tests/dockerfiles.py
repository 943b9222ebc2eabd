"""Read a Dockerfile as its instructions (the image tests check them; no Docker daemon here)."""

from __future__ import annotations

from pathlib import Path


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs of a Dockerfile, continuation lines joined, comments
    and blank lines dropped, arguments' whitespace collapsed."""
    out, current = [], ""
    for line in Path(path).read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, args = current.strip().partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        current = ""
    return out
