"""Suites as data: the files of ``include/gx/suites`` read, and rendered for one run.

A suite file (see ``include/gx/README.md``) names the table a suite guards, the SQL selecting
the rows it validates (the data interval's slice, the same SQL on DuckDB and Snowflake) and
its Great Expectations expectations, thresholds named as ``{$PARAMETER: name}``. The batch
SQL is the suite's own text, handed to Great Expectations as is: it is not warehouse code.

1. :meth:`SuiteSpec.load` reads a suite file;
2. :meth:`SuiteSpec.render` fills in the parameters of one run (computed by
   :mod:`skiff.validate.parameters`, which lists them): a :class:`RenderedSuite` (SQL +
   expectation configurations), which :meth:`RenderedSuite.to_gx` makes a GX suite.

Nothing here imports Airflow; Great Expectations and YAML are imported inside the functions
that need them.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.exceptions import SkiffConfigError

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

__all__ = [
    "SUITES",
    "MONITOR_SUITES",
    "RESULT_FORMAT",
    "ExpectationSpec",
    "SuiteSpec",
    "RenderedSuite",
    "render_suite",
]

#: The suites in ``include/gx/suites``, in the order the DAG runs them.
SUITES = (
    "raw_schema",
    "browsing_train",
    "search_train",
    "sku_to_content",
    "volume",
    "event_mix",
    "int_session_events",
    "fct_sessions",
    "dim_products",
)
#: skiff_monitor's suites, on the monitoring marts (not part of a whole-log validation).
MONITOR_SUITES = ("mon_serving", "mon_quality", "mon_drift")
#: GX result format: counts and up to 20 unexpected values per expectation.
RESULT_FORMAT = "SUMMARY"

_PARAMETER = "$PARAMETER"


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite file, before its parameters are filled in.

    :param type: the GX expectation type, e.g. ``expect_column_values_to_be_between``.
    :param kwargs: its arguments; thresholds as ``{"$PARAMETER": name}``.
    :param defect: short name of the defect it catches (``meta.defect``).
    :param problem: what a failure means, in words (``meta.problem``; ``{name}`` filled in).
    """

    type: str
    kwargs: Mapping[str, Any]
    defect: str
    problem: str


@dataclass(frozen=True)
class RenderedSuite:
    """A suite ready to run: its table, the SQL of its rows, GX expectation configurations.

    :param name: the suite's name (its file name).
    :param table: the table(s) it guards, schema-qualified.
    :param sql: the rows it validates.
    :param expectations: GX configurations, ``{"type", "kwargs", "meta"}``; ``meta`` holds
        ``defect`` and ``problem``.
    :param skipped: expectations left out because their parameter has no value (e.g. the
        volume ceiling without history), as ``defect`` names.
    :param parameters: the parameters it was rendered with.
    """

    name: str
    table: str
    sql: str
    expectations: tuple[Mapping[str, Any], ...]
    skipped: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_gx(self) -> ExpectationSuite:
        """The Great Expectations suite (imports GX)."""
        import warnings

        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        # GX's pandas regex check calls str.contains, which warns about the contract's groups
        # ("(, item)*"): harmless for a match test, and the patterns stay plain groups, the
        # form Snowflake's POSIX regular expressions understand
        warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression",
                                UserWarning)
        suite = gx.ExpectationSuite(name=self.name, meta={"table": self.table})
        for expectation in self.expectations:
            # add_expectation, not add_expectation_configuration: the latter replaces an
            # expectation of the same type and column (two bounds on one column are two checks)
            suite.add_expectation(ExpectationConfiguration(
                type=expectation["type"],
                kwargs=dict(expectation["kwargs"]),
                meta=dict(expectation["meta"]),
            ).to_domain_obj())
        if len(suite.expectations) != len(self.expectations):
            raise SkiffConfigError(f"Suite {self.name} lists the same expectation twice.")
        return suite


@dataclass(frozen=True)
class SuiteSpec:
    """A suite file of ``include/gx/suites``: table, batch SQL template, expectations.

    :param name: the suite's name (the file's stem, the table it guards).
    :param table: the table(s) it guards, with ``{name}`` parameters.
    :param description: one line on what it checks.
    :param batch: SQL template of the rows it validates.
    :param expectations: its expectations.
    :param path: the file it was read from.
    """

    name: str
    table: str
    description: str
    batch: str
    expectations: tuple[ExpectationSpec, ...]
    path: Path | None = None

    @classmethod
    def load(cls, name: str, suites_dir: Path) -> SuiteSpec:
        """Read ``<suites_dir>/<name>.yml``.

        :raises SkiffConfigError: the file is missing or not a valid suite (the message
            names the file and the key).
        """
        import yaml

        path = Path(suites_dir) / f"{name}.yml"
        if not path.is_file():
            known = sorted(p.stem for p in Path(suites_dir).glob("*.yml"))
            raise SkiffConfigError(f"No suite {name!r}: {path} does not exist (suites: {known}).")
        try:
            doc = yaml.safe_load(path.read_text())
            expectations = tuple(
                ExpectationSpec(
                    type=e["type"],
                    kwargs=dict(e.get("kwargs") or {}),
                    defect=e["meta"]["defect"],
                    problem=e["meta"]["problem"],
                )
                for e in doc["expectations"]
            )
            spec = cls(doc["name"], doc["table"], doc.get("description", ""), doc["batch"],
                       expectations, path)
        except (KeyError, TypeError, yaml.YAMLError) as exc:
            raise SkiffConfigError(
                f"{path} is not a valid suite ({type(exc).__name__}: {exc}); each needs name, "
                "table, batch and expectations with type, kwargs and meta.defect/meta.problem."
            ) from None
        if spec.name != name:
            raise SkiffConfigError(f"{path} declares name {spec.name!r}; it must be {name!r}.")
        if not spec.batch.lstrip().lower().startswith("select"):
            raise SkiffConfigError(f"{path}: batch must be one SELECT statement (no CTE).")
        return spec

    @property
    def parameters(self) -> set[str]:
        """Names of the parameters the suite uses."""
        names = set()
        for template in (self.table, self.batch, *(e.problem for e in self.expectations)):
            names |= {f for _, f, _, _ in string.Formatter().parse(template) if f}
        for e in self.expectations:
            names |= {v[_PARAMETER] for v in e.kwargs.values()
                      if isinstance(v, Mapping) and _PARAMETER in v}
        return names

    def render(self, parameters: Mapping[str, Any]) -> RenderedSuite:
        """Fill the parameters in (see :func:`render_suite`)."""
        return render_suite(self, parameters)


def render_suite(spec: SuiteSpec, parameters: Mapping[str, Any]) -> RenderedSuite:
    """The suite with its parameters filled in.

    A ``{"$PARAMETER": name}`` whose value is ``None`` is dropped from its kwargs; a
    ``*_between`` expectation left with neither bound is skipped (listed in ``skipped``).

    :raises SkiffConfigError: the suite uses a parameter that does not exist.
    """
    missing = spec.parameters - set(parameters)
    if missing:
        raise SkiffConfigError(
            f"Suite {spec.name} uses unknown parameters {sorted(missing)}; "
            f"known: {sorted(parameters)}."
        )
    rendered, skipped = [], []
    for e in spec.expectations:
        kwargs = {}
        for key, value in e.kwargs.items():
            if isinstance(value, Mapping) and _PARAMETER in value:
                value = parameters[value[_PARAMETER]]
                if value is None:
                    continue
            kwargs[key] = value
        if e.type.endswith("_between") and "min_value" not in kwargs and "max_value" not in kwargs:
            skipped.append(e.defect)
            continue
        rendered.append({
            "type": e.type,
            "kwargs": kwargs,
            "meta": {"defect": e.defect, "problem": _fill(e.problem, parameters)},
        })
    return RenderedSuite(
        name=spec.name,
        table=_fill(spec.table, parameters),
        sql=_fill(spec.batch, parameters).strip(),
        expectations=tuple(rendered),
        skipped=tuple(skipped),
        parameters=dict(parameters),
    )


def _fill(template: str, parameters: Mapping[str, Any]) -> str:
    return template.format_map({k: "n/a" if v is None else v for k, v in parameters.items()})
