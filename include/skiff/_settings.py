"""The machinery of :mod:`skiff.config`: a setting's field, its reading from the environment.

A :func:`setting` is a dataclass field whose ``metadata`` holds the environment variable,
the meaning and the rules (bounds, choices, when it is required). A config class derives
from :class:`Section`: :meth:`Section.from_env` reads every such field and parses it by its
type, and ``__post_init__`` checks the rules whenever a config is built. :func:`records`
turns the fields into the :class:`Setting` rows the docs show, :func:`document` into the
class's ``:param:`` lines, and :func:`markdown` renders the rows as a table.
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Self

from skiff.exceptions import SkiffConfigError
from skiff.times import parse_time

__all__ = ["Setting", "setting", "Section", "PARSERS", "field_types", "records", "document",
           "markdown"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Setting:
    """One setting as the docs show it.

    :param section: where it lives: its config class, e.g. ``WarehouseConfig``.
    :param name: its attribute in that class.
    :param env: the environment variable that sets it.
    :param default: the default as text, e.g. ``$SKIFF_HOME/warehouse.duckdb``; empty for none.
    :param doc: what it means, in Markdown.
    """

    section: str
    name: str
    env: str
    default: str
    doc: str


def setting(env: str, default: Any, doc: str, *, shown: str | None = None,
            minimum: float | None = 0, maximum: float | None = None,
            choices: tuple[str, ...] = (), required_on: tuple[str, str] | None = None,
            clean: Callable[[str], str] | None = None, secret: bool = False) -> Any:
    """A config field read from an environment variable.

    :param env: the variable that overrides the default.
    :param default: the default value; a callable one is a factory called when a config is
        built, whose ``shown`` attribute is the docs' text unless ``shown`` is given.
    :param doc: what the setting means, in Markdown (the docs' "meaning" column).
    :param shown: the default as the docs show it; default: ``default`` as text (``on``/``off``
        for booleans, ISO 8601 for times).
    :param minimum: lowest value of a number, checked whenever the config is built; None: none.
    :param maximum: highest value of a number; None: none.
    :param choices: the values a text may take (checked whenever the config is built); empty: any.
    :param required_on: ``(field, value)``: the setting must be non-empty when that field of the
        same config has that value (and its docs say so).
    :param clean: turns the variable's text into what is parsed (e.g. ``str.lower``).
    :param secret: a credential: left out of the config's ``repr`` (and so of logs).
    :return: the :func:`dataclasses.field`.
    """
    factory = callable(default)
    if shown is None:
        shown = getattr(default, "shown", None) if factory else _show(default)
        if shown is None:
            raise TypeError(f"setting {env}: give shown=, the factory's default as text")
    meta = {"env": env, "doc": doc, "shown": shown, "minimum": minimum, "maximum": maximum,
            "choices": choices, "required_on": required_on, "clean": clean}
    return field(default=MISSING if factory else default,
                 default_factory=default if factory else MISSING, metadata=meta,
                 repr=not secret)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ValueError(f"{raw!r} is not a boolean; use one of true/false, on/off, 1/0")


def _parse_number(kind: type[int | float], what: str) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not {what}") from None
    return parse


def _parse_paths(raw: str) -> tuple[Path, ...]:
    """Folders separated by ``os.pathsep`` (``:``), as in ``PATH``; each made absolute."""
    return tuple(Path(part.strip()).resolve() for part in raw.split(os.pathsep) if part.strip())


#: How a variable's text becomes a value of each field type (a ValueError quotes the text).
PARSERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: _parse_number(int, "an integer"),
    float: _parse_number(float, "a number"),
    bool: _parse_bool,
    Path: lambda raw: Path(raw).resolve(),
    tuple[Path, ...]: _parse_paths,
    datetime: parse_time,
}


@cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of ``cls`` (its annotations are strings)."""
    return typing.get_type_hints(cls)


class Section:
    """Base of the config classes: :meth:`from_env`, and the rules of every :func:`setting`."""

    @classmethod
    def from_env(cls, **fallbacks: Any) -> Self:
        """The config, each field read from its environment variable and parsed by its type.

        :param fallbacks: values of fields whose variable is unset, instead of their default.
        :return: the config.
        :raises SkiffConfigError: a value does not parse or breaks a rule; the message names
            the variable.
        """
        values = dict(fallbacks)
        for f in fields(cls):
            raw = os.environ.get(f.metadata["env"])
            if raw is None:
                continue
            clean, parse = f.metadata["clean"], PARSERS[field_types(cls)[f.name]]
            try:
                values[f.name] = parse(clean(raw) if clean else raw)
            except ValueError as err:
                raise SkiffConfigError(f"{f.metadata['env']}={str(err).rstrip('.')}; unset, it "
                                       f"defaults to {f.metadata['shown'] or 'empty'}.") from None
        return cls(**values)

    @classmethod
    def env(cls, name: str) -> str:
        """The environment variable of the field ``name``, e.g. ``SKIFF_WAREHOUSE``."""
        return next(f for f in fields(cls) if f.name == name).metadata["env"]

    def __post_init__(self) -> None:
        missing: dict[tuple[str, str], list[Field[Any]]] = {}
        for f in fields(self):
            on = f.metadata["required_on"]
            if on and getattr(self, on[0]) == on[1] and not getattr(self, f.name):
                missing.setdefault(on, []).append(f)
            value, low, high = getattr(self, f.name), f.metadata["minimum"], f.metadata["maximum"]
            if f.metadata["choices"] and value not in f.metadata["choices"]:
                raise SkiffConfigError(f"{self.env(f.name)}={value!r} is not supported; use one "
                                       f"of {f.metadata['choices']}.")
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not ((low is None or value >= low) and (high is None or value <= high)):  # nan too
                bound = (f"within [{low}, {high}]" if low is not None and high is not None
                         else f">= {low}" if high is None else f"<= {high}")
                raise SkiffConfigError(f"{self.env(f.name)}={value} must be {bound}.")
        for (name, value), needed in missing.items():
            raise SkiffConfigError(
                f"{self.env(name)}={value} needs {', '.join(f.metadata['env'] for f in needed)} "
                f"({'; '.join(f.metadata['doc'] for f in needed)}).")


def records(cls: type[Section]) -> tuple[Setting, ...]:
    """The :class:`Setting` of each field of a config class, in field order."""
    def doc(meta: Mapping[str, Any]) -> str:
        on = meta["required_on"]
        return f"{meta['doc']}; required on `{on[1]}`" if on else meta["doc"]

    return tuple(Setting(cls.__name__, f.name, f.metadata["env"], f.metadata["shown"],
                         doc(f.metadata)) for f in fields(cls))


def document(cls: type[Section]) -> None:
    """Append a Sphinx ``:param:`` line per setting to the docstring of ``cls``."""
    params = [f":param {s.name}: {s.doc.replace('`', '``')}. Env ``{s.env}``, "
              + (f"default ``{s.default}``." if s.default else "no default.")
              for s in records(cls)]
    cls.__doc__ = inspect.cleandoc(cls.__doc__ or "") + "\n\n" + "\n".join(params)


def markdown(rows: Iterable[Setting], purpose: Callable[[str], str]) -> str:
    """A Markdown table of settings: columns variable, default and meaning, grouped by section.

    :param rows: the settings, each section's together.
    :param purpose: a section's docstring (reST); its first line opens the section's rows.
    :return: the table, ending with a newline.
    """
    lines, section = ["| variable | default | meaning |", "|---|---|---|"], ""
    for s in rows:
        if s.section != section:
            section = s.section
            caption = purpose(section).splitlines()[0].replace("``", "`")
            lines.append(f"| **{section}** | | {caption} |")
        default, doc = (f"`{s.default}`" if s.default else "(none)"), s.doc.replace("|", "\\|")
        lines.append(f"| `{s.env}` | {default} | {doc} |")
    return "\n".join(lines) + "\n"
