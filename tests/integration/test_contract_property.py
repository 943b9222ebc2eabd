"""Random single-field corruptions over the contract: each is refused at load or caught by name.

The cases are generated from ``contract.toml``, not from a list of defects: every field of
every table crossed with every kind of corruption that applies to it (``KINDS``), planted in
a random small share (3-10 %) of the rows of the interval where the field applies. Each case
must be

- refused, row by row, by :func:`skiff.data.contract.check_event` (what the collector, the
  ``/collect`` Lambda and the landing reader run), naming the field; unless the contract
  allows the corrupted value (a missing optional field: only its share can tell);
- and, delivered as a file (``skiff load``, the replay source: no per-row check), refused by
  the loader naming the column (a number column holding text), or failing the interval's raw
  suites (the table's, and ``event_mix`` for browsing) with a defect of that field.

A seeded sample of ``SAMPLE`` cases runs in ``make test``; the whole matrix is ``slow``. So is
the day of clean hours, every raw suite on each of 24 consecutive hours of the embedded
shoppers, which must all pass (the false-positive rate over a day is zero).
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from bad_batches import END, SEED, START, Log, make_source, ms, run_suite

from skiff.data import DuckDBWarehouse, load_dir
from skiff.data.contract import TABLES, Column, TableContract, check_event, contract_named
from skiff.data.loader import EVENT_TABLES
from skiff.exceptions import DataContractError

pytestmark = pytest.mark.integration

#: Kinds of single-field corruption.
KINDS = ("null", "wrong_format", "wrong_case", "whitespace", "out_of_range", "wrong_for_event",
         "wrong_type")
#: Cases of the matrix run in `make test` (seeded); the rest are `slow`.
SAMPLE = 8
#: The validate task of each table's raw suite.
TASKS = {"browsing_train": "validate_raw_events", "search_train": "validate_raw_searches",
         "sku_to_content": "validate_raw_catalogue"}
_CATALOGUE_RESENT = 300  # catalogue rows a case re-sends in the interval


@dataclass(frozen=True)
class Case:
    """One corruption: ``kind`` applied to ``field`` of ``table`` in ``share`` of its rows."""

    table: str
    field: str
    kind: str
    share: float
    seed: int

    @property
    def column(self) -> Column:
        return contract_named(self.table).column(self.field)

    def __str__(self) -> str:
        return f"{self.table}.{self.field}:{self.kind}@{self.share:.0%}"


def _applies(table: TableContract, column: Column, kind: str) -> bool:
    if kind == "null":
        # an optional field of the searches or the catalogue is often empty: a few more
        # empty ones are no defect a row or a share shows (event_mix covers browsing's)
        return column.required or bool(column.required_if) or table.name == "browsing_train"
    if kind in ("wrong_format", "whitespace"):
        return column.type == "string"
    if kind == "wrong_case":
        return bool(column.values or column.format in ("hash", "category_path", "sku_list"))
    if kind == "out_of_range":
        return column.time or column.min is not None or bool(column.values)
    if kind == "wrong_for_event":
        return bool(column.absent_if)
    return column.type != "string"  # wrong_type: text in a number column


def matrix(seed: int = SEED) -> list[Case]:
    """Every applicable (table, field, kind), each with a random share and seed."""
    rng = random.Random(seed)
    return [Case(t.name, c.name, kind, round(rng.uniform(0.03, 0.10), 3), rng.randrange(10**6))
            for t in TABLES for c in t.fields for kind in KINDS if _applies(t, c, kind)]


def expected_defects(case: Case) -> set[str]:
    """The defects of the raw suites that name this corruption."""
    column, name = case.column, case.field
    if case.kind == "null":
        if column.required or column.required_if:
            return {f"missing_{name}"}
        return {"missing_values"}
    if case.kind == "wrong_for_event":
        return {f"unexpected_{name}"}
    if case.kind == "out_of_range" and column.time:
        return {"future_timestamps", "ancient_timestamps"}
    if case.kind == "out_of_range" and not column.values:
        return {f"{name}_out_of_range"}
    return {f"unknown_{name}"} if column.values else {f"malformed_{name}"}


# --------------------------------------------------------------------------- corrupting


def _rows_where(table: pa.Table, case: Case) -> list[int]:
    """Rows the corruption applies to: where the field is carried (or, for wrong_for_event,
    where it must not be; for null, where it must be)."""
    column = case.column
    rows = table.to_pylist()

    def meets(row: dict[str, Any], conditions: tuple) -> bool:
        return any(row[c] in values for c, values in conditions)

    if case.kind == "wrong_for_event":
        return [i for i, r in enumerate(rows) if meets(r, column.absent_if)]
    if case.kind == "null" and column.required_if:
        return [i for i, r in enumerate(rows) if meets(r, column.required_if)]
    if case.kind == "wrong_case":
        return [i for i, r in enumerate(rows) if r[case.field] not in (None, "")
                and str(r[case.field]).upper() != r[case.field]]
    return [i for i, r in enumerate(rows) if r[case.field] not in (None, "")]


def _corrupt(case: Case, value: Any, donor: Any, rng: random.Random) -> Any:
    """``value`` corrupted as ``case.kind`` says; ``donor`` a good value from another row."""
    column = case.column
    if case.kind == "null":
        return None
    if case.kind == "wrong_case":
        return value.upper()
    if case.kind == "whitespace":
        return rng.choice([" " + value, value + " ", value + "\t", value + "\n"])
    if case.kind == "wrong_for_event":
        return rng.choice(column.values) if column.values else donor
    if case.kind == "wrong_type":
        return rng.choice(["n/a", "12:30", "1.5e12x"])
    if case.kind == "out_of_range":
        if column.time:
            return value * 1000 if rng.random() < 0.5 else value // 1000  # us, or seconds
        if column.values:
            return rng.choice(["click", "wishlist", "view", "unknown"])
        return rng.choice([column.min - 1, column.max + 1, column.min + 0.5])
    # wrong_format
    if column.values:
        return value + "_v2"
    if column.format == "hash":
        return rng.choice([value[:32], "undefined", value + "00"])
    if column.format == "category_path":
        return value.replace("/", " > ")
    if column.format == "vector":
        return value[: value.rindex(",")] + "]"  # one number short
    return value.replace("'", '"')  # a SKU list in JSON quotes


def corrupted(table: pa.Table, case: Case) -> tuple[pa.Table, list[int]]:
    """``table`` with ``case`` planted, and the rows it touched (as text for wrong_type)."""
    rng = random.Random(case.seed)
    candidates = _rows_where(table, case)
    assert candidates, f"{case}: no row to corrupt"
    picked = sorted(rng.sample(candidates, max(1, round(case.share * len(candidates)))))
    values = table.column(case.field).to_pylist()
    donors = [v for v in values if v not in (None, "")]
    for i in picked:
        values[i] = _corrupt(case, values[i], rng.choice(donors) if donors else None, rng)
    kind = table.schema.field(case.field).type
    if case.kind == "wrong_type":  # the column as a file's text
        kind, values = pa.string(), [v if v is None or isinstance(v, str) else str(v)
                                     for v in values]
    index = table.schema.get_field_index(case.field)
    return table.set_column(index, pa.field(case.field, kind), pa.array(values, kind)), picked


# --------------------------------------------------------------------------- the interval


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def history(source, tmp_path_factory) -> Path:
    """A warehouse holding the log before the interval (copied for each case)."""
    work = tmp_path_factory.mktemp("history")
    warehouse = DuckDBWarehouse(work / "warehouse.duckdb")
    load_dir(source, warehouse, batch_id="history", until_ms=ms(START), arrival="event")
    return warehouse.path


def _interval_rows(source: Path, table: str) -> pa.Table:
    from skiff.data.loader import discover, read_batches

    (found,) = [s for s in discover(source) if s.contract.name == table]
    if table == "sku_to_content":  # a re-send of part of the catalogue
        return pa.concat_tables(read_batches(found)).slice(0, _CATALOGUE_RESENT)
    return pa.concat_tables(read_batches(found, since_ms=ms(START), until_ms=ms(END)))


def _deliver(work: Path, history: Path, source: Path, case: Case, rows: pa.Table) -> Log:
    """The interval delivered as files (``skiff load``): the good event tables, the case's
    table corrupted. Re-sent catalogue rows are stamped as arriving in the interval."""
    work.mkdir(parents=True)
    shutil.copy(history, work / "warehouse.duckdb")
    warehouse = DuckDBWarehouse(work / "warehouse.duckdb")
    files = work / "delivery"
    files.mkdir()
    for table in {*EVENT_TABLES, case.table}:
        data = rows if table == case.table else _interval_rows(source, table)
        pcsv.write_csv(data, files / f"{table}.csv")
    batch = f"replay:{START.isoformat()}/{END.isoformat()}"
    load_dir(files, warehouse, batch_id=batch, arrival="event")
    if case.table == "sku_to_content":
        with warehouse.connect() as con:
            con.execute("update raw.sku_to_content set arrival_ts_ms = ? where batch_id = ?",
                        [ms(START) + 60_000, batch])
    return Log(warehouse.path, str(case))


def check(case: Case, source: Path, history: Path, work: Path) -> None:
    """The case's two promises (see the module docstring)."""
    rows, picked = corrupted(_interval_rows(source, case.table), case)
    contract = contract_named(case.table)
    # 1. the per-event check (collector, Lambda, landing reader): every corrupted row refused
    allowed = case.kind == "null" and not (case.column.required or case.column.required_if)
    events = rows.take(picked).to_pylist()
    for event in events:
        if case.kind == "wrong_type":
            event[case.field] = str(event[case.field])
        row, reason = check_event(contract, event, earliest_ms=ms(START - timedelta(days=30)),
                                  latest_ms=ms(END + timedelta(minutes=10)))
        if allowed:
            assert reason is None, f"{case}: {reason}"
        else:
            assert row is None and reason.startswith(f"{case.field}: "), f"{case}: {reason}"
    # 2. delivered as a file: refused by the loader, or failing a raw suite by name
    if case.kind == "wrong_type":
        with pytest.raises(DataContractError, match=case.field):
            _deliver(work, history, source, case, rows)
        return
    log = _deliver(work, history, source, case, rows)
    tasks = [TASKS[case.table]] + (["validate_event_mix"] if case.table == "browsing_train"
                                   else [])
    named: set[str] = set()
    for task in tasks:
        error, _ = run_suite(task, log, work / "gx")
        named |= set(error.defects) if error is not None else set()
    want = expected_defects(case)
    assert named & want, f"{case} ({len(picked)} rows): want one of {want}, the suites named " \
                         f"{sorted(named) or 'nothing'}"


CASES = matrix()
_SAMPLED = set(random.Random(SEED).sample(range(len(CASES)), SAMPLE))


@pytest.mark.parametrize("case", [
    pytest.param(c, id=str(c), marks=() if i in _SAMPLED else pytest.mark.slow)
    for i, c in enumerate(CASES)])
def test_a_single_field_corruption_is_refused_or_named(case, source, history, tmp_path) -> None:
    check(case, source, history, tmp_path / "case")


def test_the_matrix_covers_every_field_and_kind() -> None:
    fields = {(c.table, c.field) for c in CASES}
    assert fields == {(t.name, f.name) for t in TABLES for f in t.fields}
    assert {c.kind for c in CASES} == set(KINDS)
    assert all(0.03 <= c.share <= 0.10 for c in CASES)


def test_a_corruption_of_nothing_is_no_corruption(source) -> None:
    """The generator's own checks: a case's table differs from the good one exactly where
    it says (so a test that passes is not passing on untouched rows)."""
    case = Case("browsing_train", "hashed_url", "wrong_format", 0.05, 1)
    good = _interval_rows(source, case.table)
    bad, picked = corrupted(good, case)
    changed = [i for i, (a, b) in enumerate(zip(good.column(case.field).to_pylist(),
                                                bad.column(case.field).to_pylist())) if a != b]
    assert changed == picked and len(picked) == round(0.05 * len(_rows_where(good, case)))


RAW_TASKS = ("validate_raw_schema", *TASKS.values(), "validate_volume", "validate_event_mix")


@pytest.mark.slow
def test_a_day_of_clean_hours_passes_every_raw_suite(tmp_path) -> None:
    """24 consecutive hours of the embedded shoppers (their traffic varies 4x over the day),
    each delivered as the replay delivers it and validated by every raw suite against the
    hours before it: no suite fails (false-positive rate over a day: zero)."""
    from skiff.data import generate

    hours, warmup = 24, 24
    generate(tmp_path / "source", sessions=190 * (hours + warmup), seed=SEED + 1, end=END,
             span_hours=hours + warmup)
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    first = END - timedelta(hours=hours)
    load_dir(tmp_path / "source", warehouse, batch_id="history", until_ms=ms(first),
             arrival="event")
    log = Log(warehouse.path, None)
    failures = []
    for h in range(hours):
        start, end = first + timedelta(hours=h), first + timedelta(hours=h + 1)
        load_dir(tmp_path / "source", warehouse, batch_id=f"replay:{start.isoformat()}",
                 since_ms=ms(start), until_ms=ms(end), tables=EVENT_TABLES, arrival="event")
        for task in RAW_TASKS:
            error, _ = run_suite(task, log, tmp_path / "gx", start, end)
            if error is not None:
                failures.append(f"{start:%H:%M} {task}: {error.defects}")
    assert not failures, failures
